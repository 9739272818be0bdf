-- As before (20261202200003), on the table keyed by time.
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
