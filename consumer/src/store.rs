//! The database: creating it, migrating it, inserting a batch of events with what they
//! trigger (sales and refunds) in one transaction, and recording dead letters. SQL lives here
//! and nowhere else.
//!
//! Public so that its statements are tested against a real server from `tests/` (the unit
//! tests here need no server).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use prometheus_client::metrics::gauge::Gauge;
use sha2::{Digest, Sha256};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlPool, MySqlPoolOptions};
use sqlx::{Connection, MySql, QueryBuilder};

use webhook_core::envelope::{MAX_DELIVERY_ID_BYTES, MAX_SOURCE_BYTES};
use webhook_core::rejection::{RejectionRecord, bounded};

use crate::message::Event;
pub use crate::processors::{Kind, SaleChange};
use crate::settings::Settings;

/// The migrations in `migrations/`, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// How long taking a connection from the pool may take (including connecting).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Most bytes of bound values per statement (and at most half the server's
/// `max_allowed_packet`: MySQL 8's default is 64 MiB, MariaDB's 16 MiB), so a batch of large
/// bodies is several statements, not a refused packet. A single row larger than this is a
/// statement of its own.
const MAX_STATEMENT_BYTES: usize = 4 * 1024 * 1024;

/// Bound values per row of the insert.
const BINDS_PER_ROW: usize = 10;

/// Rows per statement: MySQL allows at most 65,535 placeholders in one statement.
const MAX_ROWS_PER_STATEMENT: usize = 65_535 / BINDS_PER_ROW;

/// Bound values per row of the sales upsert.
const SALE_BINDS_PER_ROW: usize = 9;
/// Sale changes per upsert statement (small rows: placeholders are the only limit).
const MAX_SALES_PER_STATEMENT: usize = 1000;
const _: () = assert!(MAX_SALES_PER_STATEMENT * SALE_BINDS_PER_ROW <= 65_535);

/// How long one `GET_LOCK` waits for the migration lock before it is asked again.
const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(10);
/// How long a consumer waits in all for another process's migrations.
const MIGRATION_LOCK_DEADLINE: Duration = Duration::from_secs(300);

/// Creates the database named in `DATABASE_URL` if it does not exist, then applies every
/// pending migration. Safe to run from several processes at once: a lost race to create the
/// database is fine, and the migrations are applied under a lock that excludes the others.
///
/// The lock is our own: sqlx's MySQL migrator locks with `GET_LOCK(name, -1)` and ignores the
/// result, and MariaDB answers a negative timeout with NULL at once, so nobody held it and two
/// consumers started together each applied the same migration. Here `GET_LOCK` gets a positive
/// timeout on a connection of its own, its answer is checked, and the migrator runs on that
/// connection with its own locking off.
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
    let options = settings.database_options()?;
    let lock = migration_lock_name(options.get_database().unwrap_or_default());
    let mut connection = match tokio::time::timeout(ACQUIRE_TIMEOUT, MySqlConnection::connect_with(&options)).await {
        Ok(connected) => connected.with_context(|| format!("cannot connect to the database {redacted}"))?,
        Err(_) => anyhow::bail!("cannot connect to the database {redacted}: no answer within {ACQUIRE_TIMEOUT:?}"),
    };
    let migrated = async {
        take_migration_lock(&mut connection, &lock).await?;
        let mut migrator = Migrator::with_migrations(MIGRATOR.iter().cloned().collect());
        migrator.set_locking(false);
        let applied = migrator
            .run(&mut connection)
            .await
            .with_context(|| format!("cannot apply the migrations to {redacted}"));
        // Closing the connection would release it too; an explicit release says so at once.
        if let Err(error) = sqlx::query("SELECT RELEASE_LOCK(?)")
            .bind(&lock)
            .execute(&mut connection)
            .await
        {
            log::debug!("releasing the migration lock {lock:?}: {error}");
        }
        applied
    }
    .await;
    if let Err(error) = connection.close().await {
        log::debug!("closing the migration connection: {error}");
    }
    migrated?;
    log::info!(
        "database migrated: url={redacted} migrations={}",
        MIGRATOR.iter().count()
    );
    Ok(())
}

/// The name of the migration lock of `database`. `GET_LOCK` names are server-wide (so the
/// database is part of it) and at most 64 characters (so it is hashed).
fn migration_lock_name(database: &str) -> String {
    let digest = hex::encode(Sha256::digest(database.as_bytes()));
    format!("webhook-inbox-migrate-{}", &digest[..32])
}

/// Takes the migration lock on `connection`, waiting while another process holds it (it is
/// migrating), at most [`MIGRATION_LOCK_DEADLINE`].
async fn take_migration_lock(connection: &mut MySqlConnection, lock: &str) -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    loop {
        let held: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
            .bind(lock)
            .bind(MIGRATION_LOCK_WAIT.as_secs())
            .fetch_one(&mut *connection)
            .await
            .with_context(|| format!("cannot take the migration lock {lock:?}"))?;
        match held {
            Some(1) => return Ok(()),
            Some(0) if started.elapsed() < MIGRATION_LOCK_DEADLINE => {
                log::info!("waiting for another process to finish the migrations: lock={lock:?}");
            }
            Some(0) => anyhow::bail!(
                "another process has held the migration lock {lock:?} for more than {MIGRATION_LOCK_DEADLINE:?}: is a migration stuck?"
            ),
            other => anyhow::bail!(
                "cannot take the migration lock {lock:?}: GET_LOCK answered {other:?} (an error on the server)"
            ),
        }
    }
}

/// How long the probe (a new connection and one trivial query) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes of an insert's packet beside its values: the command, the statement id, the
/// parameter types and the length of each value (measured on MariaDB 10.11: a body 300 bytes
/// under `max_allowed_packet` with short other values is stored, one at the limit is not).
const PACKET_OVERHEAD: u64 = 1024;

