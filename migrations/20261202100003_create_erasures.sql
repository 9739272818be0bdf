-- One tombstone per erased event (`consumer erase`): who erased it, when, why, and how it was
-- matched (its delivery id, or a JSON pointer: the pointer and the SHA-256 of the value, never
-- the value itself). The event's row stays in `events` (status `erased`, body NULL) as its
-- dedup key, so a retry of it is a duplicate whose body and sale are not stored again.
CREATE TABLE erasures (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    source VARCHAR(64) NOT NULL,
    delivery_id VARCHAR(200) NOT NULL,
    event_type VARCHAR(128) NOT NULL,
    erased_at DATETIME(6) NOT NULL,
    erased_by VARCHAR(128) NOT NULL,
    reason VARCHAR(1000) NULL,
    matched_by VARCHAR(300) NOT NULL,
    sales_cleared INT UNSIGNED NOT NULL DEFAULT 0,
    UNIQUE KEY erasures_source_delivery_id (source, delivery_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
