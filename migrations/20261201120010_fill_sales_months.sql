-- The movements of the orders already stored, as shard 0.
INSERT INTO sales_months (month, source, currency, shard, movements, orders, gross_minor, refunded_minor)
SELECT m_month, m_source, m_currency, 0, SUM(m_movements), SUM(m_orders), SUM(m_gross), SUM(m_refunded)
FROM (
    SELECT DATE_FORMAT(sold_at, '%Y-%m') AS m_month, source AS m_source, currency AS m_currency,
           1 AS m_movements, 1 AS m_orders, amount_minor AS m_gross, 0 AS m_refunded
    FROM sales WHERE sold_at IS NOT NULL
    UNION ALL
    SELECT DATE_FORMAT(refunded_at, '%Y-%m'), source, currency, 1, 0, 0, refunded_minor
    FROM sales WHERE refunded_at IS NOT NULL
) AS movements
GROUP BY m_month, m_source, m_currency