/// The consumer's database, as the batch executor ([`crate::settle`]) sees it: a lazily
/// connecting pool (the consumer starts, and keeps running, while the database is down; each
/// operation reports the outage instead), the server's `max_allowed_packet`, and a probe.
#[derive(Debug, Clone)]
pub(crate) struct Database {
    pub(crate) pool: MySqlPool,
    options: MySqlConnectOptions,
    /// `@@max_allowed_packet`, read on every new connection and by every probe (0 until one
    /// has been made). It is the metric itself: `webhook_consumer_database_max_allowed_packet_bytes`.
    max_allowed_packet: Gauge,
}

impl Database {
    /// The pool for `DATABASE_URL`; `max_allowed_packet` is kept up to date in the gauge.
    pub(crate) fn new(settings: &Settings, max_allowed_packet: Gauge) -> anyhow::Result<Self> {
        let options = settings.database_options()?;
        let gauge = max_allowed_packet.clone();
        let pool = MySqlPoolOptions::new()
            .max_connections(settings.db_pool_size)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |connection, _| {
                let gauge = gauge.clone();
                Box::pin(async move {
                    gauge.set(read_max_allowed_packet(connection).await?);
                    Ok(())
                })
            })
            .connect_lazy_with(options.clone());
        Ok(Self {
            pool,
            options,
            max_allowed_packet,
        })
    }

    /// The server's `max_allowed_packet` as last read, if it has been.
    pub(crate) fn max_allowed_packet(&self) -> Option<u64> {
        u64::try_from(self.max_allowed_packet.get())
            .ok()
            .filter(|limit| *limit > 0)
    }
}

/// `@@max_allowed_packet`, as a gauge value.
async fn read_max_allowed_packet(connection: &mut MySqlConnection) -> Result<i64, sqlx::Error> {
    let limit: u64 = sqlx::query_scalar("SELECT @@max_allowed_packet")
        .fetch_one(connection)
        .await?;
    Ok(i64::try_from(limit).unwrap_or(i64::MAX))
}

impl crate::settle::Store for Database {
    async fn insert<'a>(&self, rows: &[EventRow<'a>]) -> Result<Inserted<'a>, StoreError> {
        // Half the packet at most, so a batch is never refused as a whole for its size.
        let budget = self.max_allowed_packet().map_or(MAX_STATEMENT_BYTES, |limit| {
            MAX_STATEMENT_BYTES.min(usize::try_from(limit / 2).unwrap_or(usize::MAX))
        });
        insert_events_within(&self.pool, rows, budget).await
    }

    /// A new connection (not one of the pool's) and `SELECT @@max_allowed_packet`, which also
    /// refreshes the limit.
    async fn probe(&self) -> Result<(), StoreError> {
        let probed = async {
            let mut connection = MySqlConnection::connect_with(&self.options).await?;
            let limit = read_max_allowed_packet(&mut connection).await?;
            self.max_allowed_packet.set(limit);
            connection.close().await
        };
        match tokio::time::timeout(PROBE_TIMEOUT, probed).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(StoreError::Unavailable(error)),
            Err(_) => Err(StoreError::Timeout(PROBE_TIMEOUT)),
        }
    }

    async fn record_dead_letters(&self, rows: &[DeadLetterRow<'_>]) -> Result<(), StoreError> {
        insert_dead_letters(&self.pool, rows).await
    }

    async fn record_ledger(&self, rows: &[LedgerRow<'_>]) -> Result<(), StoreError> {
        record_ledger(&self.pool, rows).await
    }
}

/// One row of `events` to insert.
#[derive(Debug, Clone, Copy)]
pub struct EventRow<'a> {
    pub source: &'a str,
    pub delivery_id: &'a str,
    pub event_type: &'a str,
    pub body: &'a str,
    pub body_sha256: &'a str,
    /// `application/json`, or `application/x-www-form-urlencoded` for form sources.
    pub content_type: &'static str,
    pub received_at: DateTime<Utc>,
    pub retry_count: u32,
    /// Further deliveries of this source and delivery id in the same batch (with this body or
    /// another): stored as its `duplicates`.
    pub copies: u32,
    /// The bodies (hex SHA-256) of those of them with another body: they count as conflicts.
    pub conflicts: &'a [&'a str],
    /// What its processor made of it: a sale or refund to apply (status `processed`), or
    /// nothing (status `ignored`).
    pub sale: Option<&'a SaleChange>,
}

/// `events.status` of an event stored with a sale or refund applied.
pub const STATUS_PROCESSED: &str = "processed";
/// `events.status` of an event no processor matched.
pub const STATUS_IGNORED: &str = "ignored";
/// `events.status` of an erased event (`consumer erase`): body gone, derived sales cleared, a
/// tombstone in `erasures`.
pub const STATUS_ERASED: &str = "erased";

impl<'a> EventRow<'a> {
    /// The row of `event`, without copies or a sale.
    pub(crate) fn of(event: &'a Event) -> Self {
        Self {
            source: &event.envelope.source,
            delivery_id: &event.envelope.delivery_id,
            event_type: &event.envelope.event_type,
            body: &event.body,
            body_sha256: &event.sha256,
            content_type: event.envelope.body_format.content_type(),
            received_at: event.envelope.received_at,
            retry_count: event.envelope.retry_count,
            copies: 0,
            conflicts: &[],
            sale: None,
        }
    }

