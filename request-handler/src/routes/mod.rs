//! The HTTP surface: ingest endpoints, health and metrics.

mod health;
pub(crate) mod ingest;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use webhook_core::broker::Publisher;

use crate::admission::Admission;
use crate::metrics::Metrics;
use crate::quarantine::Quarantine;
use crate::rejections::RejectionLog;
use crate::sources::Sources;
use crate::spool::Spool;

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) sources: Arc<Sources>,
    pub(crate) publisher: Publisher,
    pub(crate) exchange: String,
    pub(crate) max_body_bytes: usize,
    pub(crate) body_read_timeout: Duration,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) rejections: RejectionLog,
    /// Permits for checking large bodies off the HTTP workers, one per worker.
    pub(crate) large_checks: tokio::sync::Semaphore,
    /// Where spooling sources' messages go while the broker does not confirm (`SPOOL_DIR`).
    pub(crate) spool: Option<Arc<Spool>>,
    /// Where quarantining sources' requests with a signature of no secret go (`SPOOL_DIR`).
    pub(crate) quarantine: Option<Quarantine>,
    /// Rate limits and the cap on requests in work.
    pub(crate) admission: Admission,
    /// The peers whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`).
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
}

/// Registers every route.
pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/webhook").post(ingest::default_source))
        .service(web::resource("/webhooks/{source}").post(ingest::named_source))
        .service(web::resource("/healthz").get(webhook_core::http::healthz))
        .service(web::resource("/readyz").get(health::readyz))
        .service(web::resource("/metrics").get(health::metrics));
}
