//! Liveness, readiness and metrics.

use actix_web::{HttpResponse, web};

use super::State;

/// `GET /healthz`: the process is up and serving.
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 only while the broker connection and its confirm channels are usable
/// (and the broker is not blocking publishers); 503 otherwise, so a load balancer sends
/// vendors elsewhere instead of letting them collect 500s.
pub(crate) async fn readyz(state: web::Data<State>) -> HttpResponse {
    if state.publisher.is_ready() {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready", "broker": "connected" }))
    } else {
        let broker = if state.publisher.is_blocked() {
            "blocked"
        } else {
            "disconnected"
        };
        HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "not ready", "broker": broker }))
    }
}

/// `GET /metrics`: Prometheus (OpenMetrics) text.
pub(crate) async fn metrics(state: web::Data<State>) -> HttpResponse {
    state
        .metrics
        .broker_connected
        .set(i64::from(state.publisher.is_ready()));
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}
