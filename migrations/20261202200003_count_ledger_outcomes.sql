-- Counts a message's outcome when it changes: from none to one, or from `dead_lettered` to
-- `stored` or `duplicate` when a dead letter is replayed (`consumer dlq replay`).
CREATE TRIGGER ledger_messages_count_outcome AFTER UPDATE ON ledger_messages FOR EACH ROW
INSERT INTO ledger_counts (day, source, shard, accepted, stored, duplicates, dead_lettered)
SELECT NEW.day, NEW.source, CONNECTION_ID(), 0,
       (NEW.outcome <=> 'stored') - (OLD.outcome <=> 'stored'),
       (NEW.outcome <=> 'duplicate') - (OLD.outcome <=> 'duplicate'),
       (NEW.outcome <=> 'dead_lettered') - (OLD.outcome <=> 'dead_lettered')
FROM DUAL WHERE NOT (NEW.outcome <=> OLD.outcome)
ON DUPLICATE KEY UPDATE
    stored = stored + VALUES(stored),
    duplicates = duplicates + VALUES(duplicates),
    dead_lettered = dead_lettered + VALUES(dead_lettered)
