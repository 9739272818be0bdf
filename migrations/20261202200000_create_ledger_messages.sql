-- The ledger's record of each message the handler accepted (answered 200 for), one row per
-- publish, written by the consumer when it first reads the message and again when its outcome is
-- known. `accepted_id` is the hex SHA-256 of the message's source, delivery id and `received-at`:
-- a broker redelivery or a trip round the retry ladder carries the same three and is the same
-- row; a vendor's retry is a new request, a new `received-at`, a new row. `day` is the day of
-- `received-at` (UTC). `outcome` is NULL while the message is in the consumer's hands or in a
-- retry queue, then `stored`, `duplicate` or `dead_lettered`. `due_at` is set while it is
-- NULL: when the consumer expects to have seen the message again at the latest (the longest
-- retry delay and a grace after it was last sent to a retry queue); a pending message past it is
-- not explained by the retry ladder. Counted in ledger_counts by the triggers that follow.
CREATE TABLE ledger_messages (
    accepted_id CHAR(64) NOT NULL,
    source VARCHAR(64) NOT NULL,
    day DATE NOT NULL,
    outcome VARCHAR(16) NULL,
    first_seen_at DATETIME(6) NOT NULL,
    seen_at DATETIME(6) NOT NULL,
    due_at DATETIME(6) NULL,
    PRIMARY KEY (accepted_id),
    KEY ledger_messages_due (due_at, source, day)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
