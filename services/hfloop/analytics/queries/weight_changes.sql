-- name: weight_changes
-- title: Retrieval weight changes over time
-- description: Per day: document weight changes, distinct documents touched, how many changes set
--   a weight below 1 (down-weighted), mean and lowest weight set.
-- param: from_ms Int64 = 0  -- window start, epoch milliseconds (inclusive)
-- param: to_ms Int64 = 4102444800000  -- window end, epoch milliseconds (exclusive)
SELECT toDate(event_time) AS day,
       count() AS changes,
       uniqExact(doc_id) AS docs,
       countIf(weight < 1) AS down_weighted,
       round(avg(weight), 4) AS mean_weight,
       round(min(weight), 4) AS min_weight
FROM doc_weights
WHERE event_time >= fromUnixTimestamp64Milli({from_ms:Int64}) AND event_time < fromUnixTimestamp64Milli({to_ms:Int64})
GROUP BY day
ORDER BY day
