//! Data for measuring the dashboard at scale, written straight into a database in batched
//! multi-row inserts (one transaction per `--batch` rows): a year of events of five vendors with
//! their orders and some dead letters, and rejection records of made-up sources, stored as the
//! consumer of either version stores them. `bench/dashboard-scale.sh` drives it.
//!
//! ```text
//! dashboard-data --database-url URL migrate --migrations DIR
//! dashboard-data --database-url URL events --count 10000000
//! dashboard-data --database-url URL rejections --from 0 --count 100000 --bucketed
//! dashboard-data --database-url URL keep-rejections 100000
//! ```

#![allow(clippy::print_stdout)] // progress and results are the program's output

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chrono::{Duration, NaiveDateTime, Utc};
use clap::{Parser, Subcommand};
use sqlx::{Connection, Executor, MySqlConnection, QueryBuilder};

/// Writes benchmark data for the dashboard.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The database (it must exist).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Rows per statement and transaction.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Applies the migrations in DIR (e.g. an older version's) and prints how long it took.
    Migrate {
        #[arg(long)]
        migrations: PathBuf,
    },
    /// `--count` events over the last 365 days, in time order, for five vendors: 30 % sales
    /// (an order each, a tenth of them refunded), 3 % refunds, the rest other types; 2 % with a
    /// duplicate, 1 % retried; and one dead letter per 500 events.
    Events {
        #[arg(long)]
        count: u64,
    },
    /// `--count` rejections of made-up sources (`fake-<n>` from `--from`) over the last 30 days:
    /// under their own names, as consumers before the bucket stored them, or with `--bucketed`
    /// under `(unknown)` with the name in `claimed_source`.
    Rejections {
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[arg(long)]
        count: u64,
        #[arg(long)]
        bucketed: bool,
    },
    /// Deletes every rejection but the first N, in batches.
    KeepRejections { keep: u64 },
}

/// The vendors, with their currency (`None`: no sales).
const VENDORS: [(&str, Option<&str>); 5] = [
    ("shop", Some("EUR")),
    ("stripe", Some("USD")),
    ("shopify", Some("GBP")),
    ("acme", Some("JPY")),
    ("github", None),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut connection = MySqlConnection::connect(&args.database_url)
        .await
        .context("connecting")?;
    let started = Instant::now();
    match args.command {
        Command::Migrate { migrations } => {
            sqlx::migrate::Migrator::new(migrations)
                .await?
                .run(&mut connection)
                .await?;
        }
        Command::Events { count } => events(&mut connection, count, args.batch).await?,
        Command::Rejections { from, count, bucketed } => {
            rejections(&mut connection, from, count, bucketed, args.batch).await?;
        }
        Command::KeepRejections { keep } => {
            let cut: Option<u64> = sqlx::query_scalar("SELECT id FROM rejections ORDER BY id LIMIT 1 OFFSET ?")
                .bind(keep)
                .fetch_optional(&mut connection)
                .await?;
            if let Some(cut) = cut {
                while sqlx::query("DELETE FROM rejections WHERE id >= ? LIMIT 50000")
                    .bind(cut)
                    .execute(&mut connection)
                    .await?
                    .rows_affected()
                    > 0
                {}
            }
        }
    }
    println!("{{\"seconds\":{:.1}}}", started.elapsed().as_secs_f64());
    connection.close().await?;
    Ok(())
}

/// A cheap deterministic spread of `n` over `0..bound`.
fn spread(n: u64, bound: u64) -> u64 {
    n.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) % bound
}

struct Event {
    source: &'static str,
    delivery_id: String,
    event_type: &'static str,
    body: String,
    received_at: NaiveDateTime,
    stored_at: NaiveDateTime,
    retry_count: u32,
    duplicates: u32,
    status: &'static str,
}

struct Order {
    source: &'static str,
    order_id: String,
    currency: &'static str,
    amount_minor: i64,
    sold_at: NaiveDateTime,
    sale_event_id: String,
    refund: Option<(i64, NaiveDateTime)>,
}

