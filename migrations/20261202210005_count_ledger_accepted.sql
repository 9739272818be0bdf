-- As before (20261202200002), on the table keyed by time.
CREATE TRIGGER ledger_messages_count_accepted AFTER INSERT ON ledger_messages FOR EACH ROW
INSERT INTO ledger_counts (day, source, shard, accepted, stored, duplicates, dead_lettered)
VALUES (NEW.day, NEW.source, CONNECTION_ID(), 1,
        NEW.outcome <=> 'stored', NEW.outcome <=> 'duplicate', NEW.outcome <=> 'dead_lettered')
ON DUPLICATE KEY UPDATE
    accepted = accepted + 1,
    stored = stored + VALUES(stored),
    duplicates = duplicates + VALUES(duplicates),
    dead_lettered = dead_lettered + VALUES(dead_lettered)
