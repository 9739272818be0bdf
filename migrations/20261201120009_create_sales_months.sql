-- What sales_per_month shows, kept by triggers on `sales` in the same transaction as each
-- change to an order, so the view reads a few rows per vendor, month and currency however many
-- orders there are. An order adds a movement (and an order and its amount) to the month it was
-- sold in, and a movement (and its refunded amount) to the month of its latest refund; a
-- change to the order takes its old movements back and adds its new ones. `movements` is how
-- many such are in the row: a month whose movements all moved away shows nothing.
-- Shards per connection as in daily_counts.
CREATE TABLE sales_months (
    month CHAR(7) NOT NULL,
    source VARCHAR(64) NOT NULL,
    currency CHAR(3) NOT NULL,
    shard BIGINT UNSIGNED NOT NULL,
    movements BIGINT NOT NULL DEFAULT 0,
    orders BIGINT NOT NULL DEFAULT 0,
    gross_minor DECIMAL(38, 0) NOT NULL DEFAULT 0,
    refunded_minor DECIMAL(38, 0) NOT NULL DEFAULT 0,
    PRIMARY KEY (month, source, currency, shard)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
