-- The ledger's rejected requests by reason: per source, day (UTC) and reason.
CREATE OR REPLACE VIEW ledger_rejections AS
SELECT source, day, reason, CAST(SUM(rejected) AS SIGNED) AS rejected
FROM rejection_counts
GROUP BY source, day, reason
