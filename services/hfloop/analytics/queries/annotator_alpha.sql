-- name: annotator_alpha
-- title: Inter-annotator agreement: Krippendorff's alpha per pool and overall
-- description: Nominal Krippendorff's alpha over explicit ratings (latest per annotator and
--   interaction, category scale:value), per annotator pool and overall (pool '*'). Units are
--   interactions with at least two ratings. alpha = 1 - (n - 1) * D / (n^2 - sum_c n_c^2) with
--   D = sum over units of (m_u^2 - sum_c n_uc^2) / (m_u - 1): the coincidence-matrix form.
-- param: from_ms Int64 = 0  -- window start, epoch milliseconds (inclusive)
-- param: to_ms Int64 = 4102444800000  -- window end, epoch milliseconds (exclusive)
WITH items AS (
    -- One group per rated interaction (a fixed-width key), its ratings as an array sorted by
    -- (pool, annotator, time): grouping by pool, annotator and interaction together would hash
    -- strings for millions of groups, and a self-join would build a table of every rating.
    SELECT arraySort(groupArray((ifNull(annotator_pool, ''), annotator_id, event_time, rating.scale, rating.value))) AS rs
    -- feedback_raw (no FINAL): a replayed rating is an identical element, and only the last of
    -- each (pool, annotator) run is kept, so duplicates cannot change the result.
    FROM feedback_raw
    WHERE kind = 'RATING' AND source = 'EXPLICIT' AND event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND event_time < fromUnixTimestamp64Milli({to_ms:Int64})
    GROUP BY interaction_key
    HAVING count() >= 2
),
latest AS (
    -- The latest rating of each (pool, annotator): the last of its run in the sorted array.
    -- Category scale:value is kept as the tuple (scale, value): equal exactly when the strings are.
    SELECT arrayMap(x -> (x.1, x.2, (x.4, x.5)),
                    arrayFilter((x, k) -> k = length(rs) OR (rs[k + 1].1, rs[k + 1].2) != (x.1, x.2), rs, arrayEnumerate(rs))) AS ls
    FROM items
),
units AS (
    -- Each interaction under its pools and '*': the categories of that scope's raters, m >= 2.
    -- Built inside the row and then unrolled: an ARRAY JOIN that still needed ls afterwards
    -- would copy every rating (strings included) once per scope.
    SELECT u.1 AS scope, u.2 AS cs
    FROM latest
    ARRAY JOIN arrayFilter(v -> length(v.2) >= 2,
                           arrayMap(s -> (s, arrayMap(x -> x.3, arrayFilter(x -> s = '*' OR x.1 = s, ls))),
                                    arrayPushBack(arrayDistinct(arrayMap(x -> x.1, ls)), '*'))) AS u
),
u AS (
    SELECT scope, length(cs) AS m, arrayDistinct(cs) AS cats, arrayMap(c -> countEqual(cs, c), cats) AS n_uc
    FROM units
),
totals AS (
    -- One pass (a CTE named twice is computed twice): units, n, D, and n_c per category.
    SELECT scope, count() AS units, sum(m) AS n, sum((m * m - arraySum(x -> x * x, n_uc)) / (m - 1)) AS d,
           sumMap(cats, n_uc).2 AS n_c
    FROM u GROUP BY scope
)
SELECT scope AS pool, units, n AS ratings, length(n_c) AS categories,
       round(if(n * n = arraySum(x -> x * x, n_c), NULL, 1 - (n - 1) * d / (n * n - arraySum(x -> x * x, n_c))), 4) AS alpha
FROM totals
ORDER BY pool
