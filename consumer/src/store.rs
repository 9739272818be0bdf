//! The database: creating it, migrating it, and inserting a batch of events in one
//! transaction. SQL lives here and nowhere else.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::mysql::{MySqlDatabaseError, MySqlPool, MySqlPoolOptions};
use sqlx::{MySql, QueryBuilder};

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
const BINDS_PER_ROW: usize = 8;

/// Rows per statement: MySQL allows at most 65,535 placeholders in one statement.
const MAX_ROWS_PER_STATEMENT: usize = 65_535 / BINDS_PER_ROW;

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
    pub(crate) received_at: DateTime<Utc>,
    pub(crate) retry_count: u32,
    /// Further copies of this event in the same batch: stored as its `duplicates`.
    pub(crate) copies: u32,
}

impl EventRow<'_> {
    fn bound_bytes(&self) -> usize {
        self.source.len() + self.delivery_id.len() + self.event_type.len() + self.body.len() + 64 + 64
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

/// Inserts `rows` in one transaction and commits. A row whose (source, delivery id) is already
/// stored is not changed except for `duplicates`, which goes up by one plus its `copies`.
///
/// `rows` must be sorted by source (as [`crate::message::unique_events`] sorts them): each
/// statement holds one source, so the new rows per source are exact.
pub(crate) async fn insert_events<'a>(pool: &MySqlPool, rows: &[EventRow<'a>]) -> Result<Inserted<'a>, StoreError> {
    let mut inserted = Inserted::default();
    let mut transaction = pool.begin().await?;
    for statement in statements(rows) {
        let mut builder = QueryBuilder::<MySql>::new(
            "INSERT INTO events (source, delivery_id, event_type, body, body_sha256, received_at, stored_at, retry_count, duplicates) ",
        );
        builder.push_values(statement, |mut values, row| {
            values
                .push_bind(row.source)
                .push_bind(row.delivery_id)
                .push_bind(row.event_type)
                .push_bind(row.body)
                .push_bind(row.body_sha256)
                .push_bind(row.received_at.naive_utc())
                .push("UTC_TIMESTAMP(6)")
                .push_bind(row.retry_count)
                .push_bind(row.copies);
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
    transaction.commit().await?;
    Ok(inserted)
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
            received_at: Utc::now(),
            retry_count: 0,
            copies: 0,
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
            received_at: Utc::now(),
            retry_count: 0,
            copies,
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
            received_at: Utc::now(),
            retry_count: 0,
            copies: 0,
        };
        let error = insert_events(&pool, &[row]).await.unwrap_err();
        assert!(
            matches!(&error, StoreError::Refused(text) if text.contains("no_x")),
            "{error:?}"
        );
        pool.close().await;
    }
}