    /// Its `events.status`.
    pub fn status(&self) -> &'static str {
        if self.sale.is_some() {
            STATUS_PROCESSED
        } else {
            STATUS_IGNORED
        }
    }

    /// The size of the packet that inserts this row alone, as the server counts it against
    /// `max_allowed_packet`.
    pub fn packet_bytes(&self) -> u64 {
        u64::try_from(self.bound_bytes())
            .unwrap_or(u64::MAX)
            .saturating_add(PACKET_OVERHEAD)
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
pub struct Inserted<'a> {
    /// New rows per source.
    pub new_by_source: Vec<(&'a str, u64)>,
    /// Rows that were already stored (their `duplicates` went up).
    pub already_stored: u64,
    /// Rows that were already stored with another body, which they keep (the first stored
    /// wins): their sales were not applied.
    pub another_body: Vec<AnotherBody>,
    /// Positions (in the rows given to [`insert_events`]) of rows whose event was erased
    /// (`consumer erase`): counted as duplicates, nothing else; their sales were not applied.
    pub erased: Vec<usize>,
}

/// A row already stored with another body than the one inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnotherBody {
    /// Its position in the rows given to [`insert_events`].
    pub row: usize,
    /// The stored body's hex SHA-256.
    pub stored_sha256: String,
    /// How many of the batch's deliveries of it have a body other than the stored one (its
    /// `conflicts` went up by as many).
    pub conflicts: u32,
}

