//! The database's limit: rows of the first migration's `events` table (no secondary index, no
//! trigger) written in multi-row inserts of `--batch`, one transaction each, on one connection.

#![allow(clippy::print_stdout)] // the result is the program's output

use std::time::Instant;

use clap::Parser;
use sqlx::{Connection, MySqlConnection};

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
    bench::with_raw_events_database(&args.server, "bench_raw", |url| run(&args, url)).await
}

async fn run(args: &Args, url: String) -> anyhow::Result<()> {
    let mut connection = MySqlConnection::connect(&url).await?;
    let body = bench::padded_json_body(args.body_bytes);
    let started = Instant::now();
    let mut inserted = 0;
    while inserted < args.rows {
        let count = args.batch.min(args.rows - inserted);
        bench::insert_raw_events(
            &mut connection,
            (inserted..inserted + count).map(|n| format!("d-{n}")),
            &body,
        )
        .await?;
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
