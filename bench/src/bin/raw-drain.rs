//! The drain's limit: the least a consumer can do with a backlog. `raw-drain fill` publishes
//! `--messages` persistent messages (with confirms) to a quorum queue of that name; `raw-drain
//! drain` then consumes them with `--workers` connections, each with `--prefetch` deliveries
//! unacked at most, in batches of `--batch`, and acks each batch with one `multiple` ack. With
//! `--database-url` (a database holding the first migration's `events` table, e.g. `mariadb DB <
//! migrations/20261101000001_create_events.sql`) each batch is first written there in one
//! multi-row insert and transaction, the raw inserter's, and committed: the consumer's shape
//! without its schema, sales, ledger or triggers. Without it the batches are acked unwritten:
//! the broker's delivery limit alone. Two commands, so that a caller can measure the drain apart
//! from the fill (and create and drop the database outside it).
//!
//! `drain` deletes the queue, empty by then, once it has drained it, and reports the drain's
//! events a second (from the first delivery asked for to the last ack) and its own CPU per event.

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
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use sqlx::{Connection as _, MySqlConnection};

#[derive(Debug, Parser)]
#[command(version, about)]
enum Command {
    /// Declares the queue and publishes the backlog to it.
    Fill {
        #[command(flatten)]
        backlog: Backlog,
        /// Body size in bytes.
        #[arg(long, default_value_t = 1024)]
        body_bytes: usize,
    },
    /// Consumes the backlog, then deletes the queue.
    Drain {
        #[command(flatten)]
        backlog: Backlog,
        #[command(flatten)]
        shape: Shape,
    },
}

/// The broker, the queue and how many messages it holds.
#[derive(Debug, clap::Args)]
struct Backlog {
    /// The broker.
    #[arg(long, env = "AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,
    /// The quorum queue holding the backlog.
    #[arg(long)]
    queue: String,
    /// Messages in the backlog.
    #[arg(long, short = 'n', default_value_t = 100_000)]
    messages: u64,
}

/// How the backlog is consumed.
#[derive(Debug, clap::Args)]
struct Shape {
    /// Write each batch to the `events` table of this database before acking it.
    #[arg(long)]
    database_url: Option<String>,
    /// Consuming connections, as the consumer's `CONSUMER_WORKERS`.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Unacked deliveries per connection, as `PREFETCH`.
    #[arg(long, default_value_t = 1000)]
    prefetch: u16,
    /// Deliveries per batch, as `BATCH_SIZE`.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Body size of the rows written, in bytes (the messages' bodies are not read).
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
}

/// A batch is closed this long after its first delivery even when short, as `BATCH_WAIT_MS`.
const BATCH_WAIT: Duration = Duration::from_millis(20);
/// A worker that has had no delivery for this long while the backlog is not all acked gives up.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Command::parse() {
        Command::Fill { backlog, body_bytes } => fill(&backlog, body_bytes).await,
        Command::Drain { backlog, shape } => {
            anyhow::ensure!(
                shape.workers > 0 && shape.batch > 0,
                "--workers and --batch must be above 0"
            );
            anyhow::ensure!(
                shape.batch <= usize::from(shape.prefetch),
                "--batch may not exceed --prefetch: a batch could never fill"
            );
            // A drain that failed leaves the queue as it is, for a look or another try.
            drain(&backlog, &shape).await?;
            delete_queue(&backlog).await
        }
    }
}

