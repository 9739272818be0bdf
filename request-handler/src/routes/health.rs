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
///
/// While a source spools and the spool can take any request, it stays 200 without the broker,
/// with `"broker": "spooling"`: the handler still accepts (the sources that do not spool get
/// 500 meanwhile). With a spool, `"spooled"` says how many messages wait in it.
pub(crate) async fn readyz(state: web::Data<State>) -> HttpResponse {
    let not_ready = state.publisher.not_ready();
    let mut answer = match (not_ready, state.spool.as_deref()) {
        (None, _) => serde_json::json!({ "status": "ready", "broker": "connected" }),
        (Some(_), Some(spool)) if spool.any_source_spools() && spool.accepts() => {
            serde_json::json!({ "status": "ready", "broker": "spooling" })
        }
        (Some(why), _) => serde_json::json!({ "status": "not ready", "broker": why.label() }),
    };
    if let Some(spool) = state.spool.as_deref() {
        answer["spooled"] = spool.messages().into();
    }
    if answer["status"] == "ready" {
        HttpResponse::Ok().json(answer)
    } else {
        HttpResponse::ServiceUnavailable().json(answer)
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
