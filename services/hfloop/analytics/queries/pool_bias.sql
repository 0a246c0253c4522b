-- name: pool_bias
-- title: Rater-population bias: which pool prefers long or confident answers
-- description: Explicit ratings (normalised to [-1, 1]) per pool: mean rating, mean rating of
--   long answers (more than long_chars characters) minus short ones, and of answers with confident
--   phrasing minus plain ones. A pool with at least min_ratings ratings whose length or confidence
--   effect reaches min_effect, measured on at least min_group ratings on each side, is flagged: its
--   ratings reward form over substance.
-- param: from_ms Int64 = 0  -- window start, epoch milliseconds (inclusive)
-- param: to_ms Int64 = 4102444800000  -- window end, epoch milliseconds (exclusive)
-- param: long_chars UInt32 = 400  -- answers longer than this count as long
-- param: min_effect Float64 = 0.3  -- effect (difference of mean ratings) that flags a bias
-- param: min_ratings UInt32 = 20  -- fewer ratings than this are never flagged
-- param: min_group UInt32 = 5  -- an effect needs this many ratings on each side (long and short, confident and plain)
SELECT ifNull(f.annotator_pool, '') AS pool,
       uniqExact(f.annotator_id) AS annotators,
       count() AS ratings,
       round(avg(f.rating_norm), 4) AS mean_rating,
       countIf(i.response_chars > {long_chars:UInt32}) AS n_long,
       countIf(i.response_chars <= {long_chars:UInt32}) AS n_short,
       countIf(i.confident_phrases = 1) AS n_confident,
       countIf(i.confident_phrases = 0) AS n_plain,
       round(avgIf(f.rating_norm, i.response_chars > {long_chars:UInt32})
             - avgIf(f.rating_norm, i.response_chars <= {long_chars:UInt32}), 4) AS length_effect,
       round(avgIf(f.rating_norm, i.confident_phrases = 1) - avgIf(f.rating_norm, i.confident_phrases = 0), 4) AS confidence_effect,
       arrayStringConcat(arrayFilter(x -> x != '', [
           if(ratings >= {min_ratings:UInt32} AND least(n_long, n_short) >= {min_group:UInt32}
              AND length_effect >= {min_effect:Float64}, 'long', ''),
           if(ratings >= {min_ratings:UInt32} AND least(n_confident, n_plain) >= {min_group:UInt32}
              AND confidence_effect >= {min_effect:Float64}, 'confident', '')]), '+') AS prefers,
       prefers != '' AS flagged
FROM feedback AS f
INNER JOIN interactions AS i ON i.interaction_key = f.interaction_key
WHERE f.kind = 'RATING' AND f.source = 'EXPLICIT' AND f.event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND f.event_time < fromUnixTimestamp64Milli({to_ms:Int64})
GROUP BY pool
ORDER BY flagged DESC, pool
