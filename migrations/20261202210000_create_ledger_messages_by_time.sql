-- ledger_messages keyed by time: the same rows, with the publish's `received_at` first in the
-- primary key and its identity (the SHA-256 of source, delivery id and `received-at`) as 32
-- bytes. The consumer reads messages about in the order they were received, so its writes go
-- to the newest end of the table instead of to a random place in all of it: with a hex hash as
-- the whole key, every write read a random page of a table that grows by a row a message, and
-- once it outgrew the buffer pool the drain slowed to a third. Settled rows are pruned a day
-- after they were last seen (see the consumer's ledger pruner); the counts stay in
-- ledger_counts. The following migrations move the rows here and put it in the old one's place.
CREATE TABLE ledger_messages_by_time (
    received_at DATETIME(6) NOT NULL,
    accepted_id BINARY(32) NOT NULL,
    source VARCHAR(64) NOT NULL,
    day DATE NOT NULL,
    outcome VARCHAR(16) NULL,
    first_seen_at DATETIME(6) NOT NULL,
    seen_at DATETIME(6) NOT NULL,
    due_at DATETIME(6) NULL,
    PRIMARY KEY (received_at, accepted_id),
    KEY ledger_messages_due (due_at, source, day)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