/// How a database operation failed, which decides what happens to the batch. Each variant
/// keeps the driver's error (its [`source`](std::error::Error::source)), so callers can look
/// at the server's error number and message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused the data of (at least) one row: split the batch to find it.
    #[error("{0}")]
    Refused(#[source] sqlx::Error),
    /// A deadlock or lock wait timeout: the same batch again, shortly.
    #[error("{0}")]
    Conflict(#[source] sqlx::Error),
    /// The database cannot be reached or says it is not working: hold the batch and try again.
    #[error("{0}")]
    Unavailable(#[source] sqlx::Error),
    /// The connection failed while the rows were on it (reset, closed, garbled). The server may
    /// be down, or may have dropped the connection over one of the rows (MariaDB does that for
    /// a packet far above `max_allowed_packet`): a probe tells which.
    #[error("{0}")]
    Lost(#[source] sqlx::Error),
    /// No answer within the deadline: as unavailable.
    #[error("no answer from the database within {0:?}")]
    Timeout(Duration),
}

impl StoreError {
    /// The driver's error, unless the database did not answer in time.
    pub fn sqlx(&self) -> Option<&sqlx::Error> {
        match self {
            Self::Refused(error) | Self::Conflict(error) | Self::Unavailable(error) | Self::Lost(error) => Some(error),
            Self::Timeout(_) => None,
        }
    }

    /// Whether the database itself reported the failure (an error number), rather than the
    /// connection or the pool failing to reach it.
    pub fn said_by_the_database(&self) -> bool {
        matches!(self.sqlx(), Some(sqlx::Error::Database(_)))
    }

    /// Whether the server refused a packet larger than `max_allowed_packet`
    /// (ER_NET_PACKET_TOO_LARGE): a row that can never be stored as the server is configured.
    pub fn is_packet_too_large(&self) -> bool {
        matches!(
            self,
            Self::Refused(sqlx::Error::Database(database))
                if database.try_downcast_ref::<MySqlDatabaseError>().is_some_and(|mysql| mysql.number() == 1153)
        )
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match classify(&error) {
            Class::Refused => Self::Refused(error),
            Class::Conflict => Self::Conflict(error),
            Class::Unavailable => Self::Unavailable(error),
            Class::Lost => Self::Lost(error),
        }
    }
}

/// Kinds of database failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Refused,
    Conflict,
    Unavailable,
    Lost,
}

/// Sorts an error into refused data, a lock conflict, a lost connection, or unavailability
/// (what the database says about itself, and everything unknown).
pub(crate) fn classify(error: &sqlx::Error) -> Class {
    match error {
        sqlx::Error::Database(database) => match database.try_downcast_ref::<MySqlDatabaseError>() {
            Some(mysql) => classify_code(mysql.number(), mysql.code()),
            None => Class::Unavailable,
        },
        // A value that cannot be encoded is a property of the row, not of the connection.
        sqlx::Error::Encode(_) => Class::Refused,
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => Class::Lost,
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
/// `rows` must be sorted by source (as [`crate::plan::plan`] sorts them): each
/// statement holds one source, so the new rows per source are exact.
pub async fn insert_events<'a>(pool: &MySqlPool, rows: &[EventRow<'a>]) -> Result<Inserted<'a>, StoreError> {
    insert_events_within(pool, rows, MAX_STATEMENT_BYTES).await
}

/// [`insert_events`] with at most `statement_bytes` of values per statement (unless one row
/// alone is bigger).
async fn insert_events_within<'a>(
    pool: &MySqlPool,
    rows: &[EventRow<'a>],
    statement_bytes: usize,
) -> Result<Inserted<'a>, StoreError> {
    let mut inserted = Inserted::default();
    // No row was sent yet: whatever fails here is about the database, never about the rows.
    let mut transaction = pool.begin().await.map_err(StoreError::Unavailable)?;
    // The rows of the statements that found rows already stored.
    let mut found = Vec::new();
    let mut offset = 0;
    for statement in statements(rows, statement_bytes) {
        let mut builder = QueryBuilder::<MySql>::new(
            "INSERT INTO events (source, delivery_id, event_type, body, body_sha256, content_type, received_at, stored_at, retry_count, duplicates, conflicts, status, processed_at) ",
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
                .push_bind(u32::try_from(row.conflicts.len()).unwrap_or(u32::MAX))
                .push_bind(row.status())
                .push("UTC_TIMESTAMP(6)");
        });
        // VALUES(col) rather than MySQL 8's row alias: MariaDB has no row alias. A stored row
        // keeps its body; the batch's own conflicts count only if it is the same body, and
        // otherwise are counted exactly below.
        builder.push(
            " ON DUPLICATE KEY UPDATE duplicates = duplicates + VALUES(duplicates) + 1, \
             conflicts = conflicts + IF(body_sha256 = VALUES(body_sha256), VALUES(conflicts), 0)",
        );
        let affected = builder.build().execute(&mut *transaction).await?.rows_affected();
        let (new, already_stored) = split_affected(statement.len() as u64, affected);
        inserted.already_stored += already_stored;
        let source = statement[0].source;
        match inserted.new_by_source.last_mut() {
            Some((last, count)) if *last == source => *count += new,
            _ => inserted.new_by_source.push((source, new)),
        }
        if already_stored > 0 {
            found.push(offset..offset + statement.len());
        }
        offset += statement.len();
    }
    for range in found {
        let (another_body, erased) = count_conflicts(&mut transaction, rows, range).await?;
        inserted.another_body.extend(another_body);
        inserted.erased.extend(erased);
    }
    let kept = |position: usize| {
        inserted.another_body.iter().all(|another| another.row != position) && !inserted.erased.contains(&position)
    };
    let mut sales: Vec<SaleRow<'_>> = rows
        .iter()
        .enumerate()
        .filter(|(position, _)| kept(*position))
        .filter_map(|(_, row)| {
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

/// Of the rows at `range` (one statement: one source), finds those already stored with another
/// body, and counts every delivery of the batch whose body differs from the stored one in the
/// row's `conflicts`; and finds those whose event was erased (their positions), which count as
/// nothing but duplicates. The rows are locked by the insert that found them, so what is read
/// here stays true until the commit.
async fn count_conflicts(
    transaction: &mut sqlx::Transaction<'_, MySql>,
    rows: &[EventRow<'_>],
    range: std::ops::Range<usize>,
) -> Result<(Vec<AnotherBody>, Vec<usize>), StoreError> {
    let statement = &rows[range.clone()];
    let mut builder = QueryBuilder::<MySql>::new("SELECT delivery_id, body_sha256, status FROM events WHERE source = ");
    builder.push_bind(statement[0].source);
    builder.push(" AND delivery_id IN (");
    let mut ids = builder.separated(", ");
    for row in statement {
        ids.push_bind(row.delivery_id);
    }
    ids.push_unseparated(") FOR UPDATE");
    let stored: HashMap<String, (String, String)> = builder
        .build_query_as::<(String, String, String)>()
        .fetch_all(&mut **transaction)
        .await?
        .into_iter()
        .map(|(delivery_id, sha256, status)| (delivery_id, (sha256, status)))
        .collect();
    let mut another_body = Vec::new();
    let mut erased = Vec::new();
    for (position, row) in range.zip(statement) {
        if stored
            .get(row.delivery_id)
            .is_some_and(|(_, status)| status == STATUS_ERASED)
        {
            erased.push(position);
            continue;
        }
        let Some((stored_sha256, _)) = stored.get(row.delivery_id).filter(|(sha, _)| *sha != row.body_sha256) else {
            continue;
        };
        // The row itself, its copies with the same body, and its conflicts with yet another.
        let same_as_row = 1 + (row.copies as usize).saturating_sub(row.conflicts.len());
        let others = row.conflicts.iter().filter(|sha| **sha != stored_sha256).count();
        let conflicts = u32::try_from(same_as_row + others).unwrap_or(u32::MAX);
        sqlx::query("UPDATE events SET conflicts = conflicts + ? WHERE source = ? AND delivery_id = ?")
            .bind(conflicts)
            .bind(row.source)
            .bind(row.delivery_id)
            .execute(&mut **transaction)
            .await?;
        another_body.push(AnotherBody {
            row: position,
            stored_sha256: stored_sha256.clone(),
            conflicts,
        });
    }
    Ok((another_body, erased))
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
    // First, while every column still holds its old value: the time of the row's last change,
    // so applying an event again (a redelivery, `consumer replay`) changes nothing at all.
    builder.push(format_args!(
        " ON DUPLICATE KEY UPDATE updated_at = IF(({SALE_IS_NEWER} AND NOT (VALUES(sold_at) <=> sold_at \
         AND VALUES(amount_minor) <=> amount_minor AND VALUES(sale_event_id) <=> sale_event_id)) \
         OR ({REFUND_IS_NEWER} AND NOT (VALUES(refunded_at) <=> refunded_at \
         AND VALUES(refunded_minor) <=> refunded_minor AND VALUES(refund_event_id) <=> refund_event_id)), \
         UTC_TIMESTAMP(6), updated_at), "
    ));
    for (column, newer) in [
        ("sale_event_id", SALE_IS_NEWER),
        ("amount_minor", SALE_IS_NEWER),
        ("sold_at", SALE_IS_NEWER),
        ("refund_event_id", REFUND_IS_NEWER),
        ("refunded_minor", REFUND_IS_NEWER),
        ("refunded_at", REFUND_IS_NEWER),
    ] {
        builder.push(format_args!("{column} = IF({newer}, VALUES({column}), {column})"));
        if column != "refunded_at" {
            builder.push(", ");
        }
    }
    builder.build().execute(&mut **transaction).await?;
    Ok(())
}

/// A record of one message sent to the dead-letter exchange.
#[derive(Debug, Clone)]
pub struct DeadLetterRow<'a> {
    /// Its source, or `(unknown)` when poison lacks one.
    pub source: String,
    /// Its delivery id, or empty.
    pub delivery_id: String,
    /// Its event type, or `(unknown)`.
    pub event_type: String,
    /// `poison`, `retries_exhausted` or `too_large`.
    pub reason: &'static str,
    /// The `error` header it was dead-lettered with.
    pub error: &'a str,
    pub retry_count: u32,
}

/// Longest `dead_letters.error` kept, in characters (the column is TEXT: 65,535 bytes).
pub const MAX_DEAD_LETTER_ERROR_CHARS: usize = 4000;

/// Records dead letters in `dead_letters`, each value cut to its column's size (poison can
/// carry anything in its headers).
pub async fn insert_dead_letters(pool: &MySqlPool, rows: &[DeadLetterRow<'_>]) -> Result<(), StoreError> {
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

/// What became of a message, for the ledger ([`record_ledger`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerFate {
    /// Its event's row is committed: `stored` if this message is the one stored (the row's
    /// `received_at` is the message's), else `duplicate`. Decided by the database, so a
    /// redelivery after a crash between the commit and this record still says `stored`.
    Settled,
    /// Confirmed in `{P}.dead`.
    DeadLettered,
    /// Confirmed in a retry queue: back by `due_at` at the latest, else unexplained.
    Pending { due_at: DateTime<Utc> },
}

/// One accepted message for `ledger_messages`.
#[derive(Debug, Clone, Copy)]
pub struct LedgerRow<'a> {
    pub source: &'a str,
    pub delivery_id: &'a str,
    pub received_at: DateTime<Utc>,
    pub fate: LedgerFate,
}

impl LedgerRow<'_> {
    /// The identity of the handler's publish: the SHA-256 of source, delivery id and
    /// `received-at` (as the header carries it, to the microsecond). A redelivery or a retry
    /// of the message has the same; a vendor's retry of the delivery is received anew.
    pub fn accepted_id(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(self.source.as_bytes());
        hash.update([0]);
        hash.update(self.delivery_id.as_bytes());
        hash.update([0]);
        hash.update(webhook_core::envelope::format_time(self.received_at).as_bytes());
        hash.finalize().into()
    }
}

/// Rows of the ledger per statement: six values each, far below the placeholder limit.
const LEDGER_ROWS_PER_STATEMENT: usize = 1000;

/// Records accepted messages and their outcomes in `ledger_messages` (the triggers count them
/// in `ledger_counts`). A message seen before keeps its row: only a first outcome is set (or a
/// replayed dead letter's `stored`/`duplicate`), so a redelivery changes no count.
pub async fn record_ledger(pool: &MySqlPool, rows: &[LedgerRow<'_>]) -> Result<(), StoreError> {
    for chunk in rows.chunks(LEDGER_ROWS_PER_STATEMENT) {
        let mut builder = QueryBuilder::<MySql>::new(
            "INSERT INTO ledger_messages (received_at, accepted_id, source, day, outcome, first_seen_at, seen_at, due_at) \
             SELECT m_received_at, m_id, m_source, DATE(m_received_at), \
             CASE m_fate WHEN 'settled' THEN IF(e.received_at <=> m_received_at, 'stored', 'duplicate') \
             WHEN 'dead' THEN 'dead_lettered' END, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), m_due_at FROM (",
        );
        for (n, row) in chunk.iter().enumerate() {
            if n > 0 {
                builder.push(" UNION ALL ");
            }
            let (fate, due_at) = match row.fate {
                LedgerFate::Settled => ("settled", None),
                LedgerFate::DeadLettered => ("dead", None),
                LedgerFate::Pending { due_at } => ("pending", Some(due_at.naive_utc())),
            };
            builder
                .push("SELECT ")
                .push_bind(row.accepted_id().to_vec())
                .push(" AS m_id, ")
                .push_bind(truncate_chars(row.source, 64))
                .push(" AS m_source, ")
                .push_bind(truncate_chars(row.delivery_id, 200))
                .push(" AS m_delivery_id, CAST(")
                .push_bind(row.received_at.naive_utc())
                .push(" AS DATETIME(6)) AS m_received_at, ")
                .push_bind(fate)
                .push(" AS m_fate, CAST(")
                .push_bind(due_at)
                .push(" AS DATETIME(6)) AS m_due_at");
        }
        builder.push(
            ") AS m LEFT JOIN events e ON e.source = m_source AND e.delivery_id = m_delivery_id \
             ON DUPLICATE KEY UPDATE seen_at = VALUES(seen_at), \
             outcome = IF(outcome IS NULL OR (outcome = 'dead_lettered' AND VALUES(outcome) IN ('stored', 'duplicate')), \
             VALUES(outcome), outcome), \
             due_at = IF(outcome IS NULL, VALUES(due_at), NULL)",
        );
        builder.build().execute(pool).await?;
    }
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
pub async fn insert_rejections(pool: &MySqlPool, records: &[RejectionRecord]) -> Result<(), StoreError> {
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
pub async fn prune_rejections(pool: &MySqlPool, days: u32, max_rows: u64) -> Result<u64, StoreError> {
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

/// A pool for a one-off command (`consumer purge`, `erase`, `replay`): two connections,
/// connected now, so an unreachable database is the command's error at once.
pub async fn connect(settings: &Settings) -> anyhow::Result<MySqlPool> {
    let options = settings.database_options()?;
    MySqlPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot connect to the database {}", settings.database_url.redacted()))
}

/// Clears the bodies of at most `limit` events received before `cutoff` whose body is still
/// kept, oldest first, and marks them `purged_at`; returns how many. The row, its unique key,
/// `body_sha256` and its sale stay. Two short statements in autocommit: the ids are found
/// through the index `events_purge` without locking, then only those rows are locked, by
/// their primary key, for one small update.
pub async fn purge_bodies(pool: &MySqlPool, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
    let ids: Vec<u64> = sqlx::query_scalar(
        "SELECT id FROM events WHERE purged_at IS NULL AND received_at < ? ORDER BY received_at, id LIMIT ?",
    )
    .bind(cutoff.naive_utc())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let mut builder = QueryBuilder::<MySql>::new(
        "UPDATE events SET body = NULL, purged_at = UTC_TIMESTAMP(6) WHERE purged_at IS NULL AND id IN (",
    );
    let mut list = builder.separated(", ");
    for id in &ids {
        list.push_bind(*id);
    }
    list.push_unseparated(")");
    Ok(builder.build().execute(pool).await?.rows_affected())
}

/// Deletes at most `limit` of the ledger's settled rows (`stored`, `duplicate`) of messages
/// received and last seen before `cutoff`, oldest first; returns how many. Their counts stay in
/// `ledger_counts` (no trigger runs on a delete). As [`purge_bodies`]: the keys are read
/// without locking, through the primary key's time order, then only those rows are deleted by
/// their key, so no gap at the table's newest end (where the consumers write) is locked.
pub async fn prune_ledger(pool: &MySqlPool, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
    let keys: Vec<(chrono::NaiveDateTime, Vec<u8>)> = sqlx::query_as(
        "SELECT received_at, accepted_id FROM ledger_messages \
         WHERE received_at < ? AND seen_at < ? AND outcome IN ('stored', 'duplicate') \
         ORDER BY received_at, accepted_id LIMIT ?",
    )
    .bind(cutoff.naive_utc())
    .bind(cutoff.naive_utc())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    if keys.is_empty() {
        return Ok(0);
    }
    let mut builder = QueryBuilder::<MySql>::new("DELETE FROM ledger_messages WHERE seen_at < ");
    builder
        .push_bind(cutoff.naive_utc())
        .push(" AND outcome IN ('stored', 'duplicate') AND (received_at, accepted_id) IN (");
    let mut list = builder.separated(", ");
    for (received_at, id) in keys {
        list.push("(").push_bind_unseparated(received_at).push_unseparated(", ");
        list.push_bind_unseparated(id).push_unseparated(")");
    }
    list.push_unseparated(")");
    Ok(builder.build().execute(pool).await?.rows_affected())
}

/// A stored event as `consumer erase` and `consumer replay` read it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredEvent {
    pub id: u64,
    pub delivery_id: String,
    pub event_type: String,
    pub content_type: String,
    /// `None` once purged or erased.
    pub body: Option<String>,
    pub status: String,
}

const STORED_EVENT_COLUMNS: &str = "SELECT id, delivery_id, event_type, content_type, body, status FROM events";

/// Whether any event of `source` is stored.
pub async fn source_is_stored(pool: &MySqlPool, source: &str) -> Result<bool, StoreError> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM events WHERE source = ? LIMIT 1")
        .bind(source)
        .fetch_optional(pool)
        .await?;
    Ok(found.is_some())
}

/// Whether any event of `source` and `event_type` is stored.
pub async fn event_type_is_stored(pool: &MySqlPool, source: &str, event_type: &str) -> Result<bool, StoreError> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM events WHERE source = ? AND event_type = ? LIMIT 1")
        .bind(source)
        .bind(event_type)
        .fetch_optional(pool)
        .await?;
    Ok(found.is_some())
}

/// The event of `source` with `delivery_id`, if stored.
pub async fn find_event(pool: &MySqlPool, source: &str, delivery_id: &str) -> Result<Option<StoredEvent>, StoreError> {
    let mut builder = QueryBuilder::<MySql>::new(STORED_EVENT_COLUMNS);
    builder.push(" WHERE source = ").push_bind(source);
    builder.push(" AND delivery_id = ").push_bind(delivery_id);
    Ok(builder.build_query_as().fetch_optional(pool).await?)
}

/// The next at most `limit` events of `source` after `after_id` (in id order) whose JSON body
/// is still kept: the pages `consumer erase --pointer` reads.
pub async fn json_bodies_after(
    pool: &MySqlPool,
    source: &str,
    after_id: u64,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut builder = QueryBuilder::<MySql>::new(STORED_EVENT_COLUMNS);
    builder.push(" WHERE source = ").push_bind(source);
    builder.push(" AND id > ").push_bind(after_id);
    builder.push(" AND body IS NOT NULL AND content_type = 'application/json' ORDER BY id LIMIT ");
    builder.push_bind(limit);
    Ok(builder.build_query_as().fetch_all(pool).await?)
}

/// Who erased an event, why, and how it was found: the tombstone's text.
#[derive(Debug, Clone, Copy)]
pub struct Tombstone<'a> {
    pub erased_by: &'a str,
    pub reason: Option<&'a str>,
    /// `delivery_id`, or `pointer /customer/id sha256:…`.
    pub matched_by: &'a str,
}

/// What erasing one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Erased {
    /// Erased now, with this many orders' rows in `sales` cleared (a half of the row that the
    /// event set) or deleted (nothing left).
    Now { sales_cleared: u64 },
    /// It had been erased before: nothing changed.
    Before,
    /// No such event.
    Missing,
}

