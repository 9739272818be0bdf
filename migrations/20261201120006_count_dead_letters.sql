-- Counts each dead letter in daily_counts.
CREATE TRIGGER dead_letters_count AFTER INSERT ON dead_letters FOR EACH ROW
INSERT INTO daily_counts
    (day, source, shard, events, duplicates, retried, latency_sum_us, latency_max_us, dead_lettered, rejected)
VALUES (DATE(NEW.dead_lettered_at), NEW.source, CONNECTION_ID(), 0, 0, 0, 0, NULL, 1, 0)
ON DUPLICATE KEY UPDATE dead_lettered = dead_lettered + 1
