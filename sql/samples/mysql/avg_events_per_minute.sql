-- Question: how many Canvas events arrive per minute, on average (LEDbelly's "average rows per minute")?
-- Tables: live_stream (one row per Canvas raw event).
-- Counts the events of each minute of event_time (UTC, when Canvas sent them) and averages over the
-- minutes that had events. Replace event_time with processed_at to measure how fast ledbelly wrote
-- the rows instead. MySQL 8 or MariaDB 10.2 and newer.
SELECT
    COUNT(*) AS active_minutes,
    SUM(events) AS events,
    ROUND(AVG(events), 2) AS avg_events_per_minute,
    MAX(events) AS max_events_per_minute
FROM (
    SELECT DATE_FORMAT(event_time, '%Y-%m-%d %H:%i') AS event_minute, COUNT(*) AS events
    FROM live_stream
    WHERE event_time IS NOT NULL
    GROUP BY DATE_FORMAT(event_time, '%Y-%m-%d %H:%i')
) per_minute;
