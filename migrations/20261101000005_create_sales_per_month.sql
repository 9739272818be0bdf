-- Sales per month per vendor and currency. A sale counts in the month it was made; a refund in
-- the month it was made, so a month's figures do not change when a later month refunds.
CREATE OR REPLACE VIEW sales_per_month AS
SELECT
    source,
    month,
    currency,
    SUM(orders) AS orders,
    SUM(gross_minor) AS gross_minor,
    SUM(refunded_minor) AS refunded_minor,
    SUM(gross_minor) - SUM(refunded_minor) AS net_minor
FROM (
    SELECT source, DATE_FORMAT(sold_at, '%Y-%m') AS month, currency,
           1 AS orders, amount_minor AS gross_minor, 0 AS refunded_minor
    FROM sales WHERE sold_at IS NOT NULL
    UNION ALL
    SELECT source, DATE_FORMAT(refunded_at, '%Y-%m') AS month, currency,
           0 AS orders, 0 AS gross_minor, refunded_minor
    FROM sales WHERE refunded_at IS NOT NULL
) AS movements
GROUP BY source, month, currency
