-- name: feedback_rates
-- title: Feedback volume and rates by agent, version, route and day
-- description: Per day of the interaction and (agent, version, route): interactions served, feedback
--   events about them, the share of interactions with any feedback, ratings and the share of positive
--   ones (rating normalised to [-1, 1] above 0), corrections and the correction rate. Feedback counts
--   toward the interaction it is about (joined by interaction_id).
-- param: from_ms Int64 = 0  -- window start, epoch milliseconds (inclusive)
-- param: to_ms Int64 = 4102444800000  -- window end, epoch milliseconds (exclusive)
WITH f AS (
    SELECT interaction_key,
           count() AS n_feedback,
           countIf(kind = 'RATING') AS n_ratings,
           countIf(kind = 'RATING' AND rating_norm > 0) AS n_positive,
           countIf(kind = 'CORRECTION') AS n_corrections
    FROM feedback
    WHERE event_time >= fromUnixTimestamp64Milli({from_ms:Int64})
    GROUP BY interaction_key
)
SELECT toDate(i.event_time) AS day,
       i.agent_id AS agent_id,
       i.agent_version AS agent_version,
       i.route AS route,
       count() AS interactions,
       sum(f.n_feedback) AS feedback_events,
       countIf(f.n_feedback > 0) AS with_feedback,
       round(with_feedback / interactions, 4) AS feedback_rate,
       sum(f.n_ratings) AS ratings,
       round(if(ratings = 0, NULL, sum(f.n_positive) / ratings), 4) AS positive_rate,
       sum(f.n_corrections) AS corrections,
       round(corrections / interactions, 4) AS correction_rate
FROM interactions AS i
LEFT JOIN f ON f.interaction_key = i.interaction_key
WHERE i.event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND i.event_time < fromUnixTimestamp64Milli({to_ms:Int64})
GROUP BY day, agent_id, agent_version, route
ORDER BY day, agent_id, agent_version, route
