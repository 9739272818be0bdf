//! The database: creating it, migrating it, inserting a batch of events with what they
//! trigger (sales and refunds) in one transaction, and recording dead letters. SQL lives here
//! and nowhere else.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::mysql::{MySqlDatabaseError, MySqlPool, MySqlPoolOptions};
use sqlx::{MySql, QueryBuilder};

use webhook_core::envelope::{MAX_DELIVERY_ID_BYTES, MAX_SOURCE_BYTES};
use webhook_core::rejection::{RejectionRecord, bounded};

use crate::processors::{Kind, SaleChange};
use crate::settings::Settings;

/// The migrations in `migrations/`, embedded at compile time.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// How long taking a connection from the pool may take (including connecting).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Most bytes of bound values per statement. Well under `max_allowed_packet` (MySQL 8: 64 MiB,
/// MariaDB: 16 MiB), so a batch of large bodies is several statements, not a refused packet.
/// A single row larger than this is a statement of its own.
const MAX_STATEMENT_BYTES: usize = 4 * 1024 * 1024;

/// Bound values per row of the insert.
const BINDS_PER_ROW: usize = 9;

/// Rows per statement: MySQL allows at most 65,535 placeholders in one statement.
const MAX_ROWS_PER_STATEMENT: usize = 65_535 / BINDS_PER_ROW;

/// Bound values per row of the sales upsert.
const SALE_BINDS_PER_ROW: usize = 9;
/// Sale changes per upsert statement (small rows: placeholders are the only limit).
const MAX_SALES_PER_STATEMENT: usize = 1000;
const _: () = assert!(MAX_SALES_PER_STATEMENT * SALE_BINDS_PER_ROW <= 65_535);

/// Creates the database named in `DATABASE_URL` if it does not exist, then applies every
/// pending migration. Safe to run from several processes at once: a lost race to create the
/// database is fine, and the migrator holds a lock while it works.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let url = settings.database_url.expose();
    let redacted = settings.database_url.redacted();
    let exists = MySql::database_exists(url)
        .await
        .with_context(|| format!("cannot reach the database server at {redacted}"))?;
    if !exists {
        if let Err(error) = MySql::create_database(url).await {
            // Another consumer may have created it between our check and our CREATE.
            if !MySql::database_exists(url).await.unwrap_or(false) {
                return Err(error).with_context(|| format!("cannot create the database {redacted}"));
            }
        } else {
            log::info!("database created: url={redacted}");
        }
    }
    let pool = MySqlPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(settings.database_options()?)
        .await
        .with_context(|| format!("cannot connect to the database {redacted}"))?;
    let migrated = MIGRATOR
        .run(&pool)
        .await
        .with_context(|| format!("cannot apply the migrations to {redacted}"));
    pool.close().await;
    migrated?;
    log::info!(
        "database migrated: url={redacted} migrations={}",
        MIGRATOR.iter().count()
    );
    Ok(())
}

/// A lazily connecting pool: the consumer starts (and keeps running) while the database is
/// down, and each operation reports the outage instead.
pub(crate) fn pool(settings: &Settings) -> anyhow::Result<MySqlPool> {
    Ok(MySqlPoolOptions::new()
        .max_connections(settings.db_pool_size)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(settings.database_options()?))
}

/// One row of `events` to insert.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventRow<'a> {
    pub(crate) source: &'a str,
    pub(crate) delivery_id: &'a str,
    pub(crate) event_type: &'a str,
    pub(crate) body: &'a str,
    pub(crate) body_sha256: &'a str,
    /// `application/json`, or `application/x-www-form-urlencoded` for form sources.
    pub(crate) content_type: &'static str,
    pub(crate) received_at: DateTime<Utc>,
    pub(crate) retry_count: u32,
    /// Further copies of this event in the same batch: stored as its `duplicates`.
    pub(crate) copies: u32,
    /// What its processor made of it: a sale or refund to apply (status `processed`), or
    /// nothing (status `ignored`).
    pub(crate) sale: Option<&'a SaleChange>,
}

/// `events.status` of an event stored with a sale or refund applied.
pub(crate) const STATUS_PROCESSED: &str = "processed";
/// `events.status` of an event no processor matched.
pub(crate) const STATUS_IGNORED: &str = "ignored";

impl EventRow<'_> {
    /// Its `events.status`.
    pub(crate) fn status(&self) -> &'static str {
        if self.sale.is_some() {
            STATUS_PROCESSED
        } else {
            STATUS_IGNORED
        }
    }

    fn bound_bytes(&self) -> usize {
        self.source.len()
            + self.delivery_id.len()
            + self.event_type.len()
            + self.body.len()
            + self.content_type.len()
            + 64
            + 64
    }
}

/// What a committed insert did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Inserted<'a> {
    /// New rows per source.
    pub(crate) new_by_source: Vec<(&'a str, u64)>,
    /// Rows that were already stored (their `duplicates` went up).
    pub(crate) already_stored: u64,
}

