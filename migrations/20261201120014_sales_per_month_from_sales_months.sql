-- Sales per month per vendor and currency. A sale counts in the month it was made; an order's
-- refunds in the month of its latest refund. The same rows and columns as before, summed over
-- sales_months' shards instead of over every order.
CREATE OR REPLACE VIEW sales_per_month AS
SELECT
    source,
    month,
    currency,
    SUM(orders) AS orders,
    SUM(gross_minor) AS gross_minor,
    SUM(refunded_minor) AS refunded_minor,
    SUM(gross_minor) - SUM(refunded_minor) AS net_minor
FROM sales_months
GROUP BY source, month, currency
HAVING SUM(movements) > 0
