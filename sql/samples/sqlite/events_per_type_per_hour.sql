-- Question: how many events of each type came in each hour?
-- Tables: live_stream (one row per Canvas raw event).
-- Hours are clock hours of event_time_local (ledbelly's local time zone), shown as
-- 'YYYY-MM-DD HH:00'. Covers the 24 hours up to the newest event in the table, not up to now, so
-- that it also works on replayed or backfilled data; use
-- strftime('%Y-%m-%d %H:%M:%f', 'now', 'localtime', '-24 hours') for the wall clock.
SELECT
    strftime('%Y-%m-%d %H:00', event_time_local) AS event_hour,
    event_name,
    COUNT(*) AS events
FROM live_stream
WHERE event_time_local >= (SELECT strftime('%Y-%m-%d %H:%M:%f', MAX(event_time_local), '-24 hours')
                           FROM live_stream)
GROUP BY strftime('%Y-%m-%d %H:00', event_time_local), event_name
ORDER BY event_hour, events DESC, event_name;
