-- A changed order: its old movements taken back, its new ones added (only for the half, sale
-- or refund, that changed).
CREATE TRIGGER sales_count_updated AFTER UPDATE ON sales FOR EACH ROW
INSERT INTO sales_months (month, source, currency, shard, movements, orders, gross_minor, refunded_minor)
SELECT m_month, m_source, m_currency, CONNECTION_ID(), m_movements, m_orders, m_gross, m_refunded
FROM (
    SELECT DATE_FORMAT(OLD.sold_at, '%Y-%m') AS m_month, OLD.source AS m_source, OLD.currency AS m_currency,
           -1 AS m_movements, -1 AS m_orders, 0 - CAST(OLD.amount_minor AS DECIMAL(38, 0)) AS m_gross,
           CAST(0 AS DECIMAL(38, 0)) AS m_refunded
    FROM DUAL WHERE OLD.sold_at IS NOT NULL AND NOT (OLD.sold_at <=> NEW.sold_at
        AND OLD.amount_minor <=> NEW.amount_minor AND OLD.source <=> NEW.source AND OLD.currency <=> NEW.currency)
    UNION ALL
    SELECT DATE_FORMAT(NEW.sold_at, '%Y-%m'), NEW.source, NEW.currency, 1, 1, NEW.amount_minor, 0
    FROM DUAL WHERE NEW.sold_at IS NOT NULL AND NOT (OLD.sold_at <=> NEW.sold_at
        AND OLD.amount_minor <=> NEW.amount_minor AND OLD.source <=> NEW.source AND OLD.currency <=> NEW.currency)
    UNION ALL
    SELECT DATE_FORMAT(OLD.refunded_at, '%Y-%m'), OLD.source, OLD.currency, -1, 0, 0,
           0 - CAST(OLD.refunded_minor AS DECIMAL(38, 0))
    FROM DUAL WHERE OLD.refunded_at IS NOT NULL AND NOT (OLD.refunded_at <=> NEW.refunded_at
        AND OLD.refunded_minor <=> NEW.refunded_minor AND OLD.source <=> NEW.source AND OLD.currency <=> NEW.currency)
    UNION ALL
    SELECT DATE_FORMAT(NEW.refunded_at, '%Y-%m'), NEW.source, NEW.currency, 1, 0, 0, NEW.refunded_minor
    FROM DUAL WHERE NEW.refunded_at IS NOT NULL AND NOT (OLD.refunded_at <=> NEW.refunded_at
        AND OLD.refunded_minor <=> NEW.refunded_minor AND OLD.source <=> NEW.source AND OLD.currency <=> NEW.currency)
) AS moves
ON DUPLICATE KEY UPDATE
    movements = movements + VALUES(movements),
    orders = orders + VALUES(orders),
    gross_minor = gross_minor + VALUES(gross_minor),
    refunded_minor = refunded_minor + VALUES(refunded_minor)
