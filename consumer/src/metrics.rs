//! The consumer's Prometheus metrics, served at `GET /metrics`.
//!
//! Label values are bounded: `source` only on stored events (a stored event's source passed
//! envelope validation), attempts by `MAX_RETRIES` (at most 100), dead-letter reasons and
//! processing outcomes by fixed sets. Nothing read from a poison message becomes a label.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use webhook_core::metrics::{registered, registered_with_unit};

/// Labels of `webhook_consumer_events_stored_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// The event's source.
    pub source: String,
}

/// Labels of `webhook_consumer_retried_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// Which retry this is (1 = first).
    pub attempt: u32,
}

/// Labels of `webhook_consumer_dead_lettered_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `poison`, `retries_exhausted` or `too_large`.
    pub reason: &'static str,
}

/// Labels of `webhook_consumer_processed_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `processed` (a sale or refund applied), `ignored` (no processor for its type) or
    /// `failed` (its processor refused the body: sent down the retry ladder).
    pub outcome: &'static str,
}

/// Every metric the consumer exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// New rows committed, by source.
    pub events_stored: Family<SourceLabels, Counter>,
    /// Deliveries whose (source, delivery id) was already stored or appeared earlier in the
    /// same batch.
    pub duplicates: Counter,
    /// Of those, deliveries with another body than the stored one (which is kept).
    pub conflicting_duplicates: Counter,
    /// Messages sent down the retry ladder, by attempt.
    pub retried: Family<AttemptLabels, Counter>,
    /// Messages published to the dead-letter exchange, by reason.
    pub dead_lettered: Family<ReasonLabels, Counter>,
    /// Dead letters whose record in `dead_letters` could not be written (the message itself
    /// is safe in `{P}.dead`).
    pub dead_letter_records_failed: Counter,
    /// Events run through their processor, by outcome. `processed` and `ignored` count
    /// committed events (a redelivery of a stored event runs again, changing nothing; one
    /// whose stored body differs does not count, as nothing of it is applied); `failed`
    /// counts each failed attempt.
    pub processed: Family<OutcomeLabels, Counter>,
    /// Rejection records stored in `rejections`.
    pub rejections_stored: Counter,
    /// Rejection records that could not be read, dropped.
    pub rejections_unreadable: Counter,
    /// Deliveries per batch.
    pub batch_size: Histogram,
    /// Time of one insert transaction, from begin to commit.
    pub commit_seconds: Histogram,
    /// From `received-at` (the handler) to the commit of the row.
    pub ingest_to_store_seconds: Histogram,
    /// Messages ready in `{P}.events`, sampled every few seconds while connected.
    pub lag_messages: Gauge,
    /// 1 while the events queue answers the lag sampler; 0 after it has not answered for
    /// [`crate::worker::QUEUE_SILENT_AFTER`] (a quorum queue without a majority of its nodes).
    pub events_queue_answering: Gauge,
    /// 1 while every worker's consuming channel is open.
    pub broker_connected: Gauge,
    /// 1 while the last database operation succeeded.
    pub database_up: Gauge,
    /// The database's `max_allowed_packet`, read on every new connection: a larger event can
    /// never be stored.
    pub database_max_allowed_packet: Gauge,
    /// Bodies cleared by the retention purge (`RETENTION_DAYS`).
    pub bodies_purged: Counter,
    /// Settled rows deleted from `ledger_messages` a day after they were last seen.
    pub ledger_rows_pruned: Counter,
}

