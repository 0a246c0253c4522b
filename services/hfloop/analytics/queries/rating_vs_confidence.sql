-- name: rating_vs_confidence
-- title: Reward-hacking monitor: rating vs confidence phrases
-- description: Ratings of answers with and without confident phrasing ("definitely", "I am sure",
--   "guaranteed", ...; the interactions.confident_phrases column), and the difference.
-- param: from_ms Int64 = 0  -- window start, epoch milliseconds (inclusive)
-- param: to_ms Int64 = 4102444800000  -- window end, epoch milliseconds (exclusive)
SELECT if(i.confident_phrases, 'confident', 'plain') AS phrasing,
       count() AS ratings,
       round(avg(f.rating_norm), 4) AS mean_rating
FROM feedback AS f
INNER JOIN interactions AS i ON i.interaction_key = f.interaction_key
WHERE f.kind = 'RATING' AND f.event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND f.event_time < fromUnixTimestamp64Milli({to_ms:Int64})
GROUP BY phrasing
ORDER BY phrasing
