-- What vendor_health shows, counted when the rows are written instead of when the view is read,
-- so the dashboard reads a few rows per vendor and day however many events, dead letters and
-- rejections there are. The triggers that follow keep it, in the same transaction as the rows
-- they count, whoever writes them (the consumer, `consumer dlq`, a person with a SQL client).
--
-- Each connection adds to rows of its own (`shard` = CONNECTION_ID()): two transactions never
-- wait for each other on a counter, and the view sums the shards. Counts are of rows as they
-- were stored: deleting rows later (the rejection log's pruning) does not lower them.
CREATE TABLE daily_counts (
    day DATE NOT NULL,
    source VARCHAR(64) NOT NULL,
    shard BIGINT UNSIGNED NOT NULL,
    events BIGINT NOT NULL DEFAULT 0,
    duplicates BIGINT NOT NULL DEFAULT 0,
    retried BIGINT NOT NULL DEFAULT 0,
    latency_sum_us DECIMAL(38, 0) NOT NULL DEFAULT 0,
    latency_max_us BIGINT NULL,
    dead_lettered BIGINT NOT NULL DEFAULT 0,
    rejected BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, source, shard)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
