-- Counts each stored rejection by its reason in rejection_counts.
CREATE TRIGGER rejections_count_reason AFTER INSERT ON rejections FOR EACH ROW
INSERT INTO rejection_counts (day, source, reason, shard, rejected)
VALUES (DATE(NEW.received_at), NEW.source, NEW.reason, CONNECTION_ID(), 1)
ON DUPLICATE KEY UPDATE rejected = rejected + 1
