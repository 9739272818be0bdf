//! The broker's limit: persistent messages published straight to a queue of the same type as
//! `{P}.events`, each awaited for its confirm by one of `--concurrency` tasks (the way the
//! handler's requests wait), on one connection with `--channels` confirm channels.
//!
//! With `--rate R --seconds S` it runs open loop instead: a message is sent at each scheduled
//! time (R a second for S seconds), each from a task of its own, and the latency of its confirm
//! is measured from the scheduled time, so that a broker stall shows in full, as loadgen
//! measures the handler's steady phase.
//!
//! Either way it reports the client's own CPU (user+system, from its threads' schedstat) over
//! the publishing, per message: the publish floor of the handler's CPU per request.

#![allow(clippy::print_stdout)] // the result is the program's output

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures_util::future::try_join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};

/// Publishes persistent messages with confirms and prints messages/s.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The broker.
    #[arg(long, env = "AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,
    /// Messages to publish.
    #[arg(long, short = 'n', default_value_t = 50_000)]
    messages: u64,
    /// Publishers awaiting their confirm at once.
    #[arg(long, short, default_value_t = 32)]
    concurrency: u64,
    /// Confirm-mode channels on the connection.
    #[arg(long, default_value_t = 2)]
    channels: usize,
    /// Body size in bytes.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// quorum or classic.
    #[arg(long, default_value = "quorum")]
    queue_type: String,
    /// Publish the way the handler does: through a topic exchange bound with `#`, with the
    /// handler's properties and headers. Without it, straight to the queue (the limit).
    #[arg(long)]
    as_handler: bool,
    /// Open loop: publish this many messages a second (with --seconds; --messages and
    /// --concurrency are then unused).
    #[arg(long, requires = "seconds")]
    rate: Option<f64>,
    /// Open loop: for this many seconds.
    #[arg(long, requires = "rate")]
    seconds: Option<f64>,
}

/// Where and how every message goes: straight to the queue, or the handler's way.
#[derive(Debug, Clone)]
struct Target {
    queue: String,
    exchange: Option<String>,
    body: Vec<u8>,
}

impl Target {
    /// Publishes message `n` of task `task` and waits for its confirm.
    async fn publish(&self, channel: &lapin::Channel, task: u64, n: u64) -> anyhow::Result<()> {
        let (exchange, routing_key, properties) = match &self.exchange {
            None => ("", self.queue.clone(), BasicProperties::default().with_delivery_mode(2)),
            Some(exchange) => {
                let envelope = webhook_core::envelope::Envelope {
                    source: "bench".to_owned(),
                    delivery_id: format!("{task}-{n}"),
                    event_type: "sale.completed".to_owned(),
                    received_at: chrono::Utc::now(),
                    retry_count: 0,
                    body_format: webhook_core::payload::BodyFormat::Json,
                };
                (exchange.as_str(), envelope.routing_key(), envelope.properties())
            }
        };
        let confirm = channel
            .basic_publish(
                exchange.into(),
                routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &self.body,
                properties,
            )
            .await?
            .await?;
        anyhow::ensure!(matches!(confirm, Confirmation::Ack(None)), "not confirmed: {confirm:?}");
        Ok(())
    }
}

/// p50, p90, p99, p99.9 and max of `latencies` in milliseconds, as loadgen reports them.
fn percentiles(latencies: &mut [Duration]) -> String {
    latencies.sort_unstable();
    let at = |quantile: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((latencies.len() as f64 * quantile).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index].as_secs_f64() * 1000.0
    };
    format!(
        "{{\"p50\":{:.3},\"p90\":{:.3},\"p99\":{:.3},\"p99.9\":{:.3},\"max\":{:.3}}}",
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        at(1.0)
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let connection = Connection::connect(&args.amqp_url, ConnectionProperties::default())
        .await
        .context("connecting to the broker")?;
    let queue = format!("bench.raw.{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut channels = Vec::new();
    for _ in 0..args.channels.max(1) {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        channels.push(channel);
    }
    bench::declare_queue(&channels[0], &queue, &args.queue_type).await?;

    let exchange = if args.as_handler {
        let exchange = format!("{queue}.topic");
        channels[0]
            .exchange_declare(
                exchange.as_str().into(),
                lapin::ExchangeKind::Topic,
                lapin::options::ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channels[0]
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "#".into(),
                lapin::options::QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Some(exchange)
    } else {
        None
    };
    let target = Target {
        queue: queue.clone(),
        exchange: exchange.clone(),
        body: vec![b'x'; args.body_bytes],
    };
    let cpu_before = bench::cpu_seconds()?;
    let started = Instant::now();
    let (messages, latency) = match (args.rate, args.seconds) {
        (Some(rate), Some(seconds)) => {
            anyhow::ensure!(rate > 0.0 && seconds > 0.0, "--rate and --seconds must be above 0");
            let messages = (rate * seconds).round() as u64;
            let mut sent = tokio::task::JoinSet::new();
            for n in 0..messages {
                let at = started + Duration::from_secs_f64(n as f64 / rate);
                tokio::time::sleep_until(at.into()).await;
                let channel = channels[n as usize % channels.len()].clone();
                let target = target.clone();
                sent.spawn(async move {
                    target.publish(&channel, 0, n).await?;
                    anyhow::Ok(at.elapsed())
                });
            }
            let mut latencies = Vec::with_capacity(messages as usize);
            while let Some(result) = sent.join_next().await {
                latencies.push(result??);
            }
            (messages, Some(percentiles(&mut latencies)))
        }
        _ => {
            let tasks = (0..args.concurrency).map(|task| {
                let channel = channels[task as usize % channels.len()].clone();
                let target = target.clone();
                let share = args.messages / args.concurrency + u64::from(task < args.messages % args.concurrency);
                async move {
                    for n in 0..share {
                        target.publish(&channel, task, n).await?;
                    }
                    anyhow::Ok(())
                }
            });
            try_join_all(tasks).await?;
            (args.messages, None)
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let cpu = bench::cpu_seconds()? - cpu_before;
    channels[0]
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    if let Some(exchange) = &exchange {
        channels[0]
            .exchange_delete(
                exchange.as_str().into(),
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await?;
    }
    let _ = connection.close(200, "OK".into()).await;
    let open_loop = match (args.rate, args.seconds, latency) {
        (Some(rate), Some(duration), Some(latency)) => {
            format!(",\"rate\":{rate},\"duration\":{duration},\"latency_ms\":{latency}")
        }
        _ => String::new(),
    };
    println!(
        "{{\"messages\":{messages},\"seconds\":{seconds:.3},\"messages_per_second\":{:.0},\"concurrency\":{},\"channels\":{},\"body_bytes\":{},\"cpu_seconds\":{cpu:.4},\"cpu_us_per_message\":{:.2}{open_loop}}}",
        messages as f64 / seconds,
        args.concurrency,
        args.channels,
        args.body_bytes,
        cpu * 1e6 / messages.max(1) as f64,
    );
    Ok(())
}