/// Erases the event `id` of `source` in one transaction: what it set in `sales` is cleared
/// (the sale half of orders whose `sale_event_id` it is, the refund half where it is the
/// `refund_event_id`; an order left with neither is deleted, and the count triggers follow),
/// its body is cleared, its status becomes `erased`, and a tombstone goes to `erasures`. The
/// row stays as the event's dedup key.
pub async fn erase_event(
    pool: &MySqlPool,
    source: &str,
    id: u64,
    tombstone: &Tombstone<'_>,
) -> Result<Erased, StoreError> {
    let mut transaction = pool.begin().await.map_err(StoreError::Unavailable)?;
    let found: Option<(String, String, String)> =
        sqlx::query_as("SELECT delivery_id, event_type, status FROM events WHERE id = ? AND source = ? FOR UPDATE")
            .bind(id)
            .bind(source)
            .fetch_optional(&mut *transaction)
            .await?;
    let Some((delivery_id, event_type, status)) = found else {
        return Ok(Erased::Missing);
    };
    if status == STATUS_ERASED {
        return Ok(Erased::Before);
    }
    let orders: Vec<String> = sqlx::query_scalar(
        "SELECT order_id FROM sales WHERE source = ? AND (sale_event_id = ? OR refund_event_id = ?) ORDER BY order_id FOR UPDATE",
    )
    .bind(source)
    .bind(&delivery_id)
    .bind(&delivery_id)
    .fetch_all(&mut *transaction)
    .await?;
    if !orders.is_empty() {
        // The half of each order the event made: its sale, or its refund.
        for clear_half in [
            "UPDATE sales SET sale_event_id = NULL, amount_minor = 0, sold_at = NULL, updated_at = UTC_TIMESTAMP(6) \
             WHERE source = ? AND sale_event_id = ?",
            "UPDATE sales SET refund_event_id = NULL, refunded_minor = 0, refunded_at = NULL, updated_at = UTC_TIMESTAMP(6) \
             WHERE source = ? AND refund_event_id = ?",
        ] {
            sqlx::query(clear_half)
                .bind(source)
                .bind(&delivery_id)
                .execute(&mut *transaction)
                .await?;
        }
        let mut builder = QueryBuilder::<MySql>::new("DELETE FROM sales WHERE source = ");
        builder.push_bind(source);
        builder.push(" AND sale_event_id IS NULL AND refund_event_id IS NULL AND order_id IN (");
        let mut list = builder.separated(", ");
        for order in &orders {
            list.push_bind(order.as_str());
        }
        list.push_unseparated(")");
        builder.build().execute(&mut *transaction).await?;
    }
    sqlx::query(
        "UPDATE events SET body = NULL, purged_at = COALESCE(purged_at, UTC_TIMESTAMP(6)), status = ?, error = NULL WHERE id = ?",
    )
    .bind(STATUS_ERASED)
    .bind(id)
    .execute(&mut *transaction)
    .await?;
    let sales_cleared = orders.len() as u64;
    sqlx::query(
        "INSERT INTO erasures (source, delivery_id, event_type, erased_at, erased_by, reason, matched_by, sales_cleared) \
         VALUES (?, ?, ?, UTC_TIMESTAMP(6), ?, ?, ?, ?)",
    )
    .bind(source)
    .bind(&delivery_id)
    .bind(&event_type)
    .bind(truncate_chars(tombstone.erased_by, 128))
    .bind(tombstone.reason.map(|reason| truncate_chars(reason, 1000)))
    .bind(truncate_chars(tombstone.matched_by, 300))
    .bind(sales_cleared)
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await?;
    Ok(Erased::Now { sales_cleared })
}

