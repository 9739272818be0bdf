//! What the dashboard shows, read from the SQL views; SQL lives here and nowhere else.
//!
//! The views sum per-day and per-month counts that the database keeps as rows are written
//! (`daily_counts`, `sales_months`), so every query here reads a number of rows that grows with
//! vendors and days, never with events, orders or rejections.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sqlx::{FromRow, MySql, MySqlPool, QueryBuilder};

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

/// The filters of `/events`, checked: every field is what the query may bind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this source.
    pub source: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only events received at or after this time (`YYYY-MM-DD HH:MM:SS`, UTC).
    pub since: Option<String>,
    /// Only events received before this time (`YYYY-MM-DD HH:MM:SS`, UTC).
    pub until: Option<String>,
    /// Only the event with this delivery id.
    pub delivery_id: Option<String>,
    /// Keyset cursor: only events with a smaller id (the page after the one that ended there).
    pub before: Option<u64>,
    /// Rows per page.
    pub limit: u32,
}

/// A row of `/events`: the envelope, not the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct EventSummary {
    /// `events.id`.
    pub id: i64,
    /// Vendor.
    pub source: String,
    /// Delivery id.
    pub delivery_id: String,
    /// Event type.
    pub event_type: String,
    /// `stored`, `processed`, `failed`, `erased`, …
    pub status: String,
    /// Received by the handler (UTC).
    pub received_at: String,
    /// `kept`, or `cleared` once the body is gone (purged or erased).
    pub body_state: String,
}

/// A page of events, newest first (by id), at most `filter.limit` of them; the rows and
/// whether more follow.
pub async fn events(pool: &MySqlPool, filter: &EventFilter) -> sqlx::Result<(Vec<EventSummary>, bool)> {
    // A delivery id is unique per source: with no source given, look it up under each source
    // stored (a few point reads of the unique key) instead of scanning every event.
    let sources = match (&filter.source, &filter.delivery_id) {
        (None, Some(_)) => stored_sources(pool).await?,
        _ => Vec::new(),
    };
    let mut rows: Vec<EventSummary> = events_query(filter, &sources).build_query_as().fetch_all(pool).await?;
    let more = rows.len() > filter.limit as usize;
    rows.truncate(filter.limit as usize);
    Ok((rows, more))
}

/// At most this many sources are read one by one for a delivery id given without its source;
/// past it the search reads the table.
const MAX_SOURCES_LOOKED_UP: usize = 1_000;

/// Every source with a stored event, in order, one read of the unique key each (`MIN(source)`
/// past the last one found: the key's first column, so a seek, whatever the optimizer's
/// statistics say); empty when there are more than [`MAX_SOURCES_LOOKED_UP`].
async fn stored_sources(pool: &MySqlPool) -> sqlx::Result<Vec<String>> {
    let mut connection = pool.acquire().await?;
    let mut sources: Vec<String> = Vec::new();
    loop {
        let next: Option<String> = match sources.last() {
            None => {
                sqlx::query_scalar("SELECT MIN(source) FROM events")
                    .fetch_one(&mut *connection)
                    .await?
            }
            Some(last) => {
                sqlx::query_scalar("SELECT MIN(source) FROM events WHERE source > ?")
                    .bind(last)
                    .fetch_one(&mut *connection)
                    .await?
            }
        };
        match next {
            Some(_) if sources.len() == MAX_SOURCES_LOOKED_UP => return Ok(Vec::new()),
            Some(source) => sources.push(source),
            None => return Ok(sources),
        }
    }
}

/// The `/events` query with only the conditions `filter` sets, so that the database can use
/// the key each one matches (`source` and `delivery_id` the unique key, a time range
/// `received_at`'s); `sources` (every source stored, when known) stands in for a missing
/// source when a delivery id is given.
fn events_query(filter: &EventFilter, sources: &[String]) -> QueryBuilder<MySql> {
    let mut query = QueryBuilder::new(
        "SELECT CAST(id AS SIGNED) AS id, source, delivery_id, event_type, status, \
         DATE_FORMAT(received_at, '%Y-%m-%d %H:%i:%s') AS received_at, IF(body IS NULL, 'cleared', 'kept') AS body_state \
         FROM events WHERE TRUE",
    );
    if let Some(source) = &filter.source {
        query.push(" AND source = ").push_bind(source);
    } else if filter.delivery_id.is_some() && !sources.is_empty() {
        query.push(" AND source IN (");
        let mut list = query.separated(", ");
        for source in sources {
            list.push_bind(source);
        }
        query.push(")");
    }
    if let Some(delivery_id) = &filter.delivery_id {
        query.push(" AND delivery_id = ").push_bind(delivery_id);
    }
    if let Some(event_type) = &filter.event_type {
        query.push(" AND event_type = ").push_bind(event_type);
    }
    if let Some(since) = &filter.since {
        query.push(" AND received_at >= ").push_bind(since);
    }
    if let Some(until) = &filter.until {
        query.push(" AND received_at < ").push_bind(until);
    }
    if let Some(before) = filter.before {
        query.push(" AND id < ").push_bind(before);
    }
    query.push(" ORDER BY id DESC LIMIT ").push_bind(filter.limit + 1);
    query
}

