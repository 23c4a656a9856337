-- Question: how many distinct users were active each day, with a 7-day rolling average (LEDbelly's
-- "daily active users")?
-- Tables: live_stream (one row per Canvas raw event; user_id_meta is the acting user).
-- Days are days of event_time_local (ledbelly's local time zone). The rolling average covers the
-- day and the 6 days before it that had any events. Shows the 30 days up to the newest event in
-- the table, not up to today, so that it also works on replayed or backfilled data; use
-- CAST(GETDATE() AS date) instead of the subquery for a wall-clock window.
WITH daily_users AS (
    SELECT DISTINCT CAST(event_time_local AS date) AS activity_date, user_id_meta
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
        AVG(CAST(active_users AS float)) OVER (ORDER BY activity_date
                                               ROWS BETWEEN 6 PRECEDING AND CURRENT ROW)
            AS avg_7_days
    FROM daily
)
SELECT
    activity_date,
    FORMAT(activity_date, 'ddd', 'en-US') AS week_day,
    active_users,
    ROUND(avg_7_days, 2) AS avg_7_days
FROM rolling
WHERE activity_date > DATEADD(day, -30, (SELECT CAST(MAX(event_time_local) AS date) FROM live_stream))
ORDER BY activity_date;