/// The events `consumer replay` runs again: one source, maybe one event type, received in
/// `[since, until)`.
#[derive(Debug, Clone, Copy)]
pub struct ReplayRange<'a> {
    pub source: &'a str,
    pub event_type: Option<&'a str>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl ReplayRange<'_> {
    fn push_filter(&self, builder: &mut QueryBuilder<MySql>) {
        builder.push(" WHERE source = ").push_bind(self.source.to_owned());
        if let Some(event_type) = self.event_type {
            builder.push(" AND event_type = ").push_bind(event_type.to_owned());
        }
        builder.push(" AND received_at >= ").push_bind(self.since.naive_utc());
        builder.push(" AND received_at < ").push_bind(self.until.naive_utc());
    }
}

/// How many events are in `range`.
pub async fn count_in_range(pool: &MySqlPool, range: &ReplayRange<'_>) -> Result<u64, StoreError> {
    let mut builder = QueryBuilder::<MySql>::new("SELECT COUNT(*) FROM events");
    range.push_filter(&mut builder);
    let count: i64 = builder.build_query_scalar().fetch_one(pool).await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The next at most `limit` events of `range` after `after_id`, in id order.
pub async fn events_in_range(
    pool: &MySqlPool,
    range: &ReplayRange<'_>,
    after_id: u64,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut builder = QueryBuilder::<MySql>::new(STORED_EVENT_COLUMNS);
    range.push_filter(&mut builder);
    builder.push(" AND id > ").push_bind(after_id);
    builder.push(" ORDER BY id LIMIT ").push_bind(limit);
    Ok(builder.build_query_as().fetch_all(pool).await?)
}

/// A stored event run through the current processors again.
#[derive(Debug, Clone, Copy)]
pub struct Reprocessed<'a> {
    pub id: u64,
    pub delivery_id: &'a str,
    /// Its status now (`processed`, `ignored`).
    pub stored_status: &'a str,
    /// What its processor makes of it now.
    pub sale: Option<&'a SaleChange>,
}

