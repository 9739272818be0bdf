//! The broker's limit: persistent messages published straight to a queue of the same type as
//! `{P}.events`, each awaited for its confirm by one of `--concurrency` tasks (the way the
//! handler's requests wait), on one connection with `--channels` confirm channels.

#![allow(clippy::print_stdout)] // the result is the program's output

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use futures_util::future::try_join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
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
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from(args.queue_type.as_bytes())),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channels[0]
        .queue_declare(queue.as_str().into(), durable, arguments)
        .await?;

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
    let body = vec![b'x'; args.body_bytes];
    let started = Instant::now();
    let tasks = (0..args.concurrency).map(|task| {
        let channel = channels[task as usize % channels.len()].clone();
        let (queue, body, exchange) = (queue.clone(), body.clone(), exchange.clone());
        let share = args.messages / args.concurrency + u64::from(task < args.messages % args.concurrency);
        async move {
            for n in 0..share {
                let (exchange, routing_key, properties) = match &exchange {
                    None => ("", queue.clone(), BasicProperties::default().with_delivery_mode(2)),
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
                        &body,
                        properties,
                    )
                    .await?
                    .await?;
                anyhow::ensure!(matches!(confirm, Confirmation::Ack(None)), "not confirmed: {confirm:?}");
            }
            anyhow::Ok(())
        }
    });
    try_join_all(tasks).await?;
    let seconds = started.elapsed().as_secs_f64();
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
    println!(
        "{{\"messages\":{},\"seconds\":{seconds:.3},\"messages_per_second\":{:.0},\"concurrency\":{},\"channels\":{},\"body_bytes\":{}}}",
        args.messages,
        args.messages as f64 / seconds,
        args.concurrency,
        args.channels,
        args.body_bytes
    );
    Ok(())
}
