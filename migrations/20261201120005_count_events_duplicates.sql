-- Counts each further delivery of a stored event (its `duplicates` going up) in daily_counts,
-- on the day the event was received, as the view always did.
CREATE TRIGGER events_count_duplicates AFTER UPDATE ON events FOR EACH ROW
INSERT INTO daily_counts
    (day, source, shard, events, duplicates, retried, latency_sum_us, latency_max_us, dead_lettered, rejected)
SELECT DATE(NEW.received_at), NEW.source, CONNECTION_ID(), 0,
       CAST(NEW.duplicates AS SIGNED) - CAST(OLD.duplicates AS SIGNED), 0, 0, NULL, 0, 0
FROM DUAL WHERE NEW.duplicates <> OLD.duplicates
ON DUPLICATE KEY UPDATE duplicates = duplicates + VALUES(duplicates)
