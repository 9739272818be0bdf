-- Counts each stored rejection in daily_counts (the consumer has already put strangers'
-- rejections under `(unknown)`). Pruning the rejection log leaves the counts as they are.
CREATE TRIGGER rejections_count AFTER INSERT ON rejections FOR EACH ROW
INSERT INTO daily_counts
    (day, source, shard, events, duplicates, retried, latency_sum_us, latency_max_us, dead_lettered, rejected)
VALUES (DATE(NEW.received_at), NEW.source, CONNECTION_ID(), 0, 0, 0, 0, NULL, 0, 1)
ON DUPLICATE KEY UPDATE rejected = rejected + 1
