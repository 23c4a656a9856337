-- Question: how many Canvas events arrive per minute, on average (LEDbelly's "average rows per minute")?
-- Tables: live_stream (one row per Canvas raw event).
-- Counts the events of each minute of event_time (UTC, when Canvas sent them) and averages over the
-- minutes that had events. Replace event_time with processed_at to measure how fast ledbelly wrote
-- the rows instead. The CAST to float keeps AVG from rounding down to an integer.
SELECT
    COUNT(*) AS active_minutes,
    SUM(events) AS events,
    ROUND(AVG(CAST(events AS float)), 2) AS avg_events_per_minute,
    MAX(events) AS max_events_per_minute
FROM (
    SELECT DATEADD(minute, DATEDIFF(minute, 0, event_time), 0) AS event_minute, COUNT(*) AS events
    FROM live_stream
    WHERE event_time IS NOT NULL
    GROUP BY DATEADD(minute, DATEDIFF(minute, 0, event_time), 0)
) per_minute;