impl Reprocessed<'_> {
    /// The status its processor gives it now.
    pub fn status(&self) -> &'static str {
        if self.sale.is_some() {
            STATUS_PROCESSED
        } else {
            STATUS_IGNORED
        }
    }
}

/// An order's row in `sales` but for `updated_at`.
type OrderState = (
    String,
    i64,
    Option<chrono::NaiveDateTime>,
    Option<String>,
    i64,
    Option<chrono::NaiveDateTime>,
    Option<String>,
);

/// The rows of `orders` of `source`, locked.
async fn order_states(
    transaction: &mut sqlx::Transaction<'_, MySql>,
    source: &str,
    orders: &[&str],
) -> Result<HashMap<String, OrderState>, StoreError> {
    if orders.is_empty() {
        return Ok(HashMap::new());
    }
    let mut builder = QueryBuilder::<MySql>::new(
        "SELECT order_id, currency, amount_minor, sold_at, sale_event_id, refunded_minor, refunded_at, refund_event_id \
         FROM sales WHERE source = ",
    );
    builder.push_bind(source);
    builder.push(" AND order_id IN (");
    let mut list = builder.separated(", ");
    for order in orders {
        list.push_bind(*order);
    }
    list.push_unseparated(") ORDER BY order_id FOR UPDATE");
    type Row = (
        String,
        String,
        i64,
        Option<chrono::NaiveDateTime>,
        Option<String>,
        i64,
        Option<chrono::NaiveDateTime>,
        Option<String>,
    );
    let rows: Vec<Row> = builder.build_query_as().fetch_all(&mut **transaction).await?;
    Ok(rows
        .into_iter()
        .map(
            |(order, currency, amount, sold_at, sale_event, refunded, refunded_at, refund_event)| {
                (
                    order,
                    (
                        currency,
                        amount,
                        sold_at,
                        sale_event,
                        refunded,
                        refunded_at,
                        refund_event,
                    ),
                )
            },
        )
        .collect())
}

