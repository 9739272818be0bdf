//! What the dashboard shows, read from the SQL views; SQL lives here and nowhere else.

use serde::Serialize;
use sqlx::{MySqlPool, Row};

/// One row of `sales_per_month`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// A recent dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    let rows = sqlx::query(
        "SELECT source, month, currency, CAST(orders AS SIGNED), CAST(gross_minor AS SIGNED), \
         CAST(refunded_minor AS SIGNED), CAST(net_minor AS SIGNED) \
         FROM sales_per_month WHERE month BETWEEN ? AND ? AND (? IS NULL OR source = ?) \
         ORDER BY source, currency, month",
    )
    .bind(&filter.from)
    .bind(&filter.to)
    .bind(&filter.vendor)
    .bind(&filter.vendor)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| MonthSales {
            source: row.get(0),
            month: row.get(1),
            currency: row.get(2),
            orders: row.get(3),
            gross_minor: row.get(4),
            refunded_minor: row.get(5),
            net_minor: row.get(6),
        })
        .collect())
}

/// Vendor health per day within the filter's months, newest first.
pub async fn health(pool: &MySqlPool, filter: &Filter) -> sqlx::Result<Vec<DayHealth>> {
    let rows = sqlx::query(
        "SELECT source, DATE_FORMAT(day, '%Y-%m-%d'), CAST(events AS SIGNED), CAST(duplicates AS SIGNED), \
         CAST(retried AS SIGNED), CAST(dead_lettered AS SIGNED), CAST(rejected AS SIGNED), \
         CAST(latency_avg_ms AS DOUBLE), CAST(latency_max_ms AS DOUBLE) \
         FROM vendor_health WHERE DATE_FORMAT(day, '%Y-%m') BETWEEN ? AND ? AND (? IS NULL OR source = ?) \
         ORDER BY day DESC, source LIMIT 400",
    )
    .bind(&filter.from)
    .bind(&filter.to)
    .bind(&filter.vendor)
    .bind(&filter.vendor)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| DayHealth {
            source: row.get(0),
            day: row.get(1),
            events: row.get(2),
            duplicates: row.get(3),
            retried: row.get(4),
            dead_lettered: row.get(5),
            rejected: row.get(6),
            latency_avg_ms: row.get(7),
            latency_max_ms: row.get(8),
        })
        .collect())
}

/// The latest dead letters (all time), newest first.
pub async fn dead_letters(pool: &MySqlPool, vendor: Option<&str>, limit: u32) -> sqlx::Result<Vec<DeadLetter>> {
    let rows = sqlx::query(
        "SELECT source, delivery_id, event_type, reason, error, CAST(retry_count AS SIGNED), \
         DATE_FORMAT(dead_lettered_at, '%Y-%m-%d %H:%i:%s') \
         FROM dead_letters WHERE (? IS NULL OR source = ?) ORDER BY dead_lettered_at DESC, id DESC LIMIT ?",
    )
    .bind(vendor)
    .bind(vendor)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| DeadLetter {
            source: row.get(0),
            delivery_id: row.get(1),
            event_type: row.get(2),
            reason: row.get(3),
            error: row.get(4),
            retry_count: row.get(5),
            dead_lettered_at: row.get(6),
        })
        .collect())
}

/// Every vendor that has events or sales, for the filter.
pub async fn vendors(pool: &MySqlPool) -> sqlx::Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT source FROM events GROUP BY source UNION SELECT source FROM sales GROUP BY source ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|row| row.get(0)).collect())
}
