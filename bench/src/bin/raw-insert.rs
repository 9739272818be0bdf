//! The database's limit: rows shaped like `events` inserted in multi-row statements of
//! `--batch` rows, one transaction per statement, into a database of its own (dropped after).

#![allow(clippy::print_stdout)] // the result is the program's output

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use sqlx::{Connection, Executor, MySqlConnection, QueryBuilder};

/// A fixed `received_at`: the time itself does not change the cost of a row.
const RECEIVED_AT: &str = "2026-01-01 00:00:00.000000";

/// Inserts rows in batches and prints rows/s.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The server, without a database name.
    #[arg(long, env = "BENCH_DATABASE_SERVER", default_value = "mysql://root@127.0.0.1:3306")]
    server: String,
    /// Rows to insert.
    #[arg(long, short = 'n', default_value_t = 200_000)]
    rows: usize,
    /// Rows per statement.
    #[arg(long, short, default_value_t = 500)]
    batch: usize,
    /// Body size in bytes.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let database = format!("bench_raw_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut server = MySqlConnection::connect(&args.server).await.context("connecting")?;
    server
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{database}` COLLATE utf8mb4_bin"
        )))
        .await?;
    let result = run(&args, &database).await;
    server
        .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE `{database}`")))
        .await?;
    result
}

async fn run(args: &Args, database: &str) -> anyhow::Result<()> {
    let mut connection = MySqlConnection::connect(&format!("{}/{database}", args.server.trim_end_matches('/'))).await?;
    let schema = include_str!("../../../migrations/20261101000001_create_events.sql");
    connection.execute(schema).await?;
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(args.body_bytes.saturating_sub(10)));
    let sha = "0".repeat(64);
    let started = Instant::now();
    let mut inserted = 0;
    while inserted < args.rows {
        let count = args.batch.min(args.rows - inserted);
        let mut transaction = connection.begin().await?;
        let mut builder = QueryBuilder::new(
            "INSERT INTO events (source, delivery_id, event_type, body, body_sha256, received_at, stored_at, retry_count) ",
        );
        builder.push_values(inserted..inserted + count, |mut row, n| {
            row.push_bind("bench")
                .push_bind(format!("d-{n}"))
                .push_bind("sale.completed")
                .push_bind(&body)
                .push_bind(&sha)
                .push_bind(RECEIVED_AT)
                .push("UTC_TIMESTAMP(6)")
                .push_bind(0_u32);
        });
        builder.push(" ON DUPLICATE KEY UPDATE duplicates = duplicates + 1");
        builder.build().execute(&mut *transaction).await?;
        transaction.commit().await?;
        inserted += count;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"rows\":{},\"seconds\":{seconds:.3},\"rows_per_second\":{:.0},\"batch\":{},\"body_bytes\":{}}}",
        args.rows,
        args.rows as f64 / seconds,
        args.batch,
        args.body_bytes
    );
    Ok(())
}
