-- The rows still pending (their message in a retry queue) are not moved, since they could not
-- be found again without their `received_at`: their `accepted` is taken back instead, and each
-- is counted afresh, with its outcome, when its message comes back.
INSERT INTO ledger_counts (day, source, shard, accepted)
SELECT day, source, 0, -COUNT(*) FROM ledger_messages WHERE outcome IS NULL GROUP BY day, source
ON DUPLICATE KEY UPDATE accepted = accepted + VALUES(accepted)
