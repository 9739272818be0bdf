//! Liveness, readiness and metrics.

use actix_web::{HttpResponse, web};
use webhook_core::broker::NotReady;
#[cfg(doc)]
use webhook_core::broker::{FAILURES_BEFORE_NOT_READY, NOT_READY_FOR};

use super::State;

/// `GET /healthz`: the process is up and serving.
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 only while the broker connection and its confirm channels are usable,
/// the broker is not blocking publishers, and publishes are being confirmed; 503 otherwise
/// (`"broker"` says which), so a load balancer sends vendors elsewhere instead of letting them
/// collect 500s. After [`FAILURES_BEFORE_NOT_READY`] unconfirmed publishes in a row it stays
/// 503 until a publish is confirmed, or for [`NOT_READY_FOR`] after the last failure when no
/// traffic comes to prove it either way.
pub(crate) async fn readyz(state: web::Data<State>) -> HttpResponse {
    match state.publisher.not_ready() {
        None => HttpResponse::Ok().json(serde_json::json!({ "status": "ready", "broker": "connected" })),
        Some(why) => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "not ready", "broker": why.label() }))
        }
    }
}

/// `GET /metrics`: Prometheus (OpenMetrics) text.
pub(crate) async fn metrics(state: web::Data<State>) -> HttpResponse {
    state.metrics.broker_connected.set(i64::from(!matches!(
        state.publisher.not_ready(),
        Some(NotReady::Disconnected | NotReady::Blocked)
    )));
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}
