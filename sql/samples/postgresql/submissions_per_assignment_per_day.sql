-- Question: how many submissions does each assignment get per day, and how many of them are late?
-- Tables: live_submission_created (one row per submission_created event: a student submitted,
-- including each new attempt).
-- Lateness is Canvas's own flag: the late column holds 'true' or 'false' as Canvas sent it, so no
-- join to the assignment's due_at (live_assignment_created/updated) is needed.
-- live_submission_updated has the same late column but repeats a submission each time it is
-- graded or changed, so counting it would count submissions twice. Days are days of
-- event_time_local (ledbelly's local time zone).
SELECT
    CAST(event_time_local AS date) AS submission_date,
    context_id_meta AS course_id,
    assignment_id,
    COUNT(*) AS submissions,
    SUM(CASE WHEN late = 'true' THEN 1 ELSE 0 END) AS late_submissions,
    COUNT(DISTINCT user_id) AS students
FROM live_submission_created
WHERE assignment_id IS NOT NULL AND event_time_local IS NOT NULL
GROUP BY CAST(event_time_local AS date), context_id_meta, assignment_id
ORDER BY submission_date, course_id, assignment_id;