async fn events(connection: &mut MySqlConnection, count: u64, batch: usize) -> anyhow::Result<()> {
    let now = Utc::now().naive_utc();
    let start = now - Duration::days(365);
    let step_us = (365 * 86_400 * 1_000_000) / count.max(1);
    let mut done = 0;
    let started = Instant::now();
    while done < count {
        let end = (done + batch as u64).min(count);
        let mut events = Vec::with_capacity(batch);
        let mut orders = Vec::new();
        let mut dead = Vec::new();
        for n in done..end {
            let (source, currency) = VENDORS[usize::try_from(n % 5)?];
            let received_at = start + Duration::microseconds(i64::try_from(n * step_us)?);
            let stored_at = received_at + Duration::milliseconds(i64::try_from(10 + spread(n, 190))?);
            let kind = spread(n, 100);
            let (event_type, status) = match (kind, currency) {
                (0..30, Some(_)) => ("sale.completed", "processed"),
                (30..33, Some(_)) => ("sale.refunded", "processed"),
                _ => ("customer.updated", "ignored"),
            };
            let delivery_id = format!("evt-{n}");
            if let (Some(currency), "sale.completed") = (currency, event_type) {
                let amount_minor = i64::try_from(100 + spread(n, 50_000))?;
                let refund = (spread(n, 10) == 0).then(|| {
                    let at = (received_at + Duration::days(i64::try_from(spread(n, 30)).unwrap_or(0))).min(now);
                    (amount_minor / 2, at)
                });
                orders.push(Order {
                    source,
                    order_id: format!("o-{n}"),
                    currency,
                    amount_minor,
                    sold_at: received_at,
                    sale_event_id: delivery_id.clone(),
                    refund,
                });
            }
            if n % 500 == 0 {
                dead.push((source, format!("bad-{n}"), received_at));
            }
            events.push(Event {
                source,
                body: format!(
                    r#"{{"id":"{delivery_id}","type":"{event_type}","occurred_at":"{}","data":{{"order_id":"o-{n}","amount":1999,"currency":"EUR"}}}}"#,
                    received_at.format("%Y-%m-%dT%H:%M:%SZ")
                ),
                delivery_id,
                event_type,
                received_at,
                stored_at,
                retry_count: u32::from(spread(n, 100) == 7),
                duplicates: u32::from(spread(n, 50) == 3),
                status,
            });
        }
        let mut transaction = connection.begin().await?;
        let mut insert = QueryBuilder::new(
            "INSERT INTO events (source, delivery_id, event_type, body, body_sha256, received_at, stored_at, \
             retry_count, duplicates, status, processed_at) ",
        );
        insert.push_values(&events, |mut row, event| {
            row.push_bind(event.source)
                .push_bind(&event.delivery_id)
                .push_bind(event.event_type)
                .push_bind(&event.body)
                .push("REPEAT('0', 64)")
                .push_bind(event.received_at)
                .push_bind(event.stored_at)
                .push_bind(event.retry_count)
                .push_bind(event.duplicates)
                .push_bind(event.status)
                .push_bind(event.stored_at);
        });
        transaction.execute(insert.build()).await?;
        if !orders.is_empty() {
            let mut insert = QueryBuilder::new(
                "INSERT INTO sales (source, order_id, currency, amount_minor, sold_at, sale_event_id, \
                 refunded_minor, refunded_at, refund_event_id, updated_at) ",
            );
            insert.push_values(&orders, |mut row, order| {
                row.push_bind(order.source)
                    .push_bind(&order.order_id)
                    .push_bind(order.currency)
                    .push_bind(order.amount_minor)
                    .push_bind(order.sold_at)
                    .push_bind(&order.sale_event_id)
                    .push_bind(order.refund.map_or(0, |(amount, _)| amount))
                    .push_bind(order.refund.map(|(_, at)| at))
                    .push_bind(order.refund.map(|_| format!("r-{}", order.order_id)))
                    .push_bind(order.sold_at);
            });
            transaction.execute(insert.build()).await?;
        }
        if !dead.is_empty() {
            let mut insert = QueryBuilder::new(
                "INSERT INTO dead_letters (source, delivery_id, event_type, reason, error, retry_count, dead_lettered_at) ",
            );
            insert.push_values(&dead, |mut row, (source, delivery_id, at)| {
                row.push_bind(*source)
                    .push_bind(delivery_id)
                    .push_bind("sale.completed")
                    .push_bind("poison")
                    .push_bind("the body is not JSON")
                    .push_bind(0_u32)
                    .push_bind(*at);
            });
            transaction.execute(insert.build()).await?;
        }
        transaction.commit().await?;
        done = end;
        if done % 500_000 < batch as u64 || done == count {
            println!(
                "events: {done} of {count} ({:.0} rows/s)",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

async fn rejections(
    connection: &mut MySqlConnection,
    from: u64,
    count: u64,
    bucketed: bool,
    batch: usize,
) -> anyhow::Result<()> {
    let now = Utc::now().naive_utc();
    let mut done = from;
    while done < from + count {
        let end = (done + batch as u64).min(from + count);
        let mut insert = QueryBuilder::new(
            "INSERT INTO rejections (received_at, source, reason, status, request_id, remote_addr, content_length",
        );
        insert.push(if bucketed { ", claimed_source) " } else { ") " });
        insert.push_values(done..end, |mut row, n| {
            let name = format!("fake-{n}");
            let at = now - Duration::seconds(i64::try_from(spread(n, 30 * 86_400)).unwrap_or(0));
            row.push_bind(at)
                .push_bind(if bucketed { "(unknown)".to_owned() } else { name.clone() })
                .push_bind("unknown_source")
                .push_bind(404_u16)
                .push_bind(format!("req-{n}"))
                .push_bind("192.0.2.1")
                .push_bind(2_u64);
            if bucketed {
                row.push_bind(name);
            }
        });
        connection.execute(insert.build()).await?;
        done = end;
    }
    Ok(())
}
