//! Readiness as the worker sees it, and the HTTP surface: `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use actix_web::{HttpResponse, web};
use webhook_core::http;

use crate::metrics::Metrics;

/// What the worker reports about its two dependencies; mirrored in the gauges.
#[derive(Debug)]
pub(crate) struct Health {
    /// Workers whose consuming channel is open.
    channels_open: AtomicUsize,
    /// Workers in all.
    workers: usize,
    database_ok: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Health {
    /// Starts with every worker's channel closed and the database as `database_ok` says (the
    /// migrations just ran, or not).
    pub(crate) fn new(metrics: Arc<Metrics>, database_ok: bool, workers: usize) -> Self {
        let health = Self {
            channels_open: AtomicUsize::new(0),
            workers: workers.max(1),
            database_ok: AtomicBool::new(database_ok),
            metrics,
        };
        health.metrics.database_up.set(i64::from(database_ok));
        health
    }

    /// A worker's channel opened (`true`) or closed again (`false`); each worker reports the
    /// two in turn.
    pub(crate) fn set_channel_open(&self, open: bool) {
        let now = if open {
            self.channels_open.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            self.channels_open.fetch_sub(1, Ordering::SeqCst).saturating_sub(1)
        };
        self.metrics.broker_connected.set(i64::from(now >= self.workers));
    }

    /// Records the outcome of a database operation; returns the previous state.
    pub(crate) fn set_database_ok(&self, ok: bool) -> bool {
        self.metrics.database_up.set(i64::from(ok));
        self.database_ok.swap(ok, Ordering::SeqCst)
    }

    /// Whether every worker is consuming.
    pub(crate) fn channel_open(&self) -> bool {
        self.channels_open.load(Ordering::SeqCst) >= self.workers
    }

    pub(crate) fn database_ok(&self) -> bool {
        self.database_ok.load(Ordering::SeqCst)
    }
}

/// What the HTTP handlers share.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) health: Arc<Health>,
    pub(crate) metrics: Arc<Metrics>,
}

/// Registers the routes.
pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/healthz").get(http::healthz))
        .service(web::resource("/readyz").get(readyz))
        .service(web::resource("/metrics").get(metrics));
}

/// `GET /readyz`: 200 only while the consuming channel is open and the last database operation
/// succeeded; otherwise 503 naming which is not.
async fn readyz(state: web::Data<State>) -> HttpResponse {
    let broker = state.health.channel_open();
    let database = state.health.database_ok();
    let mut details = serde_json::Map::new();
    details.insert(
        "broker".to_owned(),
        (if broker { "connected" } else { "disconnected" }).into(),
    );
    details.insert("database".to_owned(), (if database { "up" } else { "down" }).into());
    http::readiness(broker && database, details)
}

/// `GET /metrics`: Prometheus (OpenMetrics) text.
async fn metrics(state: web::Data<State>) -> HttpResponse {
    http::metrics(state.metrics.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_counts_as_connected_only_while_every_worker_consumes() {
        let metrics = Arc::new(Metrics::new());
        let health = Health::new(Arc::clone(&metrics), true, 2);
        assert!(!health.channel_open());
        health.set_channel_open(true);
        assert!(!health.channel_open());
        assert_eq!(metrics.broker_connected.get(), 0);
        health.set_channel_open(true);
        assert!(health.channel_open());
        assert_eq!(metrics.broker_connected.get(), 1);
        health.set_channel_open(false);
        assert!(!health.channel_open());
        assert_eq!(metrics.broker_connected.get(), 0);
    }
}
