-- name: routing_changes
-- title: Routing changes over time
-- description: Per day, agent and route: routing decisions published, how many sent the route to a
--   human, to a fallback model or back to the default, and the last decision of the day with the
--   bad-outcome rate behind it.
-- param: from_ms Int64 = 0  -- window start, epoch milliseconds (inclusive)
-- param: to_ms Int64 = 4102444800000  -- window end, epoch milliseconds (exclusive)
SELECT toDate(event_time) AS day, agent_id, route,
       count() AS changes,
       countIf(action = 'HUMAN') AS to_human,
       countIf(action = 'FALLBACK_MODEL') AS to_fallback,
       countIf(action = 'DEFAULT') AS to_default,
       argMax(action, event_time) AS last_action,
       round(argMax(bad_rate, event_time), 4) AS last_bad_rate
FROM routing
WHERE event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND event_time < fromUnixTimestamp64Milli({to_ms:Int64})
GROUP BY day, agent_id, route
ORDER BY day, agent_id, route
