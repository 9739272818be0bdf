-- A record of each message the consumer sent to {P}.dlx (the message itself stays in {P}.dead
-- until replayed), for the dashboard and vendor_health.
CREATE TABLE dead_letters (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    source VARCHAR(64) NOT NULL,
    delivery_id VARCHAR(200) NOT NULL,
    event_type VARCHAR(128) NOT NULL,
    reason VARCHAR(32) NOT NULL,
    error TEXT NOT NULL,
    retry_count INT UNSIGNED NOT NULL,
    dead_lettered_at DATETIME(6) NOT NULL,
    KEY dead_letters_at (dead_lettered_at),
    KEY dead_letters_source_at (source, dead_lettered_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
