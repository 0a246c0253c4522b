-- name: fast_loop_effect
-- title: Fast-loop effect: error rate with and without a served correction
-- description: Latest label of each interaction, split by whether the agent applied a correction
--   from memory (memory_ids_used non-empty). Error: label score below 0. A working fast loop shows
--   a lower error rate on requests served a correction than on the rest.
-- param: from_ms Int64 = 0  -- window start, epoch milliseconds (inclusive)
-- param: to_ms Int64 = 4102444800000  -- window end, epoch milliseconds (exclusive)
SELECT if(notEmpty(memory_ids_used), 'served_correction', 'no_correction') AS arm,
       count() AS requests,
       countIf(score < 0) AS errors,
       round(errors / requests, 4) AS error_rate
FROM (
    SELECT interaction_key, argMax(memory_ids_used, version) AS memory_ids_used, argMax(score, version) AS score
    -- labels_raw (no FINAL): the latest version per interaction (argMax) is the same with or
    -- without a replayed copy of a label.
    FROM labels_raw
    WHERE event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND event_time < fromUnixTimestamp64Milli({to_ms:Int64})
    GROUP BY interaction_key
)
GROUP BY arm
ORDER BY arm
