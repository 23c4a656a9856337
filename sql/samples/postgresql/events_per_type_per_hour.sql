-- Question: how many events of each type came in each hour?
-- Tables: live_stream (one row per Canvas raw event).
-- Hours are clock hours of event_time_local (ledbelly's local time zone). Covers the 24 hours up to
-- the newest event in the table, not up to now, so that it also works on replayed or backfilled
-- data; use LOCALTIMESTAMP instead of the subquery for the wall clock.
SELECT
    date_trunc('hour', event_time_local) AS event_hour,
    event_name,
    COUNT(*) AS events
FROM live_stream
WHERE event_time_local >= (SELECT MAX(event_time_local) FROM live_stream) - INTERVAL '24 hours'
GROUP BY date_trunc('hour', event_time_local), event_name
ORDER BY event_hour, events DESC, event_name;
