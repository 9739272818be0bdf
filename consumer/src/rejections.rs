//! Stores the rejection log: reads `{P}.rejected` (records the handler writes for every request
//! it turns away) into the `rejections` table in batches, and keeps that table to
//! [`RETENTION_DAYS`] days and [`RETENTION_ROWS`] rows.
//!
//! The records are diagnostics, not events: an unreadable one is dropped (and counted), and the
//! queue itself is bounded by the broker. Still, a batch is acked only after its commit, and a
//! database outage holds it like the event worker does.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use sqlx::mysql::MySqlPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use webhook_core::broker::{self, Backoff, BrokerConnection, BrokerSettings};
use webhook_core::rejection::RejectionRecord;

use crate::metrics::Metrics;
use crate::store;

/// How long rejection records are kept.
pub(crate) const RETENTION_DAYS: u32 = 30;
/// How many rejection records are kept at most (the newest), whatever their age: a flood of
/// bad requests cannot grow the table without bound.
pub(crate) const RETENTION_ROWS: u64 = 1_000_000;
/// Records per transaction, and unacked records in flight.
const BATCH: u16 = 500;
/// How long a batch waits for more records after its first.
const BATCH_WAIT: Duration = Duration::from_millis(500);
/// How often old records are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(300);

/// Reads `{P}.rejected` into `rejections` until shutdown.
pub(crate) struct RejectionReader {
    pub(crate) broker: BrokerSettings,
    pub(crate) pool: MySqlPool,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) shutdown: CancellationToken,
}

impl RejectionReader {
    /// Consumes, reconnecting with backoff, until the shutdown token is cancelled.
    pub(crate) async fn run(self) {
        let name = format!("consumer-rejections-{}", std::process::id());
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut last_prune: Option<Instant> = None;
        while !self.shutdown.is_cancelled() {
            let opened = tokio::select! {
                opened = self.open(&name) => opened,
                () = self.shutdown.cancelled() => break,
            };
            let (connection, channel, consumer) = match opened {
                Ok(opened) => opened,
                Err(error) => {
                    let delay = backoff.next_delay();
                    log::debug!(
                        "rejection log: broker not available: error=\"{error:#}\" retry_in_ms={}",
                        delay.as_millis()
                    );
                    tokio::select! {
                        () = tokio::time::sleep(delay) => continue,
                        () = self.shutdown.cancelled() => break,
                    }
                }
            };
            backoff.reset();
            self.consume(&channel, consumer, &mut last_prune).await;
            connection.close().await;
        }
    }

    async fn open(&self, name: &str) -> anyhow::Result<(BrokerConnection, Channel, Consumer)> {
        let connection = broker::connect(&self.broker.addresses, name).await?;
        let channel = connection.create_channel().await?;
        self.broker.topology.declare(&channel).await?;
        channel.basic_qos(BATCH, BasicQosOptions::default()).await?;
        let consumer = channel
            .basic_consume(
                self.broker.topology.rejected_queue().as_str().into(),
                name.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((connection, channel, consumer))
    }

    async fn consume(&self, channel: &Channel, mut consumer: Consumer, last_prune: &mut Option<Instant>) {
        loop {
            let first = tokio::select! {
                () = self.shutdown.cancelled() => return,
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => delivery,
                    _ => return,
                },
            };
            let mut batch = vec![first];
            let deadline = Instant::now() + BATCH_WAIT;
            while batch.len() < usize::from(BATCH) {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => break,
                    next = consumer.next() => match next {
                        Some(Ok(delivery)) => batch.push(delivery),
                        _ => return,
                    },
                }
            }
            let records: Vec<RejectionRecord> = batch
                .iter()
                .filter_map(
                    |delivery| match serde_json::from_slice::<RejectionRecord>(&delivery.data) {
                        Ok(record) => Some(record),
                        Err(error) => {
                            self.metrics.rejections_unreadable.inc();
                            log::debug!("rejection log: unreadable record dropped: {error}");
                            None
                        }
                    },
                )
                .collect();
            let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
            loop {
                match store::insert_rejections(&self.pool, &records).await {
                    Ok(()) => break,
                    Err(error) => {
                        let delay = backoff.next_delay();
                        log::debug!(
                            "rejection log: database unavailable: error=\"{error}\" retry_in_ms={}",
                            delay.as_millis()
                        );
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = self.shutdown.cancelled() => return,
                        }
                        if !channel.status().connected() {
                            return;
                        }
                    }
                }
            }
            self.metrics.rejections_stored.inc_by(records.len() as u64);
            let Some(last) = batch.last() else { continue };
            if !matches!(last.acker.ack(BasicAckOptions { multiple: true }).await, Ok(true)) {
                return;
            }
            if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                *last_prune = Some(Instant::now());
                match store::prune_rejections(&self.pool, RETENTION_DAYS, RETENTION_ROWS).await {
                    Ok(0) => {}
                    Ok(deleted) => log::info!(
                        "rejection log: pruned {deleted} records (older than {RETENTION_DAYS} days or beyond the newest {RETENTION_ROWS})"
                    ),
                    Err(error) => log::debug!("rejection log: pruning failed: {error}"),
                }
            }
        }
    }
}
