-- name: preference_windows
-- title: Preference-pair volume and quality per window
-- description: Per window of window_hours: pairs published, unique pairs after dedup (same prompt,
--   chosen and rejected text count once), explicit pairs, mean confidence and weight, the share of
--   pairs at or above min_confidence, and how close the window is to a training run: unique pairs
--   over min_pairs (the training gate's minimum).
-- param: from_ms Int64 = 0  -- window start, epoch milliseconds (inclusive)
-- param: to_ms Int64 = 4102444800000  -- window end, epoch milliseconds (exclusive)
-- param: window_hours UInt32 = 24  -- window length in hours
-- param: min_pairs UInt32 = 500  -- unique pairs a training run needs
-- param: min_confidence Float64 = 0.6  -- confidence a pair needs to count as confident
SELECT toStartOfInterval(event_time, toIntervalHour({window_hours:UInt32})) AS window_start,
       count() AS pairs,
       uniqExact(content_hash) AS unique_pairs,
       countIf(explicit) AS explicit_pairs,
       round(avg(confidence), 4) AS mean_confidence,
       round(avg(weight), 4) AS mean_weight,
       round(countIf(confidence >= {min_confidence:Float64}) / pairs, 4) AS confident_share,
       {min_pairs:UInt32} AS min_pairs,
       round(unique_pairs / min_pairs, 4) AS progress,
       unique_pairs >= min_pairs AS ready
FROM preferences
WHERE event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND event_time < fromUnixTimestamp64Milli({to_ms:Int64})
GROUP BY window_start
ORDER BY window_start
