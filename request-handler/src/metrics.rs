//! The handler's Prometheus metrics, served at `GET /metrics`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use webhook_core::broker::PublisherCounters;
use webhook_core::metrics::{registered, registered_with_unit};

use crate::admission::AdmissionMetrics;
use crate::skew::ClockSkew;
use crate::sources::Sources;

/// The `source` label for a request whose source is not configured: the rejection log's
/// bucket name, which never clashes with a source name.
pub const UNKNOWN_SOURCE_LABEL: &str = webhook_core::rejection::UNKNOWN_SOURCE;

/// Labels of `webhook_handler_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// A configured source name, or [`UNKNOWN_SOURCE_LABEL`].
    pub source: String,
    /// `queued`, `spooled`, `filtered`, `rejected`, `not_enqueued` or `challenge_answered`.
    pub outcome: &'static str,
    /// Why, for `rejected`, `not_enqueued` and `spooled` (why the broker did not take it); the
    /// key that decided for `filtered`; empty for `queued`.
    pub reason: &'static str,
}

/// Labels of `webhook_handler_signatures_verified_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerifiedLabels {
    /// A configured source name.
    pub source: String,
    /// Which of the source's secrets matched (0 = first): when only the new one is used, the
    /// old one can be retired.
    pub secret_index: usize,
}

/// Labels of `webhook_handler_refused_http_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    /// One of [`webhook_core::service::REFUSED_HTTP_REASONS`].
    reason: &'static str,
}

/// `webhook_handler_refused_http_requests_total`: requests actix-web refused before routing,
/// as the process's logger counted them (see [`webhook_core::service::init`]).
#[derive(Debug)]
struct RefusedHttpRequests;

impl Collector for RefusedHttpRequests {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let counter = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "refused_http_requests",
            "Requests refused before routing: malformed request line or headers, head too large, head too slow",
            None,
            counter.metric_type(),
        )?;
        for (reason, count) in webhook_core::service::refused_http_requests() {
            ConstCounter::new(count).encode(family.encode_family(&RefusedLabels { reason })?)?;
        }
        Ok(())
    }
}

/// Every metric the handler exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by source, outcome and reason.
    pub requests: Family<RequestLabels, Counter>,
    /// Time from the start of the publish to the broker's confirm.
    pub enqueue_seconds: Histogram,
    /// Requests being handled right now.
    pub in_flight: Gauge,
    /// Sizes of bodies that were read completely.
    pub body_bytes: Histogram,
    /// 1 when the publishing connection is usable.
    pub broker_connected: Gauge,
    /// Queued requests by source and the index of the secret that verified them.
    pub verified: Family<VerifiedLabels, Counter>,
    /// Rejection records that could not be kept (too many at once, or no broker).
    pub rejections_dropped: Counter,
    /// Requests in work, and those let in over a limit.
    pub admission: AdmissionMetrics,
    /// Signed timestamps against this handler's clock.
    pub clock_skew: ClockSkew,
}

impl Metrics {
    /// Creates and registers every metric under the `webhook_handler` prefix.
    pub fn new() -> Self {
        Self::for_sources(&Sources::default())
    }

    /// The same, with the per-source metrics that are set at start (each timestamped
    /// source's tolerance).
    pub fn for_sources(sources: &Sources) -> Self {
        let mut registry = Registry::with_prefix("webhook_handler");
        let requests = registered(
            &mut registry,
            "requests",
            "Webhook requests by source, outcome and reason",
            Family::<RequestLabels, Counter>::default(),
        );
        let enqueue_seconds = registered_with_unit(
            &mut registry,
            "enqueue",
            "Time from publish to broker confirm",
            Unit::Seconds,
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16)),
        );
        let in_flight = registered(
            &mut registry,
            "in_flight_requests",
            "Webhook requests being handled",
            Gauge::default(),
        );
        let body_bytes = registered_with_unit(
            &mut registry,
            "body",
            "Sizes of received bodies",
            Unit::Bytes,
            Histogram::new(exponential_buckets(64.0, 4.0, 10)),
        );
        let broker_connected = registered(
            &mut registry,
            "broker_connected",
            "1 when the publishing connection to RabbitMQ is usable",
            Gauge::default(),
        );
        let verified = registered(
            &mut registry,
            "signatures_verified",
            "Queued requests by source and the index of the secret that verified them",
            Family::<VerifiedLabels, Counter>::default(),
        );
        let rejections_dropped = registered(
            &mut registry,
            "rejections_dropped",
            "Rejection records not written to the rejection log",
            Counter::default(),
        );
        registry.register_collector(Box::new(RefusedHttpRequests));
        let admission = AdmissionMetrics::register(&mut registry);
        let clock_skew = ClockSkew::register(&mut registry, sources);
        Self {
            admission,
            clock_skew,
            rejections_dropped,
            verified,
            registry,
            requests,
            enqueue_seconds,
            in_flight,
            body_bytes,
            broker_connected,
        }
    }

    /// Registers the publisher's own counters: nacks, replaced channels, reconnects, workers'
    /// own connections.
    pub fn register_publisher(&mut self, counters: &PublisherCounters) {
        self.registry
            .register("broker_nacks", "Publishes the broker nacked", counters.nacks.clone());
        self.registry.register(
            "broker_channels_replaced",
            "Publishing channels replaced after the broker nacked on them",
            counters.channels_replaced.clone(),
        );
        self.registry.register(
            "broker_reconnects",
            "Publishing connections opened after the first",
            counters.reconnects.clone(),
        );
        self.registry.register(
            "broker_returns_misattributed",
            "Returned messages the shared connection's client gave to another publish's confirm",
            counters.returns_misattributed.clone(),
        );
        self.registry.register(
            "broker_worker_publishes",
            "Publishes sent on HTTP workers' own connections",
            counters.worker_publishes.clone(),
        );
        self.registry.register(
            "broker_worker_connections",
            "HTTP workers' own publishing connections now up",
            counters.worker_connections.clone(),
        );
    }

    /// Registers the spool's and the quarantine's metrics, for those that there are.
    pub fn register_spool(
        &mut self,
        spool: Option<&crate::spool::Spool>,
        quarantine: Option<&crate::quarantine::Quarantine>,
    ) {
        if let Some(spool) = spool {
            spool.register_metrics(&mut self.registry);
        }
        if let Some(quarantine) = quarantine {
            quarantine.register_metrics(&mut self.registry);
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
