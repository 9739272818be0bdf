//! Liveness, readiness and metrics.

use actix_web::{HttpResponse, web};
use webhook_core::broker::NotReady;
#[cfg(doc)]
use webhook_core::broker::{FAILURES_BEFORE_NOT_READY, NOT_READY_FOR};
use webhook_core::http;

use super::State;

/// `GET /readyz`: 200 only while the broker connection and its confirm channels are usable,
/// the broker is not blocking publishers, and publishes are being confirmed; 503 otherwise
/// (`"broker"` says which), so a load balancer sends vendors elsewhere instead of letting them
/// collect 500s. After [`FAILURES_BEFORE_NOT_READY`] unconfirmed publishes in a row it stays
/// 503 until a publish is confirmed, or for [`NOT_READY_FOR`] after the last failure when no
/// traffic comes to prove it either way.
///
/// While a source spools and the spool can take any request, it stays 200 without the broker,
/// with `"broker": "spooling"`: the handler still accepts (the sources that do not spool get
/// 500 meanwhile). With a spool, `"spooled"` says how many messages wait in it.
pub(crate) async fn readyz(state: web::Data<State>) -> HttpResponse {
    let (ready, broker) = match (state.publisher.not_ready(), state.spool.as_deref()) {
        (None, _) => (true, "connected"),
        (Some(_), Some(spool)) if spool.any_source_spools() && spool.accepts() => (true, "spooling"),
        (Some(why), _) => (false, why.label()),
    };
    let mut details = serde_json::Map::new();
    details.insert("broker".to_owned(), broker.into());
    if let Some(spool) = state.spool.as_deref() {
        details.insert("spooled".to_owned(), spool.messages().into());
    }
    http::readiness(ready, details)
}

/// `GET /metrics`: Prometheus (OpenMetrics) text.
pub(crate) async fn metrics(state: web::Data<State>) -> HttpResponse {
    state.metrics.broker_connected.set(i64::from(!matches!(
        state.publisher.not_ready(),
        Some(NotReady::Disconnected | NotReady::Blocked)
    )));
    http::metrics(state.metrics.encode())
}
