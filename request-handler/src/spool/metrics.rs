//! The spool's metrics: how much it holds (read from its totals when scraped) and what it did.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::store::{Depth, StoreCounters};

/// Labels of the spool's per-source counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SourceLabels {
    /// A configured source name.
    pub(crate) source: String,
}

/// What the spool counts.
#[derive(Debug, Clone)]
pub(crate) struct SpoolMetrics {
    /// Requests answered 200 "spooled", by source.
    pub(crate) spooled: Family<SourceLabels, Counter>,
    /// Spooled messages the broker confirmed and that left the spool.
    pub(crate) forwarded: Counter,
    /// Records that could not be read back (left in the spool, logged).
    pub(crate) unreadable: Counter,
    /// Commits and append latency, counted by the spool's thread.
    pub(crate) store: StoreCounters,
}

impl Default for SpoolMetrics {
    fn default() -> Self {
        Self {
            spooled: Family::default(),
            forwarded: Counter::default(),
            unreadable: Counter::default(),
            store: StoreCounters {
                commits: Counter::default(),
                append_seconds: Some(Histogram::new(exponential_buckets(0.000_125, 2.0, 16))),
            },
        }
    }
}

impl SpoolMetrics {
    /// Registers every metric of the spool, `depth` read at each scrape.
    pub(crate) fn register(&self, registry: &mut Registry, depth: Arc<Depth>) {
        registry.register(
            "spool_spooled",
            "Requests answered 200 after their message was written to the spool, by source",
            self.spooled.clone(),
        );
        registry.register(
            "spool_forwarded",
            "Spooled messages the broker confirmed, removed from the spool",
            self.forwarded.clone(),
        );
        registry.register(
            "spool_unreadable",
            "Spool records that could not be read back (left in the spool)",
            self.unreadable.clone(),
        );
        registry.register(
            "spool_commits",
            "Spool write transactions committed, each with one fsync",
            self.store.commits.clone(),
        );
        if let Some(histogram) = &self.store.append_seconds {
            registry.register_with_unit(
                "spool_append",
                "Time from a message reaching the spool's writer to its commit",
                Unit::Seconds,
                histogram.clone(),
            );
        }
        registry.register_collector(Box::new(DepthCollector(depth)));
    }
}

/// `spool_messages`, `spool_bytes` and `spool_oldest_age_seconds`, as of the scrape.
#[derive(Debug)]
struct DepthCollector(Arc<Depth>);

impl Collector for DepthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let messages = ConstGauge::new(i64::try_from(self.0.messages()).unwrap_or(i64::MAX));
        messages.encode(encoder.encode_descriptor(
            "spool_messages",
            "Messages in the spool, waiting for the broker",
            None,
            messages.metric_type(),
        )?)?;
        let bytes = ConstGauge::new(i64::try_from(self.0.bytes()).unwrap_or(i64::MAX));
        bytes.encode(encoder.encode_descriptor(
            "spool_bytes",
            "Bytes of the messages in the spool (bounded by SPOOL_MAX_BYTES)",
            None,
            bytes.metric_type(),
        )?)?;
        let age = self.0.oldest().map_or(0.0, |oldest| {
            (chrono::Utc::now() - oldest).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
        });
        let age = ConstGauge::new(age.max(0.0));
        age.encode(encoder.encode_descriptor(
            "spool_oldest_age_seconds",
            "How long the oldest message in the spool has waited (0 when it is empty)",
            None,
            age.metric_type(),
        )?)?;
        Ok(())
    }
}