/// One stored event, everything the `events` table keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct EventDetail {
    /// `events.id`.
    pub id: i64,
    /// Vendor.
    pub source: String,
    /// Delivery id.
    pub delivery_id: String,
    /// Event type.
    pub event_type: String,
    /// How the body is encoded.
    pub content_type: String,
    /// SHA-256 of the body as received (kept after a purge).
    pub body_sha256: String,
    /// Received by the handler (UTC).
    pub received_at: String,
    /// Stored by the consumer (UTC).
    pub stored_at: String,
    /// Retries before it was stored.
    pub retry_count: i64,
    /// Duplicate deliveries seen.
    pub duplicates: i64,
    /// Of them, with another body.
    pub conflicts: i64,
    /// What processing made of it.
    pub status: String,
    /// When a processor handled it.
    pub processed_at: Option<String>,
    /// A processor's error.
    pub error: Option<String>,
    /// When the body was cleared (retention or erasure).
    pub purged_at: Option<String>,
    /// The body; `None` once cleared.
    pub body: Option<String>,
}

/// The tombstone of an erased event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct Erasure {
    /// When (UTC).
    pub erased_at: String,
    /// Who.
    pub erased_by: String,
    /// Why, if given.
    pub reason: Option<String>,
    /// How the event was matched.
    pub matched_by: String,
}

/// The event with this id, and its tombstone if it was erased.
pub async fn event(pool: &MySqlPool, id: u64) -> sqlx::Result<Option<(EventDetail, Option<Erasure>)>> {
    let detail: Option<EventDetail> = sqlx::query_as(
        "SELECT CAST(id AS SIGNED) AS id, source, delivery_id, event_type, content_type, body_sha256, \
         DATE_FORMAT(received_at, '%Y-%m-%d %H:%i:%s.%f') AS received_at, \
         DATE_FORMAT(stored_at, '%Y-%m-%d %H:%i:%s.%f') AS stored_at, \
         CAST(retry_count AS SIGNED) AS retry_count, CAST(duplicates AS SIGNED) AS duplicates, \
         CAST(conflicts AS SIGNED) AS conflicts, status, \
         DATE_FORMAT(processed_at, '%Y-%m-%d %H:%i:%s.%f') AS processed_at, error, \
         DATE_FORMAT(purged_at, '%Y-%m-%d %H:%i:%s.%f') AS purged_at, body \
         FROM events WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(detail) = detail else {
        return Ok(None);
    };
    let erasure = sqlx::query_as(
        "SELECT DATE_FORMAT(erased_at, '%Y-%m-%d %H:%i:%s') AS erased_at, erased_by, reason, matched_by \
         FROM erasures WHERE source = ? AND delivery_id = ?",
    )
    .bind(&detail.source)
    .bind(&detail.delivery_id)
    .fetch_optional(pool)
    .await?;
    Ok(Some((detail, erasure)))
}

/// Rejections of a window summed by source and reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct RejectionTotal {
    /// Vendor (`(unknown)` for sources that are not configured).
    pub source: String,
    /// Why the handler refused the requests.
    pub reason: String,
    /// How many.
    pub rejected: i64,
}

/// Rejections per source and reason from `first` to `last` (days, inclusive), most first:
/// read from the per-day counts, so the cost grows with days, sources and reasons, never with
/// rejections.
pub async fn rejection_totals(
    pool: &MySqlPool,
    first: &str,
    last: &str,
    source: Option<&str>,
) -> sqlx::Result<Vec<RejectionTotal>> {
    sqlx::query_as(
        "SELECT source, reason, CAST(SUM(rejected) AS SIGNED) AS rejected FROM rejection_counts \
         WHERE day BETWEEN ? AND ? AND (? IS NULL OR source = ?) \
         GROUP BY source, reason HAVING SUM(rejected) <> 0 ORDER BY rejected DESC, source, reason",
    )
    .bind(first)
    .bind(last)
    .bind(source)
    .bind(source)
    .fetch_all(pool)
    .await
}