/// How a database operation failed, which decides what happens to the batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StoreError {
    /// The database refused the data of (at least) one row: split the batch to find it.
    #[error("{0}")]
    Refused(String),
    /// A deadlock or lock wait timeout: the same batch again, shortly.
    #[error("{0}")]
    Conflict(String),
    /// The database cannot be reached or is not working: hold the batch and try again.
    #[error("{0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let text = error.to_string();
        match classify(&error) {
            Class::Refused => Self::Refused(text),
            Class::Conflict => Self::Conflict(text),
            Class::Unavailable => Self::Unavailable(text),
        }
    }
}

/// Kinds of database failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Refused,
    Conflict,
    Unavailable,
}

/// Sorts an error into refused data, a lock conflict, or unavailability (everything unknown).
pub(crate) fn classify(error: &sqlx::Error) -> Class {
    match error {
        sqlx::Error::Database(database) => match database.try_downcast_ref::<MySqlDatabaseError>() {
            Some(mysql) => classify_code(mysql.number(), mysql.code()),
            None => Class::Unavailable,
        },
        // A value that cannot be encoded is a property of the row, not of the connection.
        sqlx::Error::Encode(_) => Class::Refused,
        _ => Class::Unavailable,
    }
}

/// Sorts a MySQL/MariaDB error by number and SQLSTATE.
pub(crate) fn classify_code(number: u16, sqlstate: Option<&str>) -> Class {
    match number {
        // ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT
        1213 | 1205 => return Class::Conflict,
        // ER_DATA_TOO_LONG, ER_TRUNCATED_WRONG_VALUE_FOR_FIELD (incorrect string value),
        // ER_WARN_DATA_OUT_OF_RANGE, ER_TRUNCATED_WRONG_VALUE, WARN_DATA_TRUNCATED,
        // ER_BAD_NULL_ERROR, ER_INVALID_CHARACTER_STRING, ER_CHECK_CONSTRAINT_VIOLATED (MySQL 8),
        // ER_CONSTRAINT_FAILED (MariaDB), ER_SIGNAL_EXCEPTION (a trigger's SIGNAL),
        // ER_NET_PACKET_TOO_LARGE (one row larger than max_allowed_packet), ER_INVALID_JSON_TEXT.
        1406 | 1366 | 1264 | 1292 | 1265 | 1048 | 1300 | 3819 | 4025 | 1644 | 1153 | 3140 => {
            return Class::Refused;
        }
        _ => {}
    }
    match sqlstate {
        // Class 22: data exception; class 23: integrity constraint violation.
        Some(state) if state.starts_with("22") || state.starts_with("23") => Class::Refused,
        _ => Class::Unavailable,
    }
}

/// Inserts `rows` in one transaction with the sales and refunds they carry, and commits. A row
/// whose (source, delivery id) is already stored is not changed except for `duplicates`, which
/// goes up by one plus its `copies`; its sale or refund is applied again, which changes nothing
/// (see [`upsert_sales`]).
///
/// `rows` must be sorted by source (as [`crate::message::unique_events`] sorts them): each
/// statement holds one source, so the new rows per source are exact.
pub(crate) async fn insert_events<'a>(pool: &MySqlPool, rows: &[EventRow<'a>]) -> Result<Inserted<'a>, StoreError> {
    let mut inserted = Inserted::default();
    let mut transaction = pool.begin().await?;
    for statement in statements(rows) {
        let mut builder = QueryBuilder::<MySql>::new(
            "INSERT INTO events (source, delivery_id, event_type, body, body_sha256, content_type, received_at, stored_at, retry_count, duplicates, status, processed_at) ",
        );
        builder.push_values(statement, |mut values, row| {
            values
                .push_bind(row.source)
                .push_bind(row.delivery_id)
                .push_bind(row.event_type)
                .push_bind(row.body)
                .push_bind(row.body_sha256)
                .push_bind(row.content_type)
                .push_bind(row.received_at.naive_utc())
                .push("UTC_TIMESTAMP(6)")
                .push_bind(row.retry_count)
                .push_bind(row.copies)
                .push_bind(row.status())
                .push("UTC_TIMESTAMP(6)");
        });
        // VALUES(col) rather than MySQL 8's row alias: MariaDB has no row alias.
        builder.push(" ON DUPLICATE KEY UPDATE duplicates = duplicates + VALUES(duplicates) + 1");
        let affected = builder.build().execute(&mut *transaction).await?.rows_affected();
        let (new, already_stored) = split_affected(statement.len() as u64, affected);
        inserted.already_stored += already_stored;
        let source = statement[0].source;
        match inserted.new_by_source.last_mut() {
            Some((last, count)) if *last == source => *count += new,
            _ => inserted.new_by_source.push((source, new)),
        }
    }
    let mut sales: Vec<SaleRow<'_>> = rows
        .iter()
        .filter_map(|row| {
            row.sale.map(|change| SaleRow {
                source: row.source,
                event_id: row.delivery_id,
                change,
            })
        })
        .collect();
    // One order of locks for every consumer.
    sales.sort_by(|a, b| (a.source, &a.change.order_id).cmp(&(b.source, &b.change.order_id)));
    for chunk in sales.chunks(MAX_SALES_PER_STATEMENT) {
        upsert_sales(&mut transaction, chunk).await?;
    }
    transaction.commit().await?;
    Ok(inserted)
}

