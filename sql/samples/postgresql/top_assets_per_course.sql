-- Question: which assets (pages, files, quizzes, modules, tools...) are opened most in each course?
-- Tables: live_asset_accessed (one row per asset_accessed event).
-- The 10 most viewed assets of each course, with how many distinct users opened them. The name is
-- the latest-sorting one seen for the asset (names can change).
WITH asset_views AS (
    SELECT
        context_id_meta AS course_id,
        asset_type,
        asset_id,
        MAX(asset_name) AS asset_name,
        COUNT(*) AS views,
        COUNT(DISTINCT user_id_meta) AS unique_users
    FROM live_asset_accessed
    WHERE context_type_meta = 'Course' AND asset_id IS NOT NULL
    GROUP BY context_id_meta, asset_type, asset_id
), ranked AS (
    SELECT
        course_id, asset_type, asset_id, asset_name, views, unique_users,
        ROW_NUMBER() OVER (PARTITION BY course_id
                           ORDER BY views DESC, unique_users DESC, asset_id) AS asset_rank
    FROM asset_views
)
SELECT course_id, asset_rank, asset_type, asset_id, asset_name, views, unique_users
FROM ranked
WHERE asset_rank <= 10
ORDER BY course_id, asset_rank;
