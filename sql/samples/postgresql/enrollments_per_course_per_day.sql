-- Question: how many new enrollments does each course get per day, by enrollment type?
-- Tables: live_enrollment_created (one row per enrollment_created event).
-- type is Canvas's enrollment type (StudentEnrollment, TeacherEnrollment, ObserverEnrollment...).
-- Days are days of event_time_local (ledbelly's local time zone).
SELECT
    CAST(event_time_local AS date) AS enrollment_date,
    course_id,
    type AS enrollment_type,
    COUNT(*) AS enrollments,
    COUNT(DISTINCT user_id) AS unique_users
FROM live_enrollment_created
WHERE event_time_local IS NOT NULL
GROUP BY CAST(event_time_local AS date), course_id, type
ORDER BY enrollment_date, course_id, enrollment_type;