impl Metrics {
    /// Creates and registers every metric under the `webhook_consumer` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("webhook_consumer");
        let events_stored = registered(
            &mut registry,
            "events_stored",
            "New event rows committed, by source",
            Family::<SourceLabels, Counter>::default(),
        );
        let duplicates = registered(
            &mut registry,
            "duplicates",
            "Deliveries of an event that was already stored (or twice in one batch)",
            Counter::default(),
        );
        let conflicting_duplicates = registered(
            &mut registry,
            "conflicting_duplicates",
            "Deliveries with the source and delivery id of a stored event but another body (the first stored is kept)",
            Counter::default(),
        );
        let retried = registered(
            &mut registry,
            "retried",
            "Messages republished to a retry queue, by attempt",
            Family::<AttemptLabels, Counter>::default(),
        );
        let dead_lettered = registered(
            &mut registry,
            "dead_lettered",
            "Messages published to the dead-letter exchange, by reason",
            Family::<ReasonLabels, Counter>::default(),
        );
        let dead_letter_records_failed = registered(
            &mut registry,
            "dead_letter_records_failed",
            "Dead letters that could not be recorded in the dead_letters table (they are still in the dead-letter queue)",
            Counter::default(),
        );
        let processed = registered(
            &mut registry,
            "processed",
            "Events run through their processor, by outcome: processed, ignored or failed",
            Family::<OutcomeLabels, Counter>::default(),
        );
        let rejections_stored = registered(
            &mut registry,
            "rejections_stored",
            "Rejection records (requests the handler turned away) stored in the rejections table",
            Counter::default(),
        );
        let rejections_unreadable = registered(
            &mut registry,
            "rejections_unreadable",
            "Rejection records that could not be read, dropped",
            Counter::default(),
        );
        let batch_size = registered(
            &mut registry,
            "batch_size",
            "Deliveries per batch",
            Histogram::new(exponential_buckets(1.0, 2.0, 13)),
        );
        let commit_seconds = registered_with_unit(
            &mut registry,
            "commit",
            "Time of one insert transaction, begin to commit",
            Unit::Seconds,
            Histogram::new(exponential_buckets(0.000_5, 2.0, 16)),
        );
        let ingest_to_store_seconds = registered_with_unit(
            &mut registry,
            "ingest_to_store",
            "Time from the handler receiving an event to the commit of its row",
            Unit::Seconds,
            Histogram::new(exponential_buckets(0.001, 2.0, 20)),
        );
        let lag_messages = registered_with_unit(
            &mut registry,
            "lag",
            "Messages ready in the events queue, waiting for a consumer (sampled every 5 s)",
            Unit::Other("messages".to_owned()),
            Gauge::default(),
        );
        let events_queue_answering = registered(
            &mut registry,
            "events_queue_answering",
            "1 while the events queue answers; 0 when it has not for 8 s (a quorum queue that lost the majority of its nodes stores nothing until they return)",
            Gauge::default(),
        );
        let broker_connected = registered(
            &mut registry,
            "broker_connected",
            "1 while every worker's consuming channel to RabbitMQ is open",
            Gauge::default(),
        );
        let database_up = registered(
            &mut registry,
            "database_up",
            "1 while the last database operation succeeded",
            Gauge::default(),
        );
        let database_max_allowed_packet = registered_with_unit(
            &mut registry,
            "database_max_allowed_packet",
            "The database's max_allowed_packet: an event whose row is larger is dead-lettered as too_large",
            Unit::Bytes,
            Gauge::default(),
        );
        let bodies_purged = registered(
            &mut registry,
            "bodies_purged",
            "Event bodies cleared by the retention purge (RETENTION_DAYS); the rows stay",
            Counter::default(),
        );
        let ledger_rows_pruned = registered(
            &mut registry,
            "ledger_rows_pruned",
            "Settled rows deleted from ledger_messages a day after their message was last seen; the counts stay",
            Counter::default(),
        );
        Self {
            registry,
            events_stored,
            duplicates,
            conflicting_duplicates,
            retried,
            dead_lettered,
            dead_letter_records_failed,
            processed,
            rejections_stored,
            rejections_unreadable,
            batch_size,
            commit_seconds,
            ingest_to_store_seconds,
            lag_messages,
            events_queue_answering,
            broker_connected,
            database_up,
            database_max_allowed_packet,
            bodies_purged,
            ledger_rows_pruned,
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        webhook_core::metrics::encode(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_its_documented_name() {
        let metrics = Metrics::new();
        metrics
            .events_stored
            .get_or_create(&SourceLabels {
                source: "stripe".to_owned(),
            })
            .inc();
        metrics.retried.get_or_create(&AttemptLabels { attempt: 1 }).inc();
        metrics
            .dead_lettered
            .get_or_create(&ReasonLabels { reason: "poison" })
            .inc();
        for outcome in ["processed", "ignored", "failed"] {
            metrics.processed.get_or_create(&OutcomeLabels { outcome }).inc();
        }
        let text = metrics.encode();
        for name in [
            "webhook_consumer_events_stored_total{source=\"stripe\"} 1",
            "webhook_consumer_duplicates_total 0",
            "webhook_consumer_conflicting_duplicates_total 0",
            "webhook_consumer_retried_total{attempt=\"1\"} 1",
            "webhook_consumer_dead_lettered_total{reason=\"poison\"} 1",
            "webhook_consumer_dead_letter_records_failed_total 0",
            "webhook_consumer_processed_total{outcome=\"processed\"} 1",
            "webhook_consumer_processed_total{outcome=\"ignored\"} 1",
            "webhook_consumer_processed_total{outcome=\"failed\"} 1",
            "webhook_consumer_rejections_stored_total 0",
            "webhook_consumer_rejections_unreadable_total 0",
            "webhook_consumer_batch_size_count 0",
            "webhook_consumer_commit_seconds_count 0",
            "webhook_consumer_ingest_to_store_seconds_count 0",
            "webhook_consumer_lag_messages 0",
            "webhook_consumer_broker_connected 0",
            "webhook_consumer_database_up 0",
            "webhook_consumer_database_max_allowed_packet_bytes 0",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
