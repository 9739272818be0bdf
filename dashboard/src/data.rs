//! What the dashboard shows, read from the SQL views; SQL lives here and nowhere else.
//!
//! The views sum per-day and per-month counts that the database keeps as rows are written
//! (`daily_counts`, `sales_months`), so every query here reads a number of rows that grows with
//! vendors and days, never with events, orders or rejections.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sqlx::{FromRow, MySqlPool};

/// At most this many days of vendor health are shown: every vendor of each day shown, the
/// newest days first. Rejections of unknown sources are one bucket, so a day has at most one
/// row per configured vendor and one more: no stranger can push a vendor out.
pub const MAX_HEALTH_DAYS: u32 = 400;

/// One row of `sales_per_month`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct MonthSales {
    /// Vendor.
    pub source: String,
    /// `YYYY-MM`.
    pub month: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Orders sold that month.
    pub orders: i64,
    /// Sold, in minor units.
    pub gross_minor: i64,
    /// Refunded that month, in minor units.
    pub refunded_minor: i64,
    /// Gross minus refunded.
    pub net_minor: i64,
}

/// One row of `vendor_health`.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct DayHealth {
    /// Vendor.
    pub source: String,
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Events stored.
    pub events: i64,
    /// Duplicate deliveries seen.
    pub duplicates: i64,
    /// Events that needed at least one retry.
    pub retried: i64,
    /// Messages dead-lettered.
    pub dead_lettered: i64,
    /// Requests rejected by the handler.
    pub rejected: i64,
    /// Mean ingest-to-store latency.
    pub latency_avg_ms: Option<f64>,
    /// Worst ingest-to-store latency.
    pub latency_max_ms: Option<f64>,
}

/// One row of the `ledger` view, with the day's rejections by reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct LedgerDay {
    /// Vendor.
    pub source: String,
    /// `YYYY-MM-DD` (UTC) of the handler's `received-at`.
    pub day: String,
    /// Messages the handler accepted (answered 200 for), each counted once.
    pub accepted: i64,
    /// Of them, stored as new events.
    pub stored: i64,
    /// Of them, duplicates of an event another request stored.
    pub duplicates: i64,
    /// Of them, dead-lettered.
    pub dead_lettered: i64,
    /// `accepted - stored - duplicates - dead_lettered`.
    pub difference: i64,
    /// Of the difference, messages in a retry queue and not yet due back.
    pub in_flight: i64,
    /// `difference - in_flight`: not 0 means the day does not balance.
    pub unexplained: i64,
    /// Requests rejected that day (never accepted: beside the balance).
    pub rejected: i64,
    /// The rejected requests by reason.
    #[sqlx(skip)]
    pub rejected_by_reason: BTreeMap<String, i64>,
}

/// The ledger per day within the filter's months, newest first: the newest
/// [`MAX_HEALTH_DAYS`] days' rows at most (a day has at most one row per vendor).
pub async fn ledger(pool: &MySqlPool, filter: &Filter) -> sqlx::Result<Vec<LedgerDay>> {
    let (first, last) = (format!("{}-01", filter.from), format!("{}-01", filter.to));
    let mut days: Vec<LedgerDay> = sqlx::query_as(
        "SELECT source, DATE_FORMAT(day, '%Y-%m-%d') AS day, accepted, stored, duplicates, dead_lettered, \
         difference, in_flight, unexplained, rejected \
         FROM ledger WHERE day BETWEEN ? AND LAST_DAY(?) AND (? IS NULL OR source = ?) \
         ORDER BY day DESC, source LIMIT ?",
    )
    .bind(&first)
    .bind(&last)
    .bind(&filter.vendor)
    .bind(&filter.vendor)
    .bind(MAX_HEALTH_DAYS * 50)
    .fetch_all(pool)
    .await?;
    let Some(oldest) = days.last().map(|day| day.day.clone()) else {
        return Ok(days);
    };
    let reasons: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT source, DATE_FORMAT(day, '%Y-%m-%d'), reason, rejected FROM ledger_rejections \
         WHERE day BETWEEN ? AND LAST_DAY(?) AND (? IS NULL OR source = ?)",
    )
    .bind(&oldest)
    .bind(&last)
    .bind(&filter.vendor)
    .bind(&filter.vendor)
    .fetch_all(pool)
    .await?;
    let mut by_day: HashMap<(String, String), BTreeMap<String, i64>> = HashMap::new();
    for (source, day, reason, rejected) in reasons {
        by_day.entry((source, day)).or_default().insert(reason, rejected);
    }
    for day in &mut days {
        if let Some(reasons) = by_day.remove(&(day.source.clone(), day.day.clone())) {
            day.rejected_by_reason = reasons;
        }
    }
    Ok(days)
}

/// The days the ledger metric looks back over: an unexplained difference is reported for a
/// week, then left to the page and the view.
pub const LEDGER_METRIC_DAYS: u32 = 7;