/// A sale or refund with the event it came from.
#[derive(Debug, Clone, Copy)]
struct SaleRow<'a> {
    source: &'a str,
    /// The event's delivery id (`sale_event_id` / `refund_event_id`).
    event_id: &'a str,
    change: &'a SaleChange,
}

/// Applies sales and refunds to `sales`, one row per (source, order id).
///
/// Vendors do not guarantee order, so each half of a row (the sale: `amount_minor`,
/// `sale_event_id`, `sold_at`; the refund: `refunded_minor`, `refund_event_id`, `refunded_at`)
/// keeps the latest event by (time, amount, event id): a change replaces it only when not
/// older. The amount breaks ties of time because a refund's amount is the order's refunded
/// total, which only grows; the event id makes the order total. So the row ends the same
/// whatever order the events arrive in, and applying one twice changes nothing. A refund
/// before any sale creates the row with amount 0 and no `sold_at`. The currency is the first
/// event's.
///
/// MySQL and MariaDB evaluate `ON DUPLICATE KEY UPDATE` assignments left to right, each seeing
/// the columns already assigned. So each half assigns its least significant column first and
/// its time last: once the event id is replaced, the comparison still holds on (time, amount);
/// once the amount is, on time alone.
async fn upsert_sales(transaction: &mut sqlx::Transaction<'_, MySql>, rows: &[SaleRow<'_>]) -> Result<(), StoreError> {
    const SALE_IS_NEWER: &str = "VALUES(sold_at) IS NOT NULL AND (sold_at IS NULL OR \
         (VALUES(sold_at), VALUES(amount_minor), VALUES(sale_event_id)) >= (sold_at, amount_minor, sale_event_id))";
    const REFUND_IS_NEWER: &str = "VALUES(refunded_at) IS NOT NULL AND (refunded_at IS NULL OR \
         (VALUES(refunded_at), VALUES(refunded_minor), VALUES(refund_event_id)) >= (refunded_at, refunded_minor, refund_event_id))";
    let mut builder = QueryBuilder::<MySql>::new(
        "INSERT INTO sales (source, order_id, currency, amount_minor, sold_at, sale_event_id, \
         refunded_minor, refunded_at, refund_event_id, updated_at) ",
    );
    builder.push_values(rows, |mut values, row| {
        let change = row.change;
        let at = Some(change.at.naive_utc());
        let (sale, refund) = match change.kind {
            Kind::Sale => ((change.amount_minor, at, Some(row.event_id)), (0, None, None)),
            Kind::Refund => ((0, None, None), (change.amount_minor, at, Some(row.event_id))),
        };
        values
            .push_bind(row.source)
            .push_bind(change.order_id.as_str())
            .push_bind(change.currency.as_str())
            .push_bind(sale.0)
            .push_bind(sale.1)
            .push_bind(sale.2)
            .push_bind(refund.0)
            .push_bind(refund.1)
            .push_bind(refund.2)
            .push("UTC_TIMESTAMP(6)");
    });
    builder.push(" ON DUPLICATE KEY UPDATE ");
    for (column, newer) in [
        ("sale_event_id", SALE_IS_NEWER),
        ("amount_minor", SALE_IS_NEWER),
        ("sold_at", SALE_IS_NEWER),
        ("refund_event_id", REFUND_IS_NEWER),
        ("refunded_minor", REFUND_IS_NEWER),
        ("refunded_at", REFUND_IS_NEWER),
    ] {
        builder.push(format_args!("{column} = IF({newer}, VALUES({column}), {column}), "));
    }
    builder.push("updated_at = UTC_TIMESTAMP(6)");
    builder.build().execute(&mut **transaction).await?;
    Ok(())
}

/// A record of one message sent to the dead-letter exchange.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetterRow<'a> {
    /// Its source, or `(unknown)` when poison lacks one.
    pub(crate) source: String,
    /// Its delivery id, or empty.
    pub(crate) delivery_id: String,
    /// Its event type, or `(unknown)`.
    pub(crate) event_type: String,
    /// `poison` or `retries_exhausted`.
    pub(crate) reason: &'static str,
    /// The `error` header it was dead-lettered with.
    pub(crate) error: &'a str,
    pub(crate) retry_count: u32,
}

/// Longest `dead_letters.error` kept, in characters (the column is TEXT: 65,535 bytes).
const MAX_DEAD_LETTER_ERROR_CHARS: usize = 4000;

