-- name: annotator_alpha
-- title: Inter-annotator agreement: Krippendorff's alpha per pool and overall
-- description: Nominal Krippendorff's alpha over explicit ratings (latest per annotator and
--   interaction, category scale:value), per annotator pool and overall (pool '*'). Units are
--   interactions with at least two ratings. alpha = 1 - (n - 1) * D / (n^2 - sum_c n_c^2) with
--   D = sum over units of (m_u^2 - sum_c n_uc^2) / (m_u - 1): the coincidence-matrix form.
-- param: from_ms Int64 = 0  -- window start, epoch milliseconds (inclusive)
-- param: to_ms Int64 = 4102444800000  -- window end, epoch milliseconds (exclusive)
WITH r AS (
    SELECT scope, interaction_id, category
    FROM (
        SELECT ifNull(annotator_pool, '') AS pool, annotator_id, interaction_id,
               argMax(concat(rating.scale, ':', toString(rating.value)), event_time) AS category
        FROM feedback
        WHERE kind = 'RATING' AND source = 'EXPLICIT' AND event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND event_time < fromUnixTimestamp64Milli({to_ms:Int64})
        GROUP BY pool, annotator_id, interaction_id
    )
    ARRAY JOIN [pool, '*'] AS scope
),
uc AS (
    SELECT scope, interaction_id, category, count() AS n_uc FROM r GROUP BY scope, interaction_id, category
),
u AS (
    SELECT scope, interaction_id, sum(n_uc) AS m, sum(n_uc * n_uc) AS sq
    FROM uc GROUP BY scope, interaction_id HAVING m >= 2
),
totals AS (
    SELECT scope, count() AS units, sum(m) AS n, sum((m * m - sq) / (m - 1)) AS d FROM u GROUP BY scope
),
cats AS (
    SELECT uc.scope AS scope, uc.category AS category, sum(uc.n_uc) AS n_c
    FROM uc INNER JOIN u ON u.scope = uc.scope AND u.interaction_id = uc.interaction_id
    GROUP BY scope, category
),
cat_sq AS (SELECT scope, sum(n_c * n_c) AS s2, count() AS categories FROM cats GROUP BY scope)
SELECT t.scope AS pool, t.units AS units, t.n AS ratings, c.categories AS categories,
       round(if(t.n * t.n = c.s2, NULL, 1 - (t.n - 1) * t.d / (t.n * t.n - c.s2)), 4) AS alpha
FROM totals AS t INNER JOIN cat_sq AS c ON c.scope = t.scope
ORDER BY pool
