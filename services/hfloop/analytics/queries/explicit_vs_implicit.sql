-- name: explicit_vs_implicit
-- title: Do thumbs agree with behaviour? (explicit vs implicit agreement)
-- description: Interactions with both an explicit rating and an observed outcome. Explicit polarity:
--   sign of the mean normalised explicit rating. Implicit polarity: sign of the summed outcome
--   polarity (ACCEPTED, COPIED, RESOLVED +1; REPHRASED, ESCALATED, DELETED, REOPENED, ABANDONED -1;
--   CUSTOM the sign of its value; EDITED 0). Interactions where either side is 0 are left out.
--   pp = explicit up and behaviour good, pn = up but bad, np = down but good, nn = down and bad;
--   kappa is Cohen's kappa of the two signals.
-- param: from_ms Int64 = 0  -- window start, epoch milliseconds (inclusive)
-- param: to_ms Int64 = 4102444800000  -- window end, epoch milliseconds (exclusive)
WITH e AS (
    SELECT interaction_key, sign(avg(rating_norm)) AS explicit
    FROM feedback
    WHERE kind = 'RATING' AND source = 'EXPLICIT' AND event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND event_time < fromUnixTimestamp64Milli({to_ms:Int64})
    GROUP BY interaction_key
),
b AS (
    SELECT interaction_key,
           sign(sum(multiIf(kind IN ('ACCEPTED', 'COPIED', 'RESOLVED'), 1,
                            kind IN ('REPHRASED', 'ESCALATED', 'DELETED', 'REOPENED', 'ABANDONED'), -1,
                            kind = 'CUSTOM', sign(ifNull(value, 0)), 0))) AS implicit
    FROM outcomes
    WHERE event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND event_time < fromUnixTimestamp64Milli({to_ms:Int64})
    GROUP BY interaction_key
),
j AS (
    SELECT e.explicit AS x, b.implicit AS y
    FROM e INNER JOIN b ON b.interaction_key = e.interaction_key
    WHERE x != 0 AND y != 0
)
SELECT count() AS interactions,
       countIf(x = y) AS agree,
       round(if(interactions = 0, NULL, agree / interactions), 4) AS agreement_rate,
       countIf(x > 0 AND y > 0) AS pp,
       countIf(x > 0 AND y < 0) AS pn,
       countIf(x < 0 AND y > 0) AS np,
       countIf(x < 0 AND y < 0) AS nn,
       ((pp + pn) * (pp + np) + (np + nn) * (pn + nn)) / (interactions * interactions) AS pe,
       round(if(interactions = 0 OR pe = 1, NULL, (agreement_rate - pe) / (1 - pe)), 4) AS kappa
FROM j
