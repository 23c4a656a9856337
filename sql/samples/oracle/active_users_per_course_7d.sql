-- Question: how many distinct users were active in each course over the last 7 days?
-- Tables: live_stream (one row per Canvas raw event; context_*_meta is the course or group the
-- event happened in, user_id_meta the acting user).
-- "The last 7 days" are the 7 days up to the newest event_time in the table, not up to now, so
-- that it also works on replayed or backfilled data. For the wall clock use
--   event_time >= SYS_EXTRACT_UTC(SYSTIMESTAMP) - INTERVAL '7' DAY
SELECT
    context_id_meta AS course_id,
    COUNT(DISTINCT user_id_meta) AS active_users,
    COUNT(*) AS events,
    MAX(event_time) AS last_event_time
FROM live_stream
WHERE context_type_meta = 'Course'
  AND user_id_meta IS NOT NULL
  AND event_time >= (SELECT MAX(event_time) FROM live_stream) - INTERVAL '7' DAY
GROUP BY context_id_meta
ORDER BY active_users DESC, course_id;