/// Declares the quorum queue and publishes the backlog to it: 64 publishers awaiting their
/// confirms on two channels.
async fn fill(backlog: &Backlog, body_bytes: usize) -> anyhow::Result<()> {
    const PUBLISHERS: u64 = 64;
    let connection = Connection::connect(&backlog.amqp_url, ConnectionProperties::default())
        .await
        .context("connecting to the broker")?;
    let mut channels = Vec::new();
    for _ in 0..2 {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        channels.push(channel);
    }
    bench::declare_queue(&channels[0], &backlog.queue, "quorum").await?;
    let body = vec![b'x'; body_bytes];
    let publishers = (0..PUBLISHERS).map(|task| {
        let channel = channels[task as usize % channels.len()].clone();
        let share = backlog.messages / PUBLISHERS + u64::from(task < backlog.messages % PUBLISHERS);
        let body = &body;
        async move {
            for _ in 0..share {
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        backlog.queue.as_str().into(),
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
    let _ = connection.close(200, "OK".into()).await;
    Ok(())
}

/// Deletes the backlog's queue.
async fn delete_queue(backlog: &Backlog) -> anyhow::Result<()> {
    let connection = Connection::connect(&backlog.amqp_url, ConnectionProperties::default())
        .await
        .context("connecting to the broker")?;
    let channel = connection.create_channel().await?;
    channel
        .queue_delete(backlog.queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    let _ = connection.close(200, "OK".into()).await;
    Ok(())
}

/// Consumes the backlog with `--workers` connections and prints the result.
async fn drain(backlog: &Backlog, shape: &Shape) -> anyhow::Result<()> {
    let ready = {
        let connection = Connection::connect(&backlog.amqp_url, ConnectionProperties::default())
            .await
            .context("connecting to the broker")?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let declared = connection
            .create_channel()
            .await?
            .queue_declare(backlog.queue.as_str().into(), passive, FieldTable::default())
            .await
            .with_context(|| format!("no queue {} (raw-drain fill makes it)", backlog.queue))?;
        let _ = connection.close(200, "OK".into()).await;
        u64::from(declared.message_count())
    };
    anyhow::ensure!(
        ready >= backlog.messages,
        "{} holds {ready} messages ready, fewer than the {} to drain",
        backlog.queue,
        backlog.messages
    );
    let acked = Arc::new(AtomicU64::new(0));
    let body = bench::padded_json_body(shape.body_bytes);
    let cpu_before = bench::cpu_seconds()?;
    let started = Instant::now();
    let workers = (0..shape.workers).map(|worker| {
        let acked = Arc::clone(&acked);
        let body = body.as_str();
        async move {
            let mut database = match &shape.database_url {
                Some(url) => Some(
                    MySqlConnection::connect(url)
                        .await
                        .context("connecting to the database")?,
                ),
                None => None,
            };
            let connection = Connection::connect(&backlog.amqp_url, ConnectionProperties::default()).await?;
            let channel = connection.create_channel().await?;
            channel.basic_qos(shape.prefetch, BasicQosOptions::default()).await?;
            let tag = format!("raw-drain-{worker}");
            let mut consumer = channel
                .basic_consume(
                    backlog.queue.as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            let mut batch = Vec::with_capacity(shape.batch);
            let mut last_delivery = Instant::now();
            while acked.load(Ordering::Relaxed) < backlog.messages {
                // The other workers may hold the last deliveries: look again now and then.
                let first = match tokio::time::timeout(Duration::from_millis(100), consumer.next()).await {
                    Err(_) if last_delivery.elapsed() < IDLE_LIMIT => continue,
                    Err(_) => anyhow::bail!(
                        "no delivery for {IDLE_LIMIT:?} with {} of {} acked",
                        acked.load(Ordering::Relaxed),
                        backlog.messages
                    ),
                    Ok(Some(delivery)) => delivery?,
                    Ok(None) => anyhow::bail!("the broker cancelled the consumer"),
                };
                batch.push(first);
                let deadline = tokio::time::Instant::now() + BATCH_WAIT;
                while batch.len() < shape.batch {
                    match tokio::time::timeout_at(deadline, consumer.next()).await {
                        Err(_) => break,
                        Ok(Some(delivery)) => batch.push(delivery?),
                        Ok(None) => anyhow::bail!("the broker cancelled the consumer"),
                    }
                }
                last_delivery = Instant::now();
                if let Some(database) = database.as_mut() {
                    let ids = batch
                        .iter()
                        .map(|delivery| format!("{worker}-{}", delivery.delivery_tag));
                    bench::insert_raw_events(database, ids, body).await?;
                }
                let last = batch.last().expect("a batch holds its first delivery");
                let taken = last.acker.ack(BasicAckOptions { multiple: true }).await?;
                anyhow::ensure!(taken, "the ack of a batch was not sent: the channel is gone");
                acked.fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.clear();
            }
            // Closed after the CPU is read: lapin runs each connection's I/O on a thread of its
            // own, whose run time leaves /proc/self/task with it.
            anyhow::Ok(connection)
        }
    });
    let connections = try_join_all(workers).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = bench::cpu_seconds()? - cpu_before;
    for connection in connections {
        let _ = connection.close(200, "OK".into()).await;
    }
    let messages = acked.load(Ordering::Relaxed);
    println!(
        "{{\"messages\":{messages},\"seconds\":{seconds:.3},\"messages_per_second\":{:.0},\"workers\":{},\"prefetch\":{},\"batch\":{},\"insert\":{},\"body_bytes\":{},\"cpu_seconds\":{cpu:.3},\"cpu_us_per_message\":{:.2}}}",
        messages as f64 / seconds,
        shape.workers,
        shape.prefetch,
        shape.batch,
        shape.database_url.is_some(),
        shape.body_bytes,
        cpu * 1e6 / messages.max(1) as f64,
    );
    Ok(())
}
