-- A changed order: for the half (sale or refund) that changed, its old movement taken back and
-- its new one added.
CREATE TRIGGER sales_count_updated AFTER UPDATE ON sales FOR EACH ROW
BEGIN
    IF NOT (OLD.sold_at <=> NEW.sold_at AND OLD.amount_minor <=> NEW.amount_minor
            AND OLD.source <=> NEW.source AND OLD.currency <=> NEW.currency) THEN
        IF OLD.sold_at IS NOT NULL THEN
            INSERT INTO sales_months (month, source, currency, shard, movements, orders, gross_minor, refunded_minor)
            VALUES (DATE_FORMAT(OLD.sold_at, '%Y-%m'), OLD.source, OLD.currency, CONNECTION_ID(), -1, -1,
                    0 - CAST(OLD.amount_minor AS DECIMAL(38, 0)), 0)
            ON DUPLICATE KEY UPDATE movements = movements + VALUES(movements), orders = orders + VALUES(orders),
                gross_minor = gross_minor + VALUES(gross_minor), refunded_minor = refunded_minor + VALUES(refunded_minor);
        END IF;
        IF NEW.sold_at IS NOT NULL THEN
            INSERT INTO sales_months (month, source, currency, shard, movements, orders, gross_minor, refunded_minor)
            VALUES (DATE_FORMAT(NEW.sold_at, '%Y-%m'), NEW.source, NEW.currency, CONNECTION_ID(), 1, 1,
                    NEW.amount_minor, 0)
            ON DUPLICATE KEY UPDATE movements = movements + VALUES(movements), orders = orders + VALUES(orders),
                gross_minor = gross_minor + VALUES(gross_minor), refunded_minor = refunded_minor + VALUES(refunded_minor);
        END IF;
    END IF;
    IF NOT (OLD.refunded_at <=> NEW.refunded_at AND OLD.refunded_minor <=> NEW.refunded_minor
            AND OLD.source <=> NEW.source AND OLD.currency <=> NEW.currency) THEN
        IF OLD.refunded_at IS NOT NULL THEN
            INSERT INTO sales_months (month, source, currency, shard, movements, orders, gross_minor, refunded_minor)
            VALUES (DATE_FORMAT(OLD.refunded_at, '%Y-%m'), OLD.source, OLD.currency, CONNECTION_ID(), -1, 0,
                    0, 0 - CAST(OLD.refunded_minor AS DECIMAL(38, 0)))
            ON DUPLICATE KEY UPDATE movements = movements + VALUES(movements), orders = orders + VALUES(orders),
                gross_minor = gross_minor + VALUES(gross_minor), refunded_minor = refunded_minor + VALUES(refunded_minor);
        END IF;
        IF NEW.refunded_at IS NOT NULL THEN
            INSERT INTO sales_months (month, source, currency, shard, movements, orders, gross_minor, refunded_minor)
            VALUES (DATE_FORMAT(NEW.refunded_at, '%Y-%m'), NEW.source, NEW.currency, CONNECTION_ID(), 1, 0,
                    0, NEW.refunded_minor)
            ON DUPLICATE KEY UPDATE movements = movements + VALUES(movements), orders = orders + VALUES(orders),
                gross_minor = gross_minor + VALUES(gross_minor), refunded_minor = refunded_minor + VALUES(refunded_minor);
        END IF;
    END IF;
END
