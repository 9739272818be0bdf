-- Rejected requests per day, source, reason and connection, for the ledger's "rejected by
-- reason" (daily_counts has only the total). Kept by a trigger on rejections; pruning the
-- rejection log leaves the counts as they are.
CREATE TABLE rejection_counts (
    day DATE NOT NULL,
    source VARCHAR(64) NOT NULL,
    reason VARCHAR(64) NOT NULL,
    shard BIGINT UNSIGNED NOT NULL,
    rejected BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, source, reason, shard)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
