-- name: behaviour_rates
-- title: Correction, escalation and rephrase rates per agent and route
-- description: Share of interactions that received at least one correction (feedback kind
--   CORRECTION), were escalated (outcome ESCALATED) or rephrased (outcome REPHRASED).
-- param: from_ms Int64 = 0  -- window start, epoch milliseconds (inclusive)
-- param: to_ms Int64 = 4102444800000  -- window end, epoch milliseconds (exclusive)
WITH o AS (
    SELECT interaction_key, max(kind = 'ESCALATED') AS escalated, max(kind = 'REPHRASED') AS rephrased
    -- The _raw views (no FINAL) here: max() and DISTINCT are the same with or without a replayed
    -- copy; the interactions are counted, so they are read through FINAL.
    FROM outcomes_raw
    WHERE event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND kind IN ('ESCALATED', 'REPHRASED')
    GROUP BY interaction_key
),
c AS (
    SELECT DISTINCT interaction_key, 1 AS corrected
    FROM feedback_raw
    WHERE event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND kind = 'CORRECTION'
)
SELECT i.agent_id AS agent_id,
       i.route AS route,
       count() AS interactions,
       sum(c.corrected) AS corrected,
       round(corrected / interactions, 4) AS correction_rate,
       sum(o.escalated) AS escalated,
       round(escalated / interactions, 4) AS escalation_rate,
       sum(o.rephrased) AS rephrased,
       round(rephrased / interactions, 4) AS rephrase_rate
FROM interactions AS i
LEFT JOIN o ON o.interaction_key = i.interaction_key
LEFT JOIN c ON c.interaction_key = i.interaction_key
WHERE i.event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND i.event_time < fromUnixTimestamp64Milli({to_ms:Int64})
GROUP BY agent_id, route
ORDER BY agent_id, route