/// Records dead letters in `dead_letters`, each value cut to its column's size (poison can
/// carry anything in its headers).
pub(crate) async fn insert_dead_letters(pool: &MySqlPool, rows: &[DeadLetterRow<'_>]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    // Six values per row: far below the placeholder limit for any batch (at most 5,000).
    let mut builder = QueryBuilder::<MySql>::new(
        "INSERT INTO dead_letters (source, delivery_id, event_type, reason, error, retry_count, dead_lettered_at) ",
    );
    builder.push_values(rows, |mut values, row| {
        values
            .push_bind(truncate_chars(&row.source, 64))
            .push_bind(truncate_chars(&row.delivery_id, 200))
            .push_bind(truncate_chars(&row.event_type, 128))
            .push_bind(row.reason)
            .push_bind(truncate_chars(row.error, MAX_DEAD_LETTER_ERROR_CHARS))
            .push_bind(row.retry_count)
            .push("UTC_TIMESTAMP(6)");
    });
    builder.build().execute(pool).await?;
    Ok(())
}

/// The first `max` characters of `text` (MySQL sizes `VARCHAR(n)` in characters).
fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Inserts rejection records (see [`crate::rejections`], which decides their `source`) in one
/// statement, each value cut to its column. A record whose time cannot be read is stored with
/// the time it is stored at. The per-day count in `daily_counts` is kept by a trigger.
pub(crate) async fn insert_rejections(pool: &MySqlPool, records: &[RejectionRecord]) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    // Nine values per row: far below the placeholder limit for a batch of 500.
    let mut builder = QueryBuilder::<MySql>::new(
        "INSERT INTO rejections (received_at, source, claimed_source, reason, status, request_id, delivery_id, remote_addr, content_length) ",
    );
    builder.push_values(records, |mut row, record| {
        let at = DateTime::parse_from_rfc3339(&record.at)
            .map(|at| at.naive_utc())
            .unwrap_or_else(|_| Utc::now().naive_utc());
        row.push_bind(at)
            .push_bind(bounded(&record.source, MAX_SOURCE_BYTES))
            .push_bind(
                record
                    .claimed_source
                    .as_deref()
                    .map(|claimed| bounded(claimed, MAX_SOURCE_BYTES)),
            )
            .push_bind(bounded(&record.reason, 64))
            .push_bind(record.status)
            .push_bind(bounded(&record.request_id, 64))
            .push_bind(
                record
                    .delivery_id
                    .as_deref()
                    .map(|id| bounded(id, MAX_DELIVERY_ID_BYTES)),
            )
            .push_bind(record.remote_addr.as_deref().map(|addr| bounded(addr, 64)))
            .push_bind(record.content_length);
    });
    builder.build().execute(pool).await?;
    Ok(())
}

/// Deletes rejection records older than `days` days, then the oldest beyond the newest
/// `max_rows`, at most 100,000 of each per call; returns how many it deleted.
pub(crate) async fn prune_rejections(pool: &MySqlPool, days: u32, max_rows: u64) -> Result<u64, StoreError> {
    let mut deleted = sqlx::query(
        "DELETE FROM rejections WHERE received_at < UTC_TIMESTAMP(6) - INTERVAL ? DAY ORDER BY received_at LIMIT 100000",
    )
    .bind(days)
    .execute(pool)
    .await?
    .rows_affected();
    // Ids grow with arrival: the row `max_rows` places below the newest is the last to go.
    let cut: Option<u64> = sqlx::query_scalar("SELECT id FROM rejections ORDER BY id DESC LIMIT 1 OFFSET ?")
        .bind(max_rows)
        .fetch_optional(pool)
        .await?;
    if let Some(cut) = cut {
        deleted += sqlx::query("DELETE FROM rejections WHERE id <= ? ORDER BY id LIMIT 100000")
            .bind(cut)
            .execute(pool)
            .await?
            .rows_affected();
    }
    Ok(deleted)
}

/// Rows affected by `INSERT … ON DUPLICATE KEY UPDATE` count 1 per new row and 2 per existing
/// row that was updated (the update always changes `duplicates`), whether or not the client
/// set CLIENT_FOUND_ROWS. So of `rows` rows, `affected - rows` were already stored.
pub(crate) fn split_affected(rows: u64, affected: u64) -> (u64, u64) {
    let already_stored = affected.saturating_sub(rows).min(rows);
    (rows - already_stored, already_stored)
}

