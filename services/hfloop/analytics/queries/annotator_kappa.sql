-- name: annotator_kappa
-- title: Inter-annotator agreement: Cohen's kappa per annotator pair
-- description: Explicit ratings, the latest per (annotator, interaction), as nominal categories
--   (scale:value). For every pair of annotators in the same pool (and, under pool '*', across all
--   pools) on the interactions both rated: n items, observed agreement, expected agreement from the
--   two annotators' marginals on those items, and kappa = (po - pe) / (1 - pe).
-- param: from_ms Int64 = 0  -- window start, epoch milliseconds (inclusive)
-- param: to_ms Int64 = 4102444800000  -- window end, epoch milliseconds (exclusive)
-- param: min_items UInt32 = 1  -- pairs sharing fewer items are left out
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
pairs AS (
    -- Every two ratings of one interaction by different annotators, once with a < b; same_pool
    -- says whether they share a pool (then the pair counts under that pool as well as '*').
    SELECT p.1.1 = p.2.1 AS same_pool, if(same_pool, p.1.1, '') AS pool,
           least(p.1.2, p.2.2) AS annotator_a, greatest(p.1.2, p.2.2) AS annotator_b,
           if(p.1.2 < p.2.2, p.1.3, p.2.3) AS ca, if(p.1.2 < p.2.2, p.2.3, p.1.3) AS cb
    FROM latest
    ARRAY JOIN arrayFilter(q -> q.1.2 != q.2.2,
                           arrayFlatten(arrayMap(k -> arrayMap(j -> (ls[k], ls[j]), range(k + 1, length(ls) + 1)),
                                                 range(1, length(ls) + 1)))) AS p
),
ct AS (
    -- The pair's contingency table, all that kappa needs: counted once per pool of the pair,
    -- then spread over the scopes (pool and '*'), which is cheap on a few hundred rows.
    SELECT scope, annotator_a, annotator_b, ca, cb, sum(k) AS k
    FROM (
        SELECT same_pool, pool, annotator_a, annotator_b, ca, cb, count() AS k
        FROM pairs GROUP BY same_pool, pool, annotator_a, annotator_b, ca, cb
    )
    ARRAY JOIN if(same_pool, [pool, '*'], ['*']) AS scope
    GROUP BY scope, annotator_a, annotator_b, ca, cb
),
stats AS (
    -- One pass over ct (a CTE named twice is computed twice): n, agreements, and the sum over
    -- categories of a's count times b's count (pe * n^2) from the pair's table.
    SELECT scope, annotator_a, annotator_b, groupArray((ca, cb, k)) AS t,
           arraySum(x -> x.3, t) AS n,
           arraySum(x -> if(x.1 = x.2, x.3, 0), t) AS agree,
           arraySum(c -> arraySum(x -> if(x.1 = c, x.3, 0), t) * arraySum(x -> if(x.2 = c, x.3, 0), t),
                    arrayDistinct(arrayMap(x -> x.1, t))) AS s
    FROM ct GROUP BY scope, annotator_a, annotator_b
)
SELECT scope AS pool, annotator_a, annotator_b, n AS items,
       round(agree / n, 4) AS agreement,
       round(s / (n * n), 4) AS expected_agreement,
       round(if(s = n * n, NULL, (agree / n - s / (n * n)) / (1 - s / (n * n))), 4) AS kappa
FROM stats
WHERE n >= {min_items:UInt32}
ORDER BY pool, annotator_a, annotator_b
