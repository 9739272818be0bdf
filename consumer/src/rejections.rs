//! Stores the rejection log: reads `{P}.rejected` (records the handler writes for every request
//! it turns away) into the `rejections` table in batches, and keeps that table to
//! [`RETENTION_DAYS`] days and [`RETENTION_ROWS`] rows.
//!
//! The records are diagnostics, not events: an unreadable one is dropped (and counted), and the
//! queue itself is bounded by the broker. Still, a batch is acked only after its commit, and a
//! database outage holds it like the event worker does.

use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::MySqlPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use webhook_core::broker::{Backoff, BrokerSettings};
use webhook_core::consume::{Batch, BatchConsumer, BatchHandler, Unsettled};
use webhook_core::rejection::RejectionRecord;

use crate::metrics::Metrics;
use crate::store;
use crate::untrusted::{self, MAX_ERROR_CHARS};

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
        let consumer = BatchConsumer {
            broker: self.broker.clone(),
            queue: self.broker.topology.rejected_queue(),
            name: format!("consumer-rejections-{}", std::process::id()),
            prefetch: BATCH,
            batch_size: usize::from(BATCH),
            batch_wait: BATCH_WAIT,
            backoff: (Duration::from_millis(200), Duration::from_secs(10)),
            // The event workers report broker outages; this reader only follows them.
            quiet: true,
        };
        let shutdown = self.shutdown.clone();
        let mut storing = Storing {
            reader: self,
            last_prune: None,
        };
        consumer.run(&mut storing, &shutdown).await;
    }
}

/// The batch handler: stores each batch, acks it, and prunes now and then.
struct Storing {
    reader: RejectionReader,
    last_prune: Option<Instant>,
}

impl BatchHandler for Storing {
    async fn handle(&mut self, batch: Batch) -> Result<(), Unsettled> {
        let reader = &self.reader;
        let records: Vec<RejectionRecord> = batch
            .deliveries
            .iter()
            .filter_map(
                |delivery| match serde_json::from_slice::<RejectionRecord>(&delivery.data) {
                    Ok(record) => Some(record),
                    Err(error) => {
                        reader.metrics.rejections_unreadable.inc();
                        // serde's messages quote what they could not read.
                        log::debug!(
                            "rejection log: unreadable record dropped: error={:?}",
                            untrusted::escaped(&error.to_string(), MAX_ERROR_CHARS)
                        );
                        None
                    }
                },
            )
            .collect();
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            match store::insert_rejections(&reader.pool, &records).await {
                Ok(()) => break,
                Err(error) => {
                    let delay = backoff.next_delay();
                    log::debug!(
                        "rejection log: database unavailable: error={:?} retry_in_ms={}",
                        error.to_string(),
                        delay.as_millis()
                    );
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = reader.shutdown.cancelled() => {
                            return Err(Unsettled("stopping while the database is unavailable".to_owned()));
                        }
                    }
                    if !batch.ack.channel_open() {
                        return Err(Unsettled("the channel closed while the batch was held".to_owned()));
                    }
                }
            }
        }
        reader.metrics.rejections_stored.inc_by(records.len() as u64);
        batch.ack.ack().await.map_err(|error| Unsettled(error.to_string()))?;
        if self.last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            self.last_prune = Some(Instant::now());
            match store::prune_rejections(&reader.pool, RETENTION_DAYS, RETENTION_ROWS).await {
                Ok(0) => {}
                Ok(deleted) => log::info!(
                    "rejection log: pruned {deleted} records (older than {RETENTION_DAYS} days or beyond the newest {RETENTION_ROWS})"
                ),
                Err(error) => log::debug!("rejection log: pruning failed: {error}"),
            }
        }
        Ok(())
    }
}
