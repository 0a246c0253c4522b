-- name: rating_vs_length
-- title: Reward-hacking monitor: rating vs response length
-- description: Ratings (normalised to [-1, 1]) by length bucket of the rated answer in characters,
--   with the correlation of rating and length over all ratings in the last column. Ratings that
--   rise with length alone are what a reward model learns to exploit.
-- param: from_ms Int64 = 0  -- window start, epoch milliseconds (inclusive)
-- param: to_ms Int64 = 4102444800000  -- window end, epoch milliseconds (exclusive)
-- One pass: the overall correlation merges the buckets' corr states (a window over the groups)
-- instead of joining the ratings to their answers a second time in a scalar subquery.
SELECT multiIf(chars < 200, '0-199', chars < 500, '200-499', chars < 1000, '500-999', '1000+') AS length_bucket,
       min(chars) AS min_chars,
       count() AS ratings,
       round(avg(rating), 4) AS mean_rating,
       round(corrMerge(corrState(toFloat64(chars), rating)) OVER (), 4) AS corr_all
FROM (
    SELECT i.response_chars AS chars, f.rating_norm AS rating
    FROM feedback AS f
    INNER JOIN interactions AS i ON i.interaction_key = f.interaction_key
    WHERE f.kind = 'RATING' AND f.event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND f.event_time < fromUnixTimestamp64Milli({to_ms:Int64})
)
GROUP BY length_bucket
ORDER BY min_chars
