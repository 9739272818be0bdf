-- Per vendor and day (UTC): events stored, duplicates seen, events that needed retries,
-- dead letters, rejected requests, and ingest-to-store latency in milliseconds.
CREATE OR REPLACE VIEW vendor_health AS
SELECT
    source,
    day,
    SUM(events) AS events,
    SUM(duplicates) AS duplicates,
    SUM(retried) AS retried,
    SUM(dead_lettered) AS dead_lettered,
    SUM(rejected) AS rejected,
    MAX(latency_avg_ms) AS latency_avg_ms,
    MAX(latency_max_ms) AS latency_max_ms
FROM (
    SELECT source, DATE(received_at) AS day, COUNT(*) AS events, SUM(duplicates) AS duplicates,
           SUM(retry_count > 0) AS retried, 0 AS dead_lettered, 0 AS rejected,
           AVG(TIMESTAMPDIFF(MICROSECOND, received_at, stored_at)) / 1000 AS latency_avg_ms,
           MAX(TIMESTAMPDIFF(MICROSECOND, received_at, stored_at)) / 1000 AS latency_max_ms
    FROM events GROUP BY source, DATE(received_at)
    UNION ALL
    SELECT source, DATE(dead_lettered_at), 0, 0, 0, COUNT(*), 0, NULL, NULL
    FROM dead_letters GROUP BY source, DATE(dead_lettered_at)
    UNION ALL
    SELECT source, DATE(received_at), 0, 0, 0, 0, COUNT(*), NULL, NULL
    FROM rejections GROUP BY source, DATE(received_at)
) AS daily
GROUP BY source, day
