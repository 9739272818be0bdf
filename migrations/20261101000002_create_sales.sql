-- One row per order per source. A sale event and a refund event of the same order update
-- separate columns, and each kind only replaces what it holds when it is not older than what is
-- there (vendors do not guarantee order). Amounts are integer minor units (cents), never
-- floating point; the currency is kept per row and never summed across.
CREATE TABLE sales (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    source VARCHAR(64) NOT NULL,
    order_id VARCHAR(200) NOT NULL,
    currency CHAR(3) NOT NULL,
    amount_minor BIGINT NOT NULL DEFAULT 0,
    sold_at DATETIME(6) NULL,
    sale_event_id VARCHAR(200) NULL,
    refunded_minor BIGINT NOT NULL DEFAULT 0,
    refunded_at DATETIME(6) NULL,
    refund_event_id VARCHAR(200) NULL,
    updated_at DATETIME(6) NOT NULL,
    UNIQUE KEY sales_source_order (source, order_id),
    KEY sales_sold_at (sold_at),
    KEY sales_refunded_at (refunded_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
