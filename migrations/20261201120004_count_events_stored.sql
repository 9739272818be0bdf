-- Counts each stored event in daily_counts (see create_daily_counts).
CREATE TRIGGER events_count_stored AFTER INSERT ON events FOR EACH ROW
INSERT INTO daily_counts
    (day, source, shard, events, duplicates, retried, latency_sum_us, latency_max_us, dead_lettered, rejected)
VALUES (DATE(NEW.received_at), NEW.source, CONNECTION_ID(), 1, NEW.duplicates, NEW.retry_count > 0,
        TIMESTAMPDIFF(MICROSECOND, NEW.received_at, NEW.stored_at),
        TIMESTAMPDIFF(MICROSECOND, NEW.received_at, NEW.stored_at), 0, 0)
ON DUPLICATE KEY UPDATE
    events = events + 1,
    duplicates = duplicates + VALUES(duplicates),
    retried = retried + VALUES(retried),
    latency_sum_us = latency_sum_us + VALUES(latency_sum_us),
    latency_max_us = GREATEST(COALESCE(latency_max_us, VALUES(latency_max_us)), VALUES(latency_max_us))