/// Per vendor, the unexplained difference of the last [`LEDGER_METRIC_DAYS`] days (today
/// included), largest first.
pub async fn ledger_unexplained(pool: &MySqlPool) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT source, CAST(SUM(unexplained) AS SIGNED) AS unexplained FROM ledger \
         WHERE day >= UTC_DATE() - INTERVAL ? DAY GROUP BY source \
         ORDER BY ABS(SUM(unexplained)) DESC, source",
    )
    .bind(LEDGER_METRIC_DAYS - 1)
    .fetch_all(pool)
    .await
}

/// A recent dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct DeadLetter {
    /// Vendor.
    pub source: String,
    /// Delivery id.
    pub delivery_id: String,
    /// Event type.
    pub event_type: String,
    /// `poison` or `retries_exhausted`.
    pub reason: String,
    /// The last error.
    pub error: String,
    /// Retries spent.
    pub retry_count: i64,
    /// When (UTC, `YYYY-MM-DD HH:MM:SS`).
    pub dead_lettered_at: String,
}

/// The filters of the page and the API: an optional vendor and an inclusive month range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Only this vendor, when set.
    pub vendor: Option<String>,
    /// First month, `YYYY-MM`.
    pub from: String,
    /// Last month, `YYYY-MM`.
    pub to: String,
}

/// Sales per month within the filter, ordered by vendor, currency, month.
pub async fn sales(pool: &MySqlPool, filter: &Filter) -> sqlx::Result<Vec<MonthSales>> {
    sqlx::query_as(
        "SELECT source, month, currency, CAST(orders AS SIGNED) AS orders, \
         CAST(gross_minor AS SIGNED) AS gross_minor, CAST(refunded_minor AS SIGNED) AS refunded_minor, \
         CAST(net_minor AS SIGNED) AS net_minor \
         FROM sales_per_month WHERE month BETWEEN ? AND ? AND (? IS NULL OR source = ?) \
         ORDER BY source, currency, month",
    )
    .bind(&filter.from)
    .bind(&filter.to)
    .bind(&filter.vendor)
    .bind(&filter.vendor)
    .fetch_all(pool)
    .await
}

/// Vendor health per day within the filter's months, newest first: every row of the newest
/// [`MAX_HEALTH_DAYS`] days that have any.
pub async fn health(pool: &MySqlPool, filter: &Filter) -> sqlx::Result<Vec<DayHealth>> {
    let (first, last) = (format!("{}-01", filter.from), format!("{}-01", filter.to));
    // The oldest day shown, when the range holds more days than are shown.
    let oldest: Option<String> = sqlx::query_scalar(
        "SELECT DATE_FORMAT(day, '%Y-%m-%d') FROM vendor_health \
         WHERE day BETWEEN ? AND LAST_DAY(?) AND (? IS NULL OR source = ?) \
         GROUP BY day ORDER BY day DESC LIMIT 1 OFFSET ?",
    )
    .bind(&first)
    .bind(&last)
    .bind(&filter.vendor)
    .bind(&filter.vendor)
    .bind(MAX_HEALTH_DAYS - 1)
    .fetch_optional(pool)
    .await?;
    // `YYYY-MM-DD` text compares as the days do.
    let since = oldest.filter(|oldest| *oldest > first).unwrap_or(first);
    sqlx::query_as(
        "SELECT source, DATE_FORMAT(day, '%Y-%m-%d') AS day, CAST(events AS SIGNED) AS events, \
         CAST(duplicates AS SIGNED) AS duplicates, CAST(retried AS SIGNED) AS retried, \
         CAST(dead_lettered AS SIGNED) AS dead_lettered, CAST(rejected AS SIGNED) AS rejected, \
         CAST(latency_avg_ms AS DOUBLE) AS latency_avg_ms, CAST(latency_max_ms AS DOUBLE) AS latency_max_ms \
         FROM vendor_health WHERE day BETWEEN ? AND LAST_DAY(?) \
         AND (? IS NULL OR source = ?) ORDER BY day DESC, source",
    )
    .bind(&since)
    .bind(&last)
    .bind(&filter.vendor)
    .bind(&filter.vendor)
    .fetch_all(pool)
    .await
}

/// The latest dead letters (all time), newest first.
pub async fn dead_letters(pool: &MySqlPool, vendor: Option<&str>, limit: u32) -> sqlx::Result<Vec<DeadLetter>> {
    sqlx::query_as(
        "SELECT source, delivery_id, event_type, reason, error, CAST(retry_count AS SIGNED) AS retry_count, \
         DATE_FORMAT(dead_lettered_at, '%Y-%m-%d %H:%i:%s') AS dead_lettered_at \
         FROM dead_letters WHERE (? IS NULL OR source = ?) ORDER BY dead_lettered_at DESC, id DESC LIMIT ?",
    )
    .bind(vendor)
    .bind(vendor)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Every vendor that has events or sales, for the filter.
pub async fn vendors(pool: &MySqlPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT source FROM vendor_health WHERE events > 0 UNION SELECT source FROM sales_per_month ORDER BY 1",
    )
    .fetch_all(pool)
    .await
}
