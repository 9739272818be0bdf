-- A deleted order: its movements taken back, so sales_per_month always matches `sales`.
CREATE TRIGGER sales_count_deleted AFTER DELETE ON sales FOR EACH ROW
BEGIN
    IF OLD.sold_at IS NOT NULL THEN
        INSERT INTO sales_months (month, source, currency, shard, movements, orders, gross_minor, refunded_minor)
        VALUES (DATE_FORMAT(OLD.sold_at, '%Y-%m'), OLD.source, OLD.currency, CONNECTION_ID(), -1, -1,
                0 - CAST(OLD.amount_minor AS DECIMAL(38, 0)), 0)
        ON DUPLICATE KEY UPDATE movements = movements + VALUES(movements), orders = orders + VALUES(orders),
            gross_minor = gross_minor + VALUES(gross_minor), refunded_minor = refunded_minor + VALUES(refunded_minor);
    END IF;
    IF OLD.refunded_at IS NOT NULL THEN
        INSERT INTO sales_months (month, source, currency, shard, movements, orders, gross_minor, refunded_minor)
        VALUES (DATE_FORMAT(OLD.refunded_at, '%Y-%m'), OLD.source, OLD.currency, CONNECTION_ID(), -1, 0,
                0, 0 - CAST(OLD.refunded_minor AS DECIMAL(38, 0)))
        ON DUPLICATE KEY UPDATE movements = movements + VALUES(movements), orders = orders + VALUES(orders),
            gross_minor = gross_minor + VALUES(gross_minor), refunded_minor = refunded_minor + VALUES(refunded_minor);
    END IF;
END
