-- name: label_distribution
-- title: Label distribution per agent
-- description: The latest label version of each interaction, bucketed by score: bad (< -0.33),
--   neutral, good (> 0.33); count, share within the agent, mean score and confidence.
-- param: from_ms Int64 = 0  -- window start, epoch milliseconds (inclusive)
-- param: to_ms Int64 = 4102444800000  -- window end, epoch milliseconds (exclusive)
SELECT agent_id,
       multiIf(score < -0.33, 'bad', score > 0.33, 'good', 'neutral') AS bucket,
       count() AS labels,
       round(labels / sum(labels) OVER (PARTITION BY agent_id), 4) AS share,
       round(avg(score), 4) AS mean_score,
       round(avg(confidence), 4) AS mean_confidence
FROM (
    SELECT interaction_key,
           argMax(agent_id, version) AS agent_id,
           argMax(score, version) AS score,
           argMax(confidence, version) AS confidence
    -- labels_raw (no FINAL): the latest version per interaction (argMax) is the same with or
    -- without a replayed copy of a label.
    FROM labels_raw
    WHERE event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND event_time < fromUnixTimestamp64Milli({to_ms:Int64})
    GROUP BY interaction_key
)
GROUP BY agent_id, bucket
ORDER BY agent_id, bucket
