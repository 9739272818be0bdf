-- A deleted order: its movements taken back, so sales_per_month always matches `sales`.
CREATE TRIGGER sales_count_deleted AFTER DELETE ON sales FOR EACH ROW
INSERT INTO sales_months (month, source, currency, shard, movements, orders, gross_minor, refunded_minor)
SELECT m_month, m_source, m_currency, CONNECTION_ID(), m_movements, m_orders, m_gross, m_refunded
FROM (
    SELECT DATE_FORMAT(OLD.sold_at, '%Y-%m') AS m_month, OLD.source AS m_source, OLD.currency AS m_currency,
           -1 AS m_movements, -1 AS m_orders, 0 - CAST(OLD.amount_minor AS DECIMAL(38, 0)) AS m_gross,
           CAST(0 AS DECIMAL(38, 0)) AS m_refunded
    FROM DUAL WHERE OLD.sold_at IS NOT NULL
    UNION ALL
    SELECT DATE_FORMAT(OLD.refunded_at, '%Y-%m'), OLD.source, OLD.currency, -1, 0, 0,
           0 - CAST(OLD.refunded_minor AS DECIMAL(38, 0))
    FROM DUAL WHERE OLD.refunded_at IS NOT NULL
) AS moves
ON DUPLICATE KEY UPDATE
    movements = movements + VALUES(movements),
    orders = orders + VALUES(orders),
    gross_minor = gross_minor + VALUES(gross_minor),
    refunded_minor = refunded_minor + VALUES(refunded_minor)
