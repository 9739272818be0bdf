-- Per vendor and day (UTC): events stored, duplicates seen, events that needed retries,
-- dead letters, rejected requests, and ingest-to-store latency in milliseconds. The same
-- columns as before, summed over daily_counts' shards instead of over every row.
CREATE OR REPLACE VIEW vendor_health AS
SELECT
    source,
    day,
    SUM(events) AS events,
    SUM(duplicates) AS duplicates,
    SUM(retried) AS retried,
    SUM(dead_lettered) AS dead_lettered,
    SUM(rejected) AS rejected,
    SUM(latency_sum_us) / NULLIF(SUM(events), 0) / 1000 AS latency_avg_ms,
    MAX(latency_max_us) / 1000 AS latency_max_ms
FROM daily_counts
GROUP BY source, day
