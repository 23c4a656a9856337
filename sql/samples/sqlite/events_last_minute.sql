-- Question: which events came in during the last minute, and how many of each (LEDbelly's
-- "events in the last minute")?
-- Tables: live_stream (one row per Canvas raw event).
-- "The last minute" is the minute up to the newest event_time in the table, not up to now, so that
-- it also works on replayed or backfilled data. For a live check against the wall clock use
--   WHERE processed_at >= strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 minute')
-- (processed_at is stored in UTC; SQLite's 'now' is UTC).
SELECT
    event_name,
    COUNT(*) AS events,
    MIN(event_time) AS first_event_time,
    MAX(event_time) AS last_event_time,
    MAX(processed_at) AS last_processed_at
FROM live_stream
WHERE event_time >= (SELECT strftime('%Y-%m-%d %H:%M:%f', MAX(event_time), '-1 minute')
                     FROM live_stream)
GROUP BY event_name
ORDER BY events DESC, event_name;