/// Splits sorted rows into statements: one source per statement, at most
/// [`MAX_ROWS_PER_STATEMENT`] rows and (unless one row alone is bigger) [`MAX_STATEMENT_BYTES`].
fn statements<'r, 'a>(rows: &'r [EventRow<'a>]) -> Vec<&'r [EventRow<'a>]> {
    let mut statements = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (index, row) in rows.iter().enumerate() {
        let size = row.bound_bytes();
        let full = index > start
            && (row.source != rows[start].source
                || index - start >= MAX_ROWS_PER_STATEMENT
                || bytes + size > MAX_STATEMENT_BYTES);
        if full {
            statements.push(&rows[start..index]);
            start = index;
            bytes = 0;
        }
        bytes += size;
    }
    if start < rows.len() {
        statements.push(&rows[start..]);
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(source: &'a str, body: &'a str) -> EventRow<'a> {
        EventRow {
            source,
            delivery_id: "d",
            event_type: "t",
            body,
            body_sha256: "",
            content_type: "application/json",
            received_at: Utc::now(),
            retry_count: 0,
            copies: 0,
            sale: None,
        }
    }

    #[test]
    fn affected_rows_count_existing_rows_twice() {
        assert_eq!(split_affected(10, 10), (10, 0));
        assert_eq!(split_affected(10, 13), (7, 3));
        assert_eq!(split_affected(10, 20), (0, 10));
        // Never more than every row, whatever the server says.
        assert_eq!(split_affected(10, 25), (0, 10));
        assert_eq!(split_affected(10, 4), (10, 0));
    }

    #[test]
    fn one_statement_per_source() {
        let rows = [
            row("a", "{}"),
            row("a", "{}"),
            row("b", "{}"),
            row("c", "{}"),
            row("c", "{}"),
        ];
        let lengths: Vec<usize> = statements(&rows).iter().map(|s| s.len()).collect();
        assert_eq!(lengths, vec![2, 1, 2]);
        assert!(statements(&[]).is_empty());
    }

    #[test]
    fn large_bodies_are_spread_over_statements_and_a_huge_one_stands_alone() {
        let big = "x".repeat(MAX_STATEMENT_BYTES / 3);
        let huge = "x".repeat(MAX_STATEMENT_BYTES * 2);
        let rows = [
            row("a", &big),
            row("a", &big),
            row("a", &big),
            row("a", &huge),
            row("a", "{}"),
        ];
        let lengths: Vec<usize> = statements(&rows).iter().map(|s| s.len()).collect();
        assert_eq!(lengths, vec![2, 1, 1, 1]);
    }

    #[test]
    fn placeholders_stay_under_the_protocol_limit() {
        let rows = vec![row("a", "{}"); MAX_ROWS_PER_STATEMENT + 1];
        let lengths: Vec<usize> = statements(&rows).iter().map(|s| s.len()).collect();
        assert_eq!(lengths, vec![MAX_ROWS_PER_STATEMENT, 1]);
        const { assert!(MAX_ROWS_PER_STATEMENT * BINDS_PER_ROW <= 65_535) };
    }

    #[test]
    fn data_errors_are_refusals() {
        assert_eq!(classify_code(1406, Some("22001")), Class::Refused); // data too long
        assert_eq!(classify_code(1366, Some("HY000")), Class::Refused); // incorrect string value
        assert_eq!(classify_code(3819, Some("HY000")), Class::Refused); // MySQL check constraint
        assert_eq!(classify_code(4025, Some("23000")), Class::Refused); // MariaDB constraint
        assert_eq!(classify_code(1644, Some("45000")), Class::Refused); // trigger SIGNAL
        assert_eq!(classify_code(1048, Some("23000")), Class::Refused); // NOT NULL
        assert_eq!(classify_code(9999, Some("22007")), Class::Refused); // any class 22
        assert_eq!(classify_code(9999, Some("23000")), Class::Refused); // any class 23
    }

    #[test]
    fn lock_conflicts_are_retried_in_place() {
        assert_eq!(classify_code(1213, Some("40001")), Class::Conflict);
        assert_eq!(classify_code(1205, Some("HY000")), Class::Conflict);
    }

    #[test]
    fn everything_else_means_the_database_is_unavailable() {
        assert_eq!(classify_code(1045, Some("28000")), Class::Unavailable); // access denied
        assert_eq!(classify_code(1049, Some("42000")), Class::Unavailable); // unknown database
        assert_eq!(classify_code(1040, Some("08004")), Class::Unavailable); // too many connections
        assert_eq!(classify_code(1290, Some("HY000")), Class::Unavailable); // read-only
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), Class::Unavailable);
        assert_eq!(
            classify(&sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into())),
            Class::Unavailable
        );
    }

    async fn migrated_pool() -> (testkit::TestDatabase, MySqlPool) {
        let database = testkit::TestDatabase::new();
        database.create().await;
        let pool = MySqlPoolOptions::new()
            .max_connections(1)
            .connect(&database.url())
            .await
            .unwrap();
        MIGRATOR.run(&pool).await.unwrap();
        (database, pool)
    }

    /// The server's side of `split_affected`, checked on the real server (MariaDB here, and
    /// sqlx always sets CLIENT_FOUND_ROWS): a new row counts 1, an updated existing row 2, an
    /// existing row left as it was 1 (found, not changed) — which is why the update must
    /// always change `duplicates`.
    #[tokio::test]
    async fn rejections_are_pruned_by_age_and_to_the_newest_rows() {
        let (_database, pool) = migrated_pool().await;
        let record = |at: &str, request_id: &str| RejectionRecord {
            at: at.to_owned(),
            source: "shop".to_owned(),
            claimed_source: None,
            reason: "signature_mismatch".to_owned(),
            status: 401,
            request_id: request_id.to_owned(),
            delivery_id: None,
            remote_addr: None,
            content_length: None,
        };
        let now = webhook_core::envelope::format_time(Utc::now());
        let old = webhook_core::envelope::format_time(Utc::now() - chrono::Duration::days(31));
        let records: Vec<RejectionRecord> = std::iter::once(record(&old, "old"))
            .chain((1..=5).map(|n| record(&now, &format!("new-{n}"))))
            .collect();
        insert_rejections(&pool, &records).await.unwrap();
        assert_eq!(prune_rejections(&pool, 30, 3).await.unwrap(), 3);
        let left: Vec<String> = sqlx::query_scalar("SELECT request_id FROM rejections ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(left, ["new-3", "new-4", "new-5"]);
        assert_eq!(prune_rejections(&pool, 30, 3).await.unwrap(), 0);
        // The per-day counts are of what was stored: pruning the rows does not lower them.
        let counted: i64 =
            sqlx::query_scalar("SELECT CAST(SUM(rejected) AS SIGNED) FROM vendor_health WHERE source = 'shop'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(counted, 6);
    }

    #[tokio::test]
    async fn the_server_counts_new_rows_once_and_updated_rows_twice() {
        let (_database, pool) = migrated_pool().await;
        let insert = |ids: &'static str, update: &'static str| {
            let pool = pool.clone();
            async move {
                let mut builder = QueryBuilder::<MySql>::new(
                    "INSERT INTO events (source, delivery_id, event_type, body, body_sha256, received_at, stored_at) ",
                );
                builder.push_values(ids.split(','), |mut values, id| {
                    values
                        .push_bind("s")
                        .push_bind(id)
                        .push_bind("t")
                        .push_bind("{}")
                        .push_bind("")
                        .push("UTC_TIMESTAMP(6)")
                        .push("UTC_TIMESTAMP(6)");
                });
                builder.push(update);
                builder.build().execute(&pool).await.unwrap().rows_affected()
            }
        };
        let changes = " ON DUPLICATE KEY UPDATE duplicates = duplicates + 1";
        assert_eq!(insert("a,b", changes).await, 2);
        assert_eq!(insert("a,b,c", changes).await, 1 + 2 * 2);
        assert_eq!(
            insert("a,d", " ON DUPLICATE KEY UPDATE duplicates = duplicates").await,
            1 + 1
        );
    }

    #[tokio::test]
    async fn insert_events_counts_new_rows_per_source_and_existing_rows_exactly() {
        let (_database, pool) = migrated_pool().await;
        let body = "{\"x\":1}";
        let row = |source: &'static str, delivery_id: &'static str, copies: u32| EventRow {
            source,
            delivery_id,
            event_type: "t",
            body,
            body_sha256: "sha",
            content_type: "application/json",
            received_at: Utc::now(),
            retry_count: 0,
            copies,
            sale: None,
        };
        let first = [row("a", "1", 0), row("a", "2", 0), row("b", "1", 2)];
        let inserted = insert_events(&pool, &first).await.unwrap();
        assert_eq!(
            inserted,
            Inserted {
                new_by_source: vec![("a", 2), ("b", 1)],
                already_stored: 0
            }
        );
        let second = [row("a", "2", 0), row("a", "3", 0), row("b", "1", 1), row("c", "1", 0)];
        let inserted = insert_events(&pool, &second).await.unwrap();
        assert_eq!(
            inserted,
            Inserted {
                new_by_source: vec![("a", 1), ("b", 0), ("c", 1)],
                already_stored: 2
            }
        );
        let duplicates: Vec<(String, String, u32)> =
            sqlx::query_as("SELECT source, delivery_id, duplicates FROM events ORDER BY source, delivery_id")
                .fetch_all(&pool)
                .await
                .unwrap();
        let expected = [
            ("a", "1", 0),
            ("a", "2", 1),
            ("a", "3", 0),
            ("b", "1", 2 + 1 + 1),
            ("c", "1", 0),
        ];
        let expected: Vec<(String, String, u32)> = expected
            .iter()
            .map(|(s, d, n)| ((*s).to_owned(), (*d).to_owned(), *n))
            .collect();
        assert_eq!(duplicates, expected);
        pool.close().await;
    }

    #[tokio::test]
    async fn a_refusal_by_the_database_is_classified_as_refused() {
        let (_database, pool) = migrated_pool().await;
        sqlx::query("ALTER TABLE events ADD CONSTRAINT no_x CHECK (event_type <> 'x')")
            .execute(&pool)
            .await
            .unwrap();
        let row = EventRow {
            source: "s",
            delivery_id: "1",
            event_type: "x",
            body: "{}",
            body_sha256: "",
            content_type: "application/json",
            received_at: Utc::now(),
            retry_count: 0,
            copies: 0,
            sale: None,
        };
        let error = insert_events(&pool, &[row]).await.unwrap_err();
        assert!(
            matches!(&error, StoreError::Refused(text) if text.contains("no_x")),
            "{error:?}"
        );
        pool.close().await;
    }

    fn change(order_id: &str, kind: Kind, amount_minor: i64, at: &str) -> SaleChange {
        SaleChange {
            order_id: order_id.to_owned(),
            currency: "EUR".to_owned(),
            amount_minor,
            at: DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&Utc),
            kind,
        }
    }

    fn event_row<'a>(delivery_id: &'a str, sale: Option<&'a SaleChange>) -> EventRow<'a> {
        EventRow {
            source: "shop",
            delivery_id,
            event_type: "t",
            body: "{}",
            body_sha256: "",
            content_type: "application/json",
            received_at: Utc::now(),
            retry_count: 0,
            copies: 0,
            sale,
        }
    }

    /// (amount_minor, sold_at, sale_event_id, refunded_minor, refunded_at, refund_event_id, currency)
    type SaleState = (
        i64,
        Option<String>,
        Option<String>,
        i64,
        Option<String>,
        Option<String>,
        String,
    );

    async fn sale_state(pool: &MySqlPool, order_id: &str) -> Option<SaleState> {
        sqlx::query_as(
            "SELECT amount_minor, DATE_FORMAT(sold_at, '%Y-%m-%d %H:%i:%s.%f'), sale_event_id, refunded_minor, \
             DATE_FORMAT(refunded_at, '%Y-%m-%d %H:%i:%s.%f'), refund_event_id, currency \
             FROM sales WHERE source = 'shop' AND order_id = ?",
        )
        .bind(order_id)
        .fetch_optional(pool)
        .await
        .unwrap()
    }

    fn state(sale: Option<(i64, &str, &str)>, refund: Option<(i64, &str, &str)>) -> SaleState {
        let (amount, sold_at, sale_id) = match sale {
            Some((amount, at, id)) => (amount, Some(at.to_owned()), Some(id.to_owned())),
            None => (0, None, None),
        };
        let (refunded, refunded_at, refund_id) = match refund {
            Some((amount, at, id)) => (amount, Some(at.to_owned()), Some(id.to_owned())),
            None => (0, None, None),
        };
        (
            amount,
            sold_at,
            sale_id,
            refunded,
            refunded_at,
            refund_id,
            "EUR".to_owned(),
        )
    }

    /// Every order of arrival of two sales, two refunds and a refund tied in time with a
    /// smaller total, one transaction each, ends in the same row: the newest sale and the
    /// newest (then largest) refunded total. (Assigning a time column before the columns
    /// compared after it fails this test.)
    #[tokio::test]
    async fn sales_keep_the_newest_state_whatever_order_the_events_arrive_in() {
        let (_database, pool) = migrated_pool().await;
        let events = [
            ("sale-old", Kind::Sale, 1000, "2026-01-10T10:00:00Z"),
            // Newer but smaller: the time decides, not the amount.
            ("sale-new", Kind::Sale, 900, "2026-01-10T11:00:00.000001Z"),
            ("refund-old", Kind::Refund, 300, "2026-02-01T00:00:00Z"),
            ("refund-new", Kind::Refund, 500, "2026-03-01T00:00:00Z"),
            ("refund-tie", Kind::Refund, 400, "2026-03-01T00:00:00Z"),
        ];
        let mut orders = Vec::new();
        permutations(&mut (0..events.len()).collect(), 0, &mut orders);
        assert_eq!(orders.len(), 120);
        for (n, order) in orders.iter().enumerate() {
            let order_id = format!("o-{n}");
            for &index in order {
                let (id, kind, amount, at) = events[index];
                let sale = change(&order_id, kind, amount, at);
                let delivery_id = format!("{order_id}-{id}");
                insert_events(&pool, &[event_row(&delivery_id, Some(&sale))])
                    .await
                    .unwrap();
            }
        }
        for (n, order) in orders.iter().enumerate() {
            let order_id = format!("o-{n}");
            let expected = state(
                Some((900, "2026-01-10 11:00:00.000001", &format!("{order_id}-sale-new"))),
                Some((500, "2026-03-01 00:00:00.000000", &format!("{order_id}-refund-new"))),
            );
            assert_eq!(
                sale_state(&pool, &order_id).await,
                Some(expected),
                "arrival order {order:?}"
            );
        }
        pool.close().await;
    }

    fn permutations(items: &mut Vec<usize>, from: usize, out: &mut Vec<Vec<usize>>) {
        if from == items.len() {
            out.push(items.clone());
            return;
        }
        for index in from..items.len() {
            items.swap(from, index);
            permutations(items, from + 1, out);
            items.swap(from, index);
        }
    }

    #[tokio::test]
    async fn a_refund_before_the_sale_creates_the_row_with_amount_zero_and_the_sale_fills_it_in() {
        let (_database, pool) = migrated_pool().await;
        let refund = change("o", Kind::Refund, 250, "2026-05-02T00:00:00Z");
        insert_events(&pool, &[event_row("r", Some(&refund))]).await.unwrap();
        assert_eq!(
            sale_state(&pool, "o").await,
            Some(state(None, Some((250, "2026-05-02 00:00:00.000000", "r"))))
        );
        // The sale, and a copy of the refund delivered again: harmless.
        let sale = change("o", Kind::Sale, 1000, "2026-05-01T00:00:00Z");
        insert_events(&pool, &[event_row("r", Some(&refund)), event_row("s", Some(&sale))])
            .await
            .unwrap();
        assert_eq!(
            sale_state(&pool, "o").await,
            Some(state(
                Some((1000, "2026-05-01 00:00:00.000000", "s")),
                Some((250, "2026-05-02 00:00:00.000000", "r"))
            ))
        );
        // The currency is the first event's.
        let mut other = change("o", Kind::Sale, 1000, "2026-05-03T00:00:00Z");
        other.currency = "USD".to_owned();
        insert_events(&pool, &[event_row("s2", Some(&other))]).await.unwrap();
        assert_eq!(sale_state(&pool, "o").await.unwrap().6, "EUR");
        pool.close().await;
    }

    #[tokio::test]
    async fn events_are_stored_processed_or_ignored_at_once() {
        let (_database, pool) = migrated_pool().await;
        let sale = change("o", Kind::Sale, 1, "2026-05-01T00:00:00Z");
        insert_events(&pool, &[event_row("a", Some(&sale)), event_row("b", None)])
            .await
            .unwrap();
        let rows: Vec<(String, String, bool, Option<String>)> = sqlx::query_as(
            "SELECT delivery_id, status, processed_at IS NOT NULL AND processed_at <= UTC_TIMESTAMP(6), error \
             FROM events ORDER BY delivery_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(
            rows,
            vec![
                ("a".to_owned(), "processed".to_owned(), true, None),
                ("b".to_owned(), "ignored".to_owned(), true, None)
            ]
        );
        pool.close().await;
    }

    #[tokio::test]
    async fn the_event_and_its_sale_commit_together_or_not_at_all() {
        let (_database, pool) = migrated_pool().await;
        sqlx::query("ALTER TABLE sales ADD CONSTRAINT no_xxx CHECK (currency <> 'XXX')")
            .execute(&pool)
            .await
            .unwrap();
        let mut sale = change("o", Kind::Sale, 1, "2026-05-01T00:00:00Z");
        sale.currency = "XXX".to_owned();
        let error = insert_events(&pool, &[event_row("a", None), event_row("b", Some(&sale))])
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::Refused(text) if text.contains("no_xxx")),
            "{error:?}"
        );
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&pool)
            .await
            .unwrap();
        let sales: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sales")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!((events, sales), (0, 0));
        pool.close().await;
    }

    #[tokio::test]
    async fn dead_letters_are_recorded_cut_to_their_columns() {
        let (_database, pool) = migrated_pool().await;
        let long_source = "s".repeat(100);
        let long_error = "é".repeat(MAX_DEAD_LETTER_ERROR_CHARS + 10);
        let rows = [
            DeadLetterRow {
                source: "shop".to_owned(),
                delivery_id: "d-1".to_owned(),
                event_type: "orders/paid".to_owned(),
                reason: "retries_exhausted",
                error: "retries exhausted after 5: orders/paid: /total_price is missing",
                retry_count: 5,
            },
            DeadLetterRow {
                source: long_source,
                delivery_id: String::new(),
                event_type: "(unknown)".to_owned(),
                reason: "poison",
                error: &long_error,
                retry_count: 0,
            },
        ];
        insert_dead_letters(&pool, &rows).await.unwrap();
        insert_dead_letters(&pool, &[]).await.unwrap();
        let stored: Vec<(String, String, String, String, u32, i64, bool)> = sqlx::query_as(
            "SELECT source, delivery_id, event_type, reason, retry_count, CAST(CHAR_LENGTH(error) AS SIGNED), \
             dead_lettered_at <= UTC_TIMESTAMP(6) FROM dead_letters ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(
            stored,
            vec![
                (
                    "shop".into(),
                    "d-1".into(),
                    "orders/paid".into(),
                    "retries_exhausted".into(),
                    5,
                    63,
                    true
                ),
                (
                    "s".repeat(64),
                    String::new(),
                    "(unknown)".into(),
                    "poison".into(),
                    0,
                    4000,
                    true
                ),
            ]
        );
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hé", 5), "hé");
        pool.close().await;
    }
}