/// A raw row of the rejection log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct Rejection {
    /// When (UTC).
    pub received_at: String,
    /// Vendor, or `(unknown)`.
    pub source: String,
    /// The name an unknown source claimed (escaped and bounded by the handler).
    pub claimed_source: Option<String>,
    /// Why.
    pub reason: String,
    /// The HTTP status answered.
    pub status: i64,
    /// The handler's request id.
    pub request_id: String,
    /// The delivery id, if the request had one.
    pub delivery_id: Option<String>,
}

/// The latest `limit` rejections (through the `received_at` indexes), newest first.
pub async fn latest_rejections(pool: &MySqlPool, source: Option<&str>, limit: u32) -> sqlx::Result<Vec<Rejection>> {
    // Two statements rather than `? IS NULL OR source = ?`, so each has its index.
    let query = match source {
        None => sqlx::query_as(
            "SELECT DATE_FORMAT(received_at, '%Y-%m-%d %H:%i:%s') AS received_at, source, claimed_source, reason, \
             CAST(status AS SIGNED) AS status, request_id, delivery_id FROM rejections \
             ORDER BY received_at DESC LIMIT ?",
        ),
        Some(_) => sqlx::query_as(
            "SELECT DATE_FORMAT(received_at, '%Y-%m-%d %H:%i:%s') AS received_at, source, claimed_source, reason, \
             CAST(status AS SIGNED) AS status, request_id, delivery_id FROM rejections \
             WHERE source = ? ORDER BY received_at DESC LIMIT ?",
        ),
    };
    let query = match source {
        None => query,
        Some(source) => query.bind(source),
    };
    query.bind(limit).fetch_all(pool).await
}

/// A dead letter with its row id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct DeadLetterRow {
    /// `dead_letters.id`.
    pub id: i64,
    /// The letter.
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub letter: DeadLetter,
}

/// Dead letters newest first (by id), at most `limit`, before the id `before` when set; the
/// rows and whether more follow.
pub async fn dead_letter_page(
    pool: &MySqlPool,
    source: Option<&str>,
    before: Option<u64>,
    limit: u32,
) -> sqlx::Result<(Vec<DeadLetterRow>, bool)> {
    let mut rows: Vec<DeadLetterRow> = sqlx::query_as(
        "SELECT CAST(id AS SIGNED) AS id, source, delivery_id, event_type, reason, error, \
         CAST(retry_count AS SIGNED) AS retry_count, \
         DATE_FORMAT(dead_lettered_at, '%Y-%m-%d %H:%i:%s') AS dead_lettered_at \
         FROM dead_letters WHERE (? IS NULL OR source = ?) AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
    )
    .bind(source)
    .bind(source)
    .bind(before)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

/// The dead letters with these row ids (unknown ids are left out), newest first.
pub async fn dead_letters_by_id(pool: &MySqlPool, ids: &[u64]) -> sqlx::Result<Vec<DeadLetterRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = sqlx::QueryBuilder::new(
        "SELECT CAST(id AS SIGNED) AS id, source, delivery_id, event_type, reason, error, \
         CAST(retry_count AS SIGNED) AS retry_count, \
         DATE_FORMAT(dead_lettered_at, '%Y-%m-%d %H:%i:%s') AS dead_lettered_at \
         FROM dead_letters WHERE id IN (",
    );
    let mut separated = query.separated(", ");
    for id in ids {
        separated.push_bind(*id);
    }
    separated.push_unseparated(") ORDER BY id DESC");
    query.build_query_as().fetch_all(pool).await
}

/// The currencies that have sales, for the comparison's choices.
pub async fn currencies(pool: &MySqlPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT DISTINCT currency FROM sales_per_month ORDER BY 1")
        .fetch_all(pool)
        .await
}

/// Every vendor's sales per month in one currency within the months `from` to `to`, ordered by
/// vendor and month.
pub async fn sales_in_currency(
    pool: &MySqlPool,
    currency: &str,
    from: &str,
    to: &str,
) -> sqlx::Result<Vec<MonthSales>> {
    sqlx::query_as(
        "SELECT source, month, currency, CAST(orders AS SIGNED) AS orders, \
         CAST(gross_minor AS SIGNED) AS gross_minor, CAST(refunded_minor AS SIGNED) AS refunded_minor, \
         CAST(net_minor AS SIGNED) AS net_minor \
         FROM sales_per_month WHERE currency = ? AND month BETWEEN ? AND ? ORDER BY source, month",
    )
    .bind(currency)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}
