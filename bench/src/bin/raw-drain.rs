//! The drain's limit: the least a consumer can do with a backlog. `--messages` persistent
//! messages are published (with confirms, not timed) to a quorum queue of their own; then
//! `--workers` connections, each with `--prefetch` deliveries unacked at most, take batches of
//! `--batch`, write each batch to the first migration's `events` table in one multi-row insert
//! and transaction (the raw inserter's), commit, and ack it with one `multiple` ack: the
//! consumer's shape without its schema, sales, ledger or triggers. With `--no-insert` the
//! batches are acked without writing: the broker's delivery limit alone.
//!
//! Reports the drain's events a second (from the first delivery asked for to the last ack)
//! and this process's CPU per event.

#![allow(clippy::print_stdout)] // the result is the program's output

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures_util::StreamExt;
use futures_util::future::try_join_all;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use sqlx::{Connection as _, MySqlConnection};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The broker.
    #[arg(long, env = "AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,
    /// The database server (a database of its own is made on it, and dropped after).
    #[arg(long, env = "BENCH_DATABASE_SERVER", default_value = "mysql://root@127.0.0.1:3306")]
    server: String,
    /// Messages in the backlog.
    #[arg(long, short = 'n', default_value_t = 100_000)]
    messages: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// Consuming connections, as the consumer's `CONSUMER_WORKERS`.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Unacked deliveries per connection, as `PREFETCH`.
    #[arg(long, default_value_t = 1000)]
    prefetch: u16,
    /// Deliveries per batch, as `BATCH_SIZE`.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Ack batches without writing them: the broker's part alone.
    #[arg(long)]
    no_insert: bool,
}

/// A batch is closed this long after its first delivery even when short, as `BATCH_WAIT_MS`.
const BATCH_WAIT: Duration = Duration::from_millis(20);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.no_insert {
        run(&args, None).await
    } else {
        bench::with_raw_events_database(&args.server, "bench_drain", |url| run(&args, Some(url))).await
    }
}

async fn run(args: &Args, database: Option<String>) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.workers > 0 && args.batch > 0,
        "--workers and --batch must be above 0"
    );
    anyhow::ensure!(
        args.batch <= usize::from(args.prefetch),
        "--batch may not exceed --prefetch: a batch could never fill"
    );
    let connection = Connection::connect(&args.amqp_url, ConnectionProperties::default())
        .await
        .context("connecting to the broker")?;
    let channel = connection.create_channel().await?;
    let queue = format!("bench.drain.{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from(&b"quorum"[..])),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel.queue_declare(queue.as_str().into(), durable, arguments).await?;
    let result = async {
        fill(&connection, &queue, args).await?;
        drain(&queue, database.as_deref(), args).await
    }
    .await;
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    let _ = connection.close(200, "OK".into()).await;
    result
}

/// Publishes the backlog: 64 publishers awaiting their confirms on two channels.
async fn fill(connection: &Connection, queue: &str, args: &Args) -> anyhow::Result<()> {
    const PUBLISHERS: u64 = 64;
    let mut channels = Vec::new();
    for _ in 0..2 {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        channels.push(channel);
    }
    let body = vec![b'x'; args.body_bytes];
    let publishers = (0..PUBLISHERS).map(|task| {
        let channel = channels[task as usize % channels.len()].clone();
        let share = args.messages / PUBLISHERS + u64::from(task < args.messages % PUBLISHERS);
        let body = &body;
        async move {
            for _ in 0..share {
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        queue.into(),
                        BasicPublishOptions::default(),
                        body,
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await?
                    .await?;
                anyhow::ensure!(matches!(confirm, Confirmation::Ack(None)), "not confirmed: {confirm:?}");
            }
            anyhow::Ok(())
        }
    });
    try_join_all(publishers).await?;
    for channel in channels {
        channel.close(200, "OK".into()).await?;
    }
    Ok(())
}

/// Consumes the backlog with `--workers` connections and prints the result.
async fn drain(queue: &str, database: Option<&str>, args: &Args) -> anyhow::Result<()> {
    let acked = Arc::new(AtomicU64::new(0));
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(args.body_bytes.saturating_sub(10)));
    let cpu_before = bench::cpu_seconds()?;
    let started = Instant::now();
    let workers = (0..args.workers).map(|worker| {
        let acked = Arc::clone(&acked);
        let body = body.as_str();
        async move {
            let mut database = match database {
                Some(url) => Some(MySqlConnection::connect(url).await?),
                None => None,
            };
            let connection = Connection::connect(&args.amqp_url, ConnectionProperties::default()).await?;
            let channel = connection.create_channel().await?;
            channel.basic_qos(args.prefetch, BasicQosOptions::default()).await?;
            let tag = format!("raw-drain-{worker}");
            let mut consumer = channel
                .basic_consume(
                    queue.into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            let mut batch = Vec::with_capacity(args.batch);
            while acked.load(Ordering::Relaxed) < args.messages {
                // The other workers may hold the last deliveries: look again now and then.
                let first = match tokio::time::timeout(Duration::from_millis(100), consumer.next()).await {
                    Err(_) => continue,
                    Ok(Some(delivery)) => delivery?,
                    Ok(None) => anyhow::bail!("the broker cancelled the consumer"),
                };
                batch.push(first);
                let deadline = tokio::time::Instant::now() + BATCH_WAIT;
                while batch.len() < args.batch {
                    match tokio::time::timeout_at(deadline, consumer.next()).await {
                        Err(_) => break,
                        Ok(Some(delivery)) => batch.push(delivery?),
                        Ok(None) => anyhow::bail!("the broker cancelled the consumer"),
                    }
                }
                if let Some(database) = database.as_mut() {
                    let ids = batch
                        .iter()
                        .map(|delivery| format!("{worker}-{}", delivery.delivery_tag));
                    bench::insert_raw_events(database, ids, body).await?;
                }
                let last = batch.last().expect("a batch holds its first delivery");
                last.acker.ack(BasicAckOptions { multiple: true }).await?;
                acked.fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.clear();
            }
            let _ = connection.close(200, "OK".into()).await;
            anyhow::Ok(())
        }
    });
    try_join_all(workers).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = bench::cpu_seconds()? - cpu_before;
    let messages = acked.load(Ordering::Relaxed);
    println!(
        "{{\"messages\":{messages},\"seconds\":{seconds:.3},\"messages_per_second\":{:.0},\"workers\":{},\"prefetch\":{},\"batch\":{},\"insert\":{},\"body_bytes\":{},\"cpu_seconds\":{cpu:.3},\"cpu_us_per_message\":{:.2}}}",
        messages as f64 / seconds,
        args.workers,
        args.prefetch,
        args.batch,
        !args.no_insert,
        args.body_bytes,
        cpu * 1e6 / messages.max(1) as f64,
    );
    Ok(())
}
