-- One row per (source, delivery id): the unique key is what makes redeliveries and vendor
-- resends harmless. The body is kept byte for byte as text, so JSON functions work on it.
CREATE TABLE events (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    source VARCHAR(64) NOT NULL,
    delivery_id VARCHAR(200) NOT NULL,
    event_type VARCHAR(128) NOT NULL,
    body LONGTEXT NOT NULL,
    body_sha256 CHAR(64) NOT NULL,
    received_at DATETIME(6) NOT NULL,
    stored_at DATETIME(6) NOT NULL,
    retry_count INT UNSIGNED NOT NULL DEFAULT 0,
    duplicates INT UNSIGNED NOT NULL DEFAULT 0,
    status VARCHAR(16) NOT NULL DEFAULT 'stored',
    processed_at DATETIME(6) NULL,
    error TEXT NULL,
    UNIQUE KEY events_source_delivery_id (source, delivery_id),
    KEY events_received_at (received_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
