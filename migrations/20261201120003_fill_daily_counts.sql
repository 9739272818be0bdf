-- The counts of the rows already stored, as shard 0. Rejections the handler called
-- `unknown_source` go to the `(unknown)` bucket, as new ones do.
INSERT INTO daily_counts
    (day, source, shard, events, duplicates, retried, latency_sum_us, latency_max_us, dead_lettered, rejected)
SELECT c_day, c_source, 0, SUM(c_events), SUM(c_duplicates), SUM(c_retried), SUM(c_latency_sum),
       MAX(c_latency_max), SUM(c_dead_lettered), SUM(c_rejected)
FROM (
    SELECT DATE(received_at) AS c_day, source AS c_source, COUNT(*) AS c_events,
           SUM(duplicates) AS c_duplicates, SUM(retry_count > 0) AS c_retried,
           SUM(TIMESTAMPDIFF(MICROSECOND, received_at, stored_at)) AS c_latency_sum,
           MAX(TIMESTAMPDIFF(MICROSECOND, received_at, stored_at)) AS c_latency_max,
           0 AS c_dead_lettered, 0 AS c_rejected
    FROM events GROUP BY source, DATE(received_at)
    UNION ALL
    SELECT DATE(dead_lettered_at), source, 0, 0, 0, 0, NULL, COUNT(*), 0
    FROM dead_letters GROUP BY source, DATE(dead_lettered_at)
    UNION ALL
    SELECT DATE(received_at), IF(reason = 'unknown_source', '(unknown)', source), 0, 0, 0, 0, NULL, 0, COUNT(*)
    FROM rejections GROUP BY IF(reason = 'unknown_source', '(unknown)', source), DATE(received_at)
) AS counted
GROUP BY c_day, c_source
