-- Question: at what hours of the day do people log in to Canvas?
-- Tables: live_logged_in (one row per logged_in event).
-- Hours are hours of event_time_local (ledbelly's local time zone), 0 to 23; hours without logins
-- are left out. Add a WHERE on event_time_local to look at one term or week.
SELECT
    CAST(EXTRACT(HOUR FROM event_time_local) AS integer) AS hour_of_day,
    COUNT(*) AS logins,
    COUNT(DISTINCT user_id_meta) AS unique_users
FROM live_logged_in
WHERE event_time_local IS NOT NULL
GROUP BY CAST(EXTRACT(HOUR FROM event_time_local) AS integer)
ORDER BY hour_of_day;
