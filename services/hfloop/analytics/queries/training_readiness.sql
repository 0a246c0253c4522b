-- name: training_readiness
-- title: Pairs since the last training run
-- description: Unique preference pairs (after dedup) published since the end of the latest
--   training run's window (all pairs when there was none), against min_pairs.
-- param: min_pairs UInt32 = 500  -- unique pairs a training run needs
WITH (SELECT max(window_end) FROM training_runs) AS last_window_end
SELECT last_window_end,
       count() AS pairs,
       uniqExact(content_hash) AS unique_pairs,
       {min_pairs:UInt32} AS min_pairs,
       round(unique_pairs / min_pairs, 4) AS progress,
       unique_pairs >= min_pairs AS ready
FROM preferences
WHERE event_time >= last_window_end