/// Applies what the current processors make of `events` (all of `source`) in one transaction,
/// as the live consumer does: their sales and refunds through the same upsert (so an event
/// applied again changes nothing), and their status where it differs. Returns, per event,
/// whether anything changed: its status, or the row of its order. With `dry_run` the
/// transaction is rolled back, so the answer is what would change.
pub async fn reprocess(
    pool: &MySqlPool,
    source: &str,
    events: &[Reprocessed<'_>],
    dry_run: bool,
) -> Result<Vec<bool>, StoreError> {
    let mut transaction = pool.begin().await.map_err(StoreError::Unavailable)?;
    // Events first, then sales: the order in which the live consumer locks them.
    let mut status_changed = Vec::with_capacity(events.len());
    for event in events {
        let status = event.status();
        let differs = status != event.stored_status;
        if differs {
            sqlx::query("UPDATE events SET status = ?, processed_at = UTC_TIMESTAMP(6), error = NULL WHERE id = ?")
                .bind(status)
                .bind(event.id)
                .execute(&mut *transaction)
                .await?;
        }
        status_changed.push(differs);
    }
    let mut orders: Vec<&str> = events
        .iter()
        .filter_map(|event| event.sale.map(|sale| sale.order_id.as_str()))
        .collect();
    orders.sort_unstable();
    orders.dedup();
    let before = order_states(&mut transaction, source, &orders).await?;
    let mut sales: Vec<SaleRow<'_>> = events
        .iter()
        .filter_map(|event| {
            event.sale.map(|change| SaleRow {
                source,
                event_id: event.delivery_id,
                change,
            })
        })
        .collect();
    sales.sort_by(|a, b| a.change.order_id.cmp(&b.change.order_id));
    for chunk in sales.chunks(MAX_SALES_PER_STATEMENT) {
        upsert_sales(&mut transaction, chunk).await?;
    }
    let after = order_states(&mut transaction, source, &orders).await?;
    let changed = events
        .iter()
        .zip(status_changed)
        .map(|(event, status_changed)| {
            status_changed
                || event
                    .sale
                    .is_some_and(|sale| before.get(&sale.order_id) != after.get(&sale.order_id))
        })
        .collect();
    if dry_run {
        transaction.rollback().await?;
    } else {
        transaction.commit().await?;
    }
    Ok(changed)
}

/// Rows affected by `INSERT … ON DUPLICATE KEY UPDATE` count 1 per new row and 2 per existing
/// row that was updated (the update always changes `duplicates`), whether or not the client
/// set CLIENT_FOUND_ROWS. So of `rows` rows, `affected - rows` were already stored.
pub(crate) fn split_affected(rows: u64, affected: u64) -> (u64, u64) {
    let already_stored = affected.saturating_sub(rows).min(rows);
    (rows - already_stored, already_stored)
}

/// Splits sorted rows into statements: one source per statement, at most
/// [`MAX_ROWS_PER_STATEMENT`] rows and (unless one row alone is bigger) `max_bytes` of values.
fn statements<'r, 'a>(rows: &'r [EventRow<'a>], max_bytes: usize) -> Vec<&'r [EventRow<'a>]> {
    let mut statements = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (index, row) in rows.iter().enumerate() {
        let size = row.bound_bytes();
        let full = index > start
            && (row.source != rows[start].source
                || index - start >= MAX_ROWS_PER_STATEMENT
                || bytes + size > max_bytes);
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
            conflicts: &[],
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
        let lengths: Vec<usize> = statements(&rows, MAX_STATEMENT_BYTES).iter().map(|s| s.len()).collect();
        assert_eq!(lengths, vec![2, 1, 2]);
        assert!(statements(&[], MAX_STATEMENT_BYTES).is_empty());
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
        let lengths: Vec<usize> = statements(&rows, MAX_STATEMENT_BYTES).iter().map(|s| s.len()).collect();
        assert_eq!(lengths, vec![2, 1, 1, 1]);
    }

    #[test]
    fn placeholders_stay_under_the_protocol_limit() {
        let rows = vec![row("a", "{}"); MAX_ROWS_PER_STATEMENT + 1];
        let lengths: Vec<usize> = statements(&rows, MAX_STATEMENT_BYTES).iter().map(|s| s.len()).collect();
        assert_eq!(lengths, vec![MAX_ROWS_PER_STATEMENT, 1]);
        const { assert!(MAX_ROWS_PER_STATEMENT * BINDS_PER_ROW <= 65_535) };
    }

    #[test]
    fn the_migration_lock_is_named_per_database_within_64_characters() {
        let name = migration_lock_name(&"d".repeat(64));
        assert!(name.len() <= 64, "{name}");
        assert_ne!(migration_lock_name("a"), migration_lock_name("b"));
        assert_eq!(migration_lock_name("a"), migration_lock_name("a"));
    }

    #[test]
    fn values_are_cut_to_a_number_of_characters() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hé", 5), "hé");
    }

    #[test]
    fn a_refusal_keeps_the_drivers_error() {
        let error = StoreError::from(sqlx::Error::Encode("not encodable".into()));
        assert!(matches!(error, StoreError::Refused(_)), "{error:?}");
        let source = std::error::Error::source(&error).unwrap();
        assert_eq!(
            source.to_string(),
            "error occurred while encoding a value: not encodable"
        );
        assert!(matches!(error.sqlx(), Some(sqlx::Error::Encode(_))));
        assert!(StoreError::Timeout(Duration::from_secs(1)).sqlx().is_none());
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
    }

    #[test]
    fn a_connection_failing_under_the_rows_is_lost_for_a_probe_to_explain() {
        assert_eq!(
            classify(&sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into())),
            Class::Lost
        );
        assert_eq!(classify(&sqlx::Error::Protocol("garbled".to_owned())), Class::Lost);
        assert_eq!(classify(&sqlx::Error::WorkerCrashed), Class::Lost);
    }
}
