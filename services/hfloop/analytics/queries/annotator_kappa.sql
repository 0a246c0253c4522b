-- name: annotator_kappa
-- title: Inter-annotator agreement: Cohen's kappa per annotator pair
-- description: Explicit ratings, the latest per (annotator, interaction), as nominal categories
--   (scale:value). For every pair of annotators in the same pool (and, under pool '*', across all
--   pools) on the interactions both rated: n items, observed agreement, expected agreement from the
--   two annotators' marginals on those items, and kappa = (po - pe) / (1 - pe).
-- param: from_ms Int64 = 0  -- window start, epoch milliseconds (inclusive)
-- param: to_ms Int64 = 4102444800000  -- window end, epoch milliseconds (exclusive)
-- param: min_items UInt32 = 1  -- pairs sharing fewer items are left out
WITH r AS (
    SELECT scope, annotator_id, interaction_id, category
    FROM (
        SELECT ifNull(annotator_pool, '') AS pool, annotator_id, interaction_id,
               argMax(concat(rating.scale, ':', toString(rating.value)), event_time) AS category
        FROM feedback
        WHERE kind = 'RATING' AND source = 'EXPLICIT' AND event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND event_time < fromUnixTimestamp64Milli({to_ms:Int64})
        GROUP BY pool, annotator_id, interaction_id
    )
    ARRAY JOIN [pool, '*'] AS scope
),
pairs AS (
    SELECT a.scope AS scope, a.annotator_id AS annotator_a, b.annotator_id AS annotator_b,
           a.category AS ca, b.category AS cb
    FROM r AS a INNER JOIN r AS b ON a.scope = b.scope AND a.interaction_id = b.interaction_id
    WHERE a.annotator_id < b.annotator_id
),
stats AS (
    SELECT scope, annotator_a, annotator_b, count() AS n, countIf(ca = cb) AS agree
    FROM pairs GROUP BY scope, annotator_a, annotator_b
),
marg AS (
    SELECT scope, annotator_a, annotator_b, c, sum(is_a) AS na, sum(1 - is_a) AS nb
    FROM pairs ARRAY JOIN [ca, cb] AS c, [1, 0] AS is_a
    GROUP BY scope, annotator_a, annotator_b, c
),
expected AS (
    SELECT scope, annotator_a, annotator_b, sum(na * nb) AS s FROM marg GROUP BY scope, annotator_a, annotator_b
)
SELECT s.scope AS pool, s.annotator_a AS annotator_a, s.annotator_b AS annotator_b, s.n AS items,
       round(s.agree / s.n, 4) AS agreement,
       round(x.s / (s.n * s.n), 4) AS expected_agreement,
       round(if(x.s = s.n * s.n, NULL, (s.agree / s.n - x.s / (s.n * s.n)) / (1 - x.s / (s.n * s.n))), 4) AS kappa
FROM stats AS s
INNER JOIN expected AS x ON x.scope = s.scope AND x.annotator_a = s.annotator_a AND x.annotator_b = s.annotator_b
WHERE s.n >= {min_items:UInt32}
ORDER BY pool, annotator_a, annotator_b
