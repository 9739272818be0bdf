//! Stores the rejection log: reads `{P}.rejected` (records the handler writes for every request
//! it turns away) into the `rejections` table in batches, and keeps that table to
//! [`RETENTION_DAYS`] days and [`RETENTION_ROWS`] rows.
//!
//! The records are diagnostics, not events: an unreadable one is dropped (and counted), and the
//! queue itself is bounded by the broker. Still, a batch is acked only after its commit, and a
//! database outage holds it like the event worker does.
//!
//! A record is stored under its source only when that source is one of [`KnownSources`] and the
//! handler did not call it unknown; every other record goes to the one bucket
//! [`UNKNOWN_SOURCE`], with the name it claimed kept (escaped) in `claimed_source`. Anyone
//! who can publish to the broker can write a record, so this is decided here, not trusted from
//! the handler.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::MySqlPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use webhook_core::broker::{Backoff, BrokerSettings};
use webhook_core::consume::{Batch, BatchConsumer, BatchHandler, Unsettled};
use webhook_core::envelope::MAX_SOURCE_BYTES;
use webhook_core::rejection::{REASON_UNKNOWN_SOURCE, RejectionRecord, UNKNOWN_SOURCE, escaped};
use webhook_core::sources::SourcesFile;

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

/// The source the handler serves without `SOURCES_FILE` (from `WEBHOOK_SECRET`).
const DEFAULT_SOURCE: &str = "default";

/// The sources a rejection may be stored under: `default` and every `[[source]]` of
/// `SOURCES_FILE` (the consumer should read the handler's file; without it, only `default`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownSources(BTreeSet<String>);

impl Default for KnownSources {
    fn default() -> Self {
        Self(BTreeSet::from([DEFAULT_SOURCE.to_owned()]))
    }
}

impl KnownSources {
    /// `default` and the name of every source of `file`.
    pub(crate) fn from_sources(file: &SourcesFile) -> Self {
        let mut known = Self::default();
        known
            .0
            .extend(file.sources().iter().map(|source| source.name.to_string()));
        known
    }

    /// Whether `name` is one of them.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

/// `record` as it is stored: under its source if that is known and the handler did not call
/// it unknown, else under [`UNKNOWN_SOURCE`] with the claimed name, escaped, beside it.
pub(crate) fn filed(mut record: RejectionRecord, known: &KnownSources) -> RejectionRecord {
    if record.reason != REASON_UNKNOWN_SOURCE && known.contains(&record.source) {
        record.claimed_source = None;
        return record;
    }
    let claimed = match record.claimed_source.take() {
        Some(claimed) => Some(claimed),
        None if record.source != UNKNOWN_SOURCE => Some(std::mem::take(&mut record.source)),
        None => None,
    };
    record.claimed_source = claimed.map(|name| escaped(&name, MAX_SOURCE_BYTES));
    record.source = UNKNOWN_SOURCE.to_owned();
    record
}

/// Reads `{P}.rejected` into `rejections` until shutdown.
pub(crate) struct RejectionReader {
    pub(crate) broker: BrokerSettings,
    pub(crate) pool: MySqlPool,
    /// Which sources a record may be stored under.
    pub(crate) sources: Arc<KnownSources>,
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
                    Ok(record) => Some(filed(record, &reader.sources)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(source: &str, reason: &str, claimed: Option<&str>) -> RejectionRecord {
        RejectionRecord {
            at: "2026-11-02T10:11:12.131415Z".to_owned(),
            source: source.to_owned(),
            claimed_source: claimed.map(str::to_owned),
            reason: reason.to_owned(),
            status: 401,
            request_id: "r".to_owned(),
            delivery_id: None,
            remote_addr: None,
            content_length: None,
        }
    }

    fn stored_as(record: RejectionRecord, known: &KnownSources) -> (String, Option<String>) {
        let filed = filed(record, known);
        (filed.source, filed.claimed_source)
    }

    fn known(toml: &str) -> KnownSources {
        KnownSources::from_sources(&SourcesFile::parse(toml).unwrap())
    }

    #[test]
    fn only_a_known_source_keeps_its_name_and_every_stranger_shares_one_bucket() {
        let known = known("[[source]]\nname = \"shop\"\nscheme = \"github\"\nsecrets = [\"s\"]\n");
        let kept = |source: &str| (source.to_owned(), None);
        let bucket = |claimed: Option<&str>| (UNKNOWN_SOURCE.to_owned(), claimed.map(str::to_owned));
        assert_eq!(
            stored_as(record("shop", "signature_mismatch", None), &known),
            kept("shop")
        );
        assert_eq!(stored_as(record("default", "not_json", None), &known), kept("default"));
        // What the handler sends for an unknown source.
        assert_eq!(
            stored_as(record(UNKNOWN_SOURCE, "unknown_source", Some("fake-1")), &known),
            bucket(Some("fake-1"))
        );
        // What an older handler sent, or anyone who publishes to the broker.
        assert_eq!(
            stored_as(record("fake-2", "unknown_source", None), &known),
            bucket(Some("fake-2"))
        );
        assert_eq!(
            stored_as(record("fake-3", "signature_mismatch", None), &known),
            bucket(Some("fake-3"))
        );
        // The handler's word that a source is unknown wins over the consumer's file.
        assert_eq!(
            stored_as(record("shop", "unknown_source", None), &known),
            bucket(Some("shop"))
        );
        // A claimed name is escaped and bounded, however it arrived; a known source carries none.
        assert_eq!(
            stored_as(record(UNKNOWN_SOURCE, "unknown_source", Some("x\u{1b}[2J")), &known),
            bucket(Some("x\\u{1b}[2J"))
        );
        let long = "é".repeat(100);
        let (_, claimed) = stored_as(record(&long, "unknown_source", None), &known);
        assert_eq!(claimed.unwrap().len(), 60);
        assert_eq!(
            stored_as(record("shop", "not_json", Some("evil")), &known),
            kept("shop")
        );
        assert_eq!(
            stored_as(record(UNKNOWN_SOURCE, "not_json", None), &known),
            bucket(None)
        );
    }

    #[test]
    fn without_a_sources_file_only_default_is_known() {
        let default = KnownSources::default();
        assert!(default.contains("default"));
        assert!(!default.contains("shop"));
        let file = known("[[source]]\nname = \"shop\"\nscheme = \"github\"\nsecrets = [\"s\"]\n");
        assert!(file.contains("default") && file.contains("shop"));
    }
}
