-- Question: how many events of each type came in each hour?
-- Tables: live_stream (one row per Canvas raw event).
-- Hours are clock hours of event_time_local (ledbelly's local time zone), shown as
-- 'YYYY-MM-DD HH:00'. Covers the 24 hours up to the newest event in the table, not up to now, so
-- that it also works on replayed or backfilled data; use NOW() instead of the subquery for the
-- wall clock.
SELECT
    DATE_FORMAT(event_time_local, '%Y-%m-%d %H:00') AS event_hour,
    event_name,
    COUNT(*) AS events
FROM live_stream
WHERE event_time_local >= (SELECT MAX(event_time_local) FROM live_stream) - INTERVAL 24 HOUR
GROUP BY DATE_FORMAT(event_time_local, '%Y-%m-%d %H:00'), event_name
ORDER BY event_hour, events DESC, event_name;
