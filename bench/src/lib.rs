//! Benchmark binaries live in `src/bin/`; what more than one of them needs is here.

use anyhow::Context;
use sqlx::{Connection, Executor, MySqlConnection, QueryBuilder};

/// The `events` table as the first migration made it: one unique key, no secondary index, no
/// trigger. What a raw inserter writes to, the least a stored event can cost.
pub const RAW_EVENTS_SCHEMA: &str = include_str!("../../migrations/20261101000001_create_events.sql");

/// CPU seconds this process's threads have run so far: the sum of their run time in
/// `/proc/self/task/*/schedstat` (nanoseconds, user and system together), which is finer than
/// the clock ticks of `/proc/self/stat`. Only living threads count: read it before closing a
/// lapin connection, whose I/O thread takes its run time with it.
pub fn cpu_seconds() -> anyhow::Result<f64> {
    let mut nanos = 0u64;
    for task in std::fs::read_dir("/proc/self/task").context("reading /proc/self/task")? {
        let path = task?.path().join("schedstat");
        // A thread that has just exited has no file any more.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let run = text.split_whitespace().next().context("empty schedstat")?;
        nanos += run
            .parse::<u64>()
            .with_context(|| format!("parsing {}", path.display()))?;
    }
    Ok(nanos as f64 / 1e9)
}

/// A database of its own on `server` holding [`RAW_EVENTS_SCHEMA`], for the time of `work`,
/// dropped after it whether `work` succeeded or not. `work` gets the database's URL.
pub async fn with_raw_events_database<T, F>(
    server: &str,
    prefix: &str,
    work: impl FnOnce(String) -> F,
) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>>,
{
    let database = format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut admin = MySqlConnection::connect(server)
        .await
        .context("connecting to the database server")?;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{database}` COLLATE utf8mb4_bin"
        )))
        .await?;
    let url = format!("{}/{database}", server.trim_end_matches('/'));
    let result = async {
        let mut connection = MySqlConnection::connect(&url).await?;
        connection.execute(RAW_EVENTS_SCHEMA).await?;
        connection.close().await?;
        work(url).await
    }
    .await;
    // The work's own error, if any, is the one to report; a failed drop is said beside it.
    if let Err(error) = admin
        .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE `{database}`")))
        .await
    {
        eprintln!("database {database} was not dropped: {error}");
    }
    result
}

/// A JSON object of `bytes` bytes (at least 10): `{"pad":"xxx…"}`.
pub fn padded_json_body(bytes: usize) -> String {
    format!("{{\"pad\":\"{}\"}}", "x".repeat(bytes.saturating_sub(10)))
}

/// Declares a durable queue of `queue_type` (`quorum` or `classic`).
pub async fn declare_queue(channel: &lapin::Channel, name: &str, queue_type: &str) -> anyhow::Result<()> {
    let mut arguments = lapin::types::FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString(lapin::types::LongString::from(queue_type.as_bytes())),
    );
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..lapin::options::QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.into(), durable, arguments)
        .await
        .with_context(|| format!("declaring queue {name}"))?;
    Ok(())
}

/// Inserts one `events` row per delivery id in one multi-row statement and commits: the raw
/// inserter's transaction.
pub async fn insert_raw_events(
    connection: &mut MySqlConnection,
    delivery_ids: impl IntoIterator<Item = String>,
    body: &str,
) -> anyhow::Result<()> {
    let sha = "0".repeat(64);
    let mut transaction = connection.begin().await?;
    let mut builder = QueryBuilder::new(
        "INSERT INTO events (source, delivery_id, event_type, body, body_sha256, received_at, stored_at, retry_count) ",
    );
    builder.push_values(delivery_ids, |mut row, delivery_id| {
        row.push_bind("bench")
            .push_bind(delivery_id)
            .push_bind("sale.completed")
            .push_bind(body)
            .push_bind(sha.as_str())
            .push_bind("2026-01-01 00:00:00.000000")
            .push("UTC_TIMESTAMP(6)")
            .push_bind(0_u32);
    });
    builder.push(" ON DUPLICATE KEY UPDATE duplicates = duplicates + 1");
    builder.build().execute(&mut *transaction).await?;
    transaction.commit().await?;
    Ok(())
}
