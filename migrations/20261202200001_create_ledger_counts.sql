-- What the `ledger` view sums, per day (of `received-at`), source and connection: messages
-- accepted, and of them how many were stored (a new row), duplicates (the row was there:
-- another request with the same delivery id stored it) and dead-lettered. Kept by the triggers
-- on ledger_messages; sharded by CONNECTION_ID() as daily_counts is, so two transactions never
-- wait on one counter.
CREATE TABLE ledger_counts (
    day DATE NOT NULL,
    source VARCHAR(64) NOT NULL,
    shard BIGINT UNSIGNED NOT NULL,
    accepted BIGINT NOT NULL DEFAULT 0,
    stored BIGINT NOT NULL DEFAULT 0,
    duplicates BIGINT NOT NULL DEFAULT 0,
    dead_lettered BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, source, shard)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
