-- The rejections already stored, as shard 0 (`unknown_source` under `(unknown)`, as new ones).
INSERT INTO rejection_counts (day, source, reason, shard, rejected)
SELECT DATE(received_at), IF(reason = 'unknown_source', '(unknown)', source), reason, 0, COUNT(*)
FROM rejections
GROUP BY DATE(received_at), IF(reason = 'unknown_source', '(unknown)', source), reason
