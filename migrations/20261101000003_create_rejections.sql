-- The rejection log as the consumer stores it from {P}.rejected: no bodies, no signatures.
CREATE TABLE rejections (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    received_at DATETIME(6) NOT NULL,
    source VARCHAR(64) NOT NULL,
    reason VARCHAR(64) NOT NULL,
    status SMALLINT UNSIGNED NOT NULL,
    request_id VARCHAR(64) NOT NULL,
    delivery_id VARCHAR(200) NULL,
    remote_addr VARCHAR(64) NULL,
    content_length BIGINT UNSIGNED NULL,
    KEY rejections_received_at (received_at),
    KEY rejections_source_received_at (source, received_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
