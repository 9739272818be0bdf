-- A new order's movements (see create_sales_months).
CREATE TRIGGER sales_count_inserted AFTER INSERT ON sales FOR EACH ROW
INSERT INTO sales_months (month, source, currency, shard, movements, orders, gross_minor, refunded_minor)
SELECT m_month, m_source, m_currency, CONNECTION_ID(), m_movements, m_orders, m_gross, m_refunded
FROM (
    SELECT DATE_FORMAT(NEW.sold_at, '%Y-%m') AS m_month, NEW.source AS m_source, NEW.currency AS m_currency,
           1 AS m_movements, 1 AS m_orders, CAST(NEW.amount_minor AS DECIMAL(38, 0)) AS m_gross,
           CAST(0 AS DECIMAL(38, 0)) AS m_refunded
    FROM DUAL WHERE NEW.sold_at IS NOT NULL
    UNION ALL
    SELECT DATE_FORMAT(NEW.refunded_at, '%Y-%m'), NEW.source, NEW.currency, 1, 0, 0, NEW.refunded_minor
    FROM DUAL WHERE NEW.refunded_at IS NOT NULL
) AS moves
ON DUPLICATE KEY UPDATE
    movements = movements + VALUES(movements),
    orders = orders + VALUES(orders),
    gross_minor = gross_minor + VALUES(gross_minor),
    refunded_minor = refunded_minor + VALUES(refunded_minor)
