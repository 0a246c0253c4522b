-- name: length_by_version
-- title: Reward-hacking monitor: response length over model versions
-- description: Per (model, agent version), in order of first appearance: interactions, mean,
--   median and 90th-percentile answer length in characters, and the share with confident phrasing.
--   Length that grows release after release without better labels is a warning sign.
-- param: from_ms Int64 = 0  -- window start, epoch milliseconds (inclusive)
-- param: to_ms Int64 = 4102444800000  -- window end, epoch milliseconds (exclusive)
SELECT model_id, agent_version,
       min(event_time) AS first_seen,
       count() AS interactions,
       round(avg(response_chars), 1) AS mean_chars,
       quantileExact(0.5)(response_chars) AS p50_chars,
       quantileExact(0.9)(response_chars) AS p90_chars,
       round(avg(confident_phrases), 4) AS confident_share
FROM interactions
WHERE event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND event_time < fromUnixTimestamp64Milli({to_ms:Int64})
GROUP BY model_id, agent_version
ORDER BY first_seen, model_id, agent_version
