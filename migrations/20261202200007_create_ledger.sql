-- Per source and day (of `received-at`, UTC): messages accepted, stored, duplicates,
-- dead-lettered, the difference (accepted - stored - duplicates - dead_lettered), how much of
-- it is in flight (messages in a retry queue and not yet due back), what is left unexplained,
-- and the requests rejected that day (beside the balance: they were never accepted). Reads the
-- counters and the pending messages only, never events.
CREATE OR REPLACE VIEW ledger AS
SELECT
    source,
    day,
    CAST(SUM(accepted) AS SIGNED) AS accepted,
    CAST(SUM(stored) AS SIGNED) AS stored,
    CAST(SUM(duplicates) AS SIGNED) AS duplicates,
    CAST(SUM(dead_lettered) AS SIGNED) AS dead_lettered,
    CAST(SUM(accepted) - SUM(stored) - SUM(duplicates) - SUM(dead_lettered) AS SIGNED) AS difference,
    CAST(SUM(in_flight) AS SIGNED) AS in_flight,
    CAST(SUM(accepted) - SUM(stored) - SUM(duplicates) - SUM(dead_lettered) - SUM(in_flight) AS SIGNED) AS unexplained,
    CAST(SUM(rejected) AS SIGNED) AS rejected
FROM (
    SELECT day, source, accepted, stored, duplicates, dead_lettered, 0 AS in_flight, 0 AS rejected
    FROM ledger_counts
    UNION ALL
    SELECT day, source, 0, 0, 0, 0, COUNT(*), 0
    FROM ledger_messages WHERE due_at >= UTC_TIMESTAMP(6) GROUP BY day, source
    UNION ALL
    SELECT day, source, 0, 0, 0, 0, 0, rejected
    FROM rejection_counts
) AS counted
GROUP BY source, day
