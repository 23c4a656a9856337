-- Question: how many distinct users were active each day, with a 7-day rolling average (LEDbelly's
-- "daily active users")?
-- Tables: live_stream (one row per Canvas raw event; user_id_meta is the acting user).
-- Days are days of event_time_local (ledbelly's local time zone). The rolling average covers the
-- day and the 6 days before it that had any events. Shows the 30 days up to the newest event in
-- the table, not up to today, so that it also works on replayed or backfilled data; use
-- CURDATE() instead of the subquery for a wall-clock window. MySQL 8 or MariaDB 10.2 and newer.
WITH daily_users AS (
    SELECT DISTINCT DATE(event_time_local) AS activity_date, user_id_meta
    FROM live_stream
    WHERE user_id_meta IS NOT NULL AND event_time_local IS NOT NULL
), daily AS (
    SELECT activity_date, COUNT(*) AS active_users
    FROM daily_users
    GROUP BY activity_date
), rolling AS (
    SELECT
        activity_date,
        active_users,
        AVG(active_users) OVER (ORDER BY activity_date
                                ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS avg_7_days
    FROM daily
)
SELECT
    activity_date,
    DATE_FORMAT(activity_date, '%a') AS week_day,
    active_users,
    ROUND(avg_7_days, 2) AS avg_7_days
FROM rolling
WHERE activity_date > (SELECT DATE(MAX(event_time_local)) FROM live_stream) - INTERVAL 30 DAY
ORDER BY activity_date;
