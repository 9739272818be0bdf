//! `POST /webhook` and `POST /webhooks/{source}`.
//!
//! The order of checks is the contract: unknown source (404), size (413, before and while
//! reading), body arrival (408), signature over the raw bytes (401), JSON or, for form
//! sources, form encoding (400), delivery id and event type (400), then publish and wait for
//! the broker's confirm (200, or 500 "not enqueued").

use std::time::Instant;

use actix_web::http::header::{CONTENT_LENGTH, HeaderMap};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use prometheus_client::metrics::gauge::Gauge;
use webhook_core::broker::Outgoing;
use webhook_core::envelope::{
    Envelope, MAX_DELIVERY_ID_BYTES, MAX_SOURCE_BYTES, body_delivery_id, check_delivery_id, check_event_type,
};
use webhook_core::payload::{self, BodyFormat, Form, Inspected};
use webhook_core::schemes::Scheme;
use webhook_core::signature::Headers;

use super::State;
use crate::error::IngestError;
use crate::metrics::{RequestLabels, UNKNOWN_SOURCE_LABEL, VerifiedLabels};
use crate::rejections::RejectionRecord;
use crate::sources::{DEFAULT_SOURCE, Locator, Source};
use webhook_core::envelope::format_time;
use webhook_core::rejection::bounded;

/// Headers that carry a delivery id, in order of preference.
const DELIVERY_ID_HEADERS: [&str; 3] = ["X-GitHub-Delivery", "webhook-id", "Idempotency-Key"];
/// The header that carries the event type.
const EVENT_TYPE_HEADER: &str = "X-GitHub-Event";
/// The event type when neither a header nor the body names one.
const UNKNOWN_EVENT_TYPE: &str = "unknown";

/// Slack's `type` for its endpoint handshake.
const SLACK_URL_VERIFICATION: &str = "url_verification";

/// A request that passed every check.
enum Accepted {
    /// Published and confirmed; the delivery id.
    Queued(String),
    /// A Slack `url_verification` handshake; the challenge to echo.
    Challenge(String),
}

/// A body read in its source's format.
enum Parsed {
    /// JSON: its top-level type fields, and the document when a locator points into it.
    Json {
        inspected: Inspected,
        document: Option<serde_json::Value>,
    },
    /// Form-encoded: its fields.
    Form(Form),
}

impl Parsed {
    /// The event type the body itself names: its `type`, else its `event`.
    fn event_type(&self) -> Option<&str> {
        match self {
            Self::Json { inspected, .. } => inspected.event_type(),
            Self::Form(form) => form.event_type(),
        }
    }
}

/// `POST /webhook`: the `default` source.
pub(crate) async fn default_source(request: HttpRequest, body: web::Payload, state: web::Data<State>) -> HttpResponse {
    handle(&request, DEFAULT_SOURCE, body, &state).await
}

/// `POST /webhooks/{source}`.
pub(crate) async fn named_source(
    request: HttpRequest,
    source: web::Path<String>,
    body: web::Payload,
    state: web::Data<State>,
) -> HttpResponse {
    handle(&request, &source, body, &state).await
}

async fn handle(request: &HttpRequest, source_name: &str, mut body: web::Payload, state: &State) -> HttpResponse {
    let received_at = Utc::now();
    let started = Instant::now();
    let _in_flight = InFlight::enter(&state.metrics.in_flight);
    let request_id = request_id(request.headers());
    let source = state.sources.get(source_name);
    let result = match source {
        None => Err(IngestError::UnknownSource),
        Some(source) => accept(request, source, &mut body, state, received_at).await,
    };
    let source_label = source.map_or(UNKNOWN_SOURCE_LABEL, |source| source.name.as_str());
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(Accepted::Challenge(challenge)) => {
            record(state, source_label, "challenge_answered", "");
            log::info!("answered url_verification challenge request_id={request_id} source={source_label}");
            HttpResponse::Ok().json(serde_json::json!({ "challenge": challenge }))
        }
        Ok(Accepted::Queued(delivery_id)) => {
            record(state, source_label, "queued", "");
            log::debug!(
                "queued request_id={request_id} source={source_label} delivery_id={delivery_id:?} latency_ms={elapsed_ms:.2}"
            );
            HttpResponse::Ok().json(serde_json::json!({ "status": "queued", "id": delivery_id }))
        }
        Err(error) => {
            let reason = error.reason();
            let shown_source = bounded(source_name, MAX_SOURCE_BYTES);
            if let IngestError::NotEnqueued(cause) = &error {
                record(state, source_label, "not_enqueued", reason);
                log::warn!(
                    "not enqueued request_id={request_id} source={shown_source:?} reason={reason} error=\"{cause}\" latency_ms={elapsed_ms:.2}"
                );
            } else {
                record(state, source_label, "rejected", reason);
                let headers = RequestHeaders(request.headers());
                let delivery_id = DELIVERY_ID_HEADERS
                    .iter()
                    .find_map(|name| headers.get(name))
                    .map(|id| bounded(id, MAX_DELIVERY_ID_BYTES));
                state.rejections.record(&RejectionRecord {
                    at: format_time(received_at),
                    // Unknown sources share one bucket; the name a stranger chose is kept
                    // aside, escaped, where nothing groups by it.
                    source: source_label.to_owned(),
                    claimed_source: source
                        .is_none()
                        .then(|| webhook_core::rejection::escaped(source_name, MAX_SOURCE_BYTES)),
                    reason: reason.to_owned(),
                    status: error.status_code().as_u16(),
                    request_id: request_id.clone(),
                    delivery_id,
                    remote_addr: request.peer_addr().map(|addr| addr.ip().to_string()),
                    content_length: declared_length(request.headers()).map(|length| length as u64),
                });
                log::info!(
                    "rejected request_id={request_id} source={shown_source:?} status={} reason={reason} latency_ms={elapsed_ms:.2}",
                    error.status_code().as_u16()
                );
            }
            error.error_response()
        }
    }
}

async fn accept(
    request: &HttpRequest,
    source: &Source,
    body: &mut web::Payload,
    state: &State,
    received_at: DateTime<Utc>,
) -> Result<Accepted, IngestError> {
    let limit = source
        .max_body_bytes
        .map_or(state.max_body_bytes, |own| own.min(state.max_body_bytes));
    let declared = declared_length(request.headers());
    if declared.is_some_and(|length| length > limit) {
        return Err(IngestError::TooLarge { limit });
    }
    let body = tokio::time::timeout(state.body_read_timeout, read_body(body, limit, declared))
        .await
        .map_err(|_| IngestError::BodyTimeout)??;
    state.metrics.body_bytes.observe(body.len() as f64);

    let headers = RequestHeaders(request.headers());
    let verified = source
        .scheme
        .verify(
            &source.secrets,
            &headers,
            &body,
            Utc::now().timestamp(),
            source.tolerance_secs,
        )
        .map_err(IngestError::Signature)?;

    let parsed = match source.body_format {
        BodyFormat::Json => {
            let inspected = payload::inspect(&body)?;
            if source.scheme == Scheme::Slack && inspected.r#type.as_deref() == Some(SLACK_URL_VERIFICATION) {
                // Slack's handshake when an Events API URL is configured: answered, not
                // stored, and only once the signature has been checked.
                let challenge = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|document| document.get("challenge")?.as_str().map(str::to_owned))
                    .ok_or_else(|| IngestError::BadHeader("url_verification without a challenge".to_owned()))?;
                return Ok(Accepted::Challenge(challenge));
            }
            // JSON pointers need the document; only sources configured with one pay for
            // parsing it.
            let document = [&source.delivery_id, &source.event_type]
                .iter()
                .any(|locator| matches!(locator, Some(Locator::Json(_))))
                .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
                .flatten();
            Parsed::Json { inspected, document }
        }
        BodyFormat::Form => Parsed::Form(Form::parse(&body)?),
    };
    let locate = |locator: &Option<Locator>| -> Option<String> {
        match (locator.as_ref()?, &parsed) {
            (Locator::Header(name), _) => headers.get(name).map(str::to_owned),
            (Locator::Json(pointer), Parsed::Json { document, .. }) => match document.as_ref()?.pointer(pointer)? {
                serde_json::Value::String(text) => Some(text.clone()),
                serde_json::Value::Number(number) => Some(number.to_string()),
                _ => None,
            },
            (Locator::Form(name), Parsed::Form(form)) => form.get(name).map(str::to_owned),
            (Locator::Json(_) | Locator::Form(_), _) => None,
        }
    };
    let delivery_id = match locate(&source.delivery_id).or_else(|| {
        DELIVERY_ID_HEADERS
            .iter()
            .find_map(|name| headers.get(name))
            .map(str::to_owned)
    }) {
        Some(id) => {
            check_delivery_id(&id).map_err(|why| IngestError::BadHeader(why.to_owned()))?;
            id
        }
        None => body_delivery_id(&body),
    };
    let event_type = locate(&source.event_type)
        .or_else(|| headers.get(EVENT_TYPE_HEADER).map(str::to_owned))
        .or_else(|| parsed.event_type().map(str::to_owned))
        .unwrap_or_else(|| UNKNOWN_EVENT_TYPE.to_owned());
    check_event_type(&event_type).map_err(|why| IngestError::BadHeader(why.to_owned()))?;

    let envelope = Envelope {
        source: source.name.clone(),
        delivery_id,
        event_type,
        received_at,
        retry_count: 0,
        body_format: source.body_format,
    };
    let routing_key = envelope.routing_key();
    let publishing = Instant::now();
    let message = Outgoing {
        exchange: &state.exchange,
        routing_key: &routing_key,
        body: &body,
    };
    state.publisher.publish(message, envelope.properties()).await?;
    state
        .metrics
        .enqueue_seconds
        .observe(publishing.elapsed().as_secs_f64());
    state
        .metrics
        .verified
        .get_or_create(&VerifiedLabels {
            source: source.name.clone(),
            secret_index: verified.secret_index,
        })
        .inc();
    Ok(Accepted::Queued(envelope.delivery_id))
}

/// Reads the whole body, failing as soon as it grows past `limit`, whatever Content-Length
/// said (a chunked body has none).
async fn read_body(payload: &mut web::Payload, limit: usize, declared: Option<usize>) -> Result<Bytes, IngestError> {
    let mut first: Option<Bytes> = None;
    let mut buffer: Option<BytesMut> = None;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| IngestError::BodyRead(error.to_string()))?;
        let so_far = buffer.as_ref().map_or(0, BytesMut::len) + first.as_ref().map_or(0, Bytes::len);
        if so_far + chunk.len() > limit {
            return Err(IngestError::TooLarge { limit });
        }
        // The common case is a body in one chunk: keep it without copying.
        match (&mut first, &mut buffer) {
            (None, None) => first = Some(chunk),
            (Some(_), None) => {
                let mut joined = BytesMut::with_capacity(declared.unwrap_or(0).max(so_far + chunk.len()).min(limit));
                joined.extend_from_slice(first.take().as_deref().unwrap_or_default());
                joined.extend_from_slice(&chunk);
                buffer = Some(joined);
            }
            (_, Some(joined)) => joined.extend_from_slice(&chunk),
        }
    }
    Ok(match (first, buffer) {
        (_, Some(joined)) => joined.freeze(),
        (Some(only), None) => only,
        (None, None) => Bytes::new(),
    })
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// The caller's `X-Request-Id` when it is short and printable, else a fresh one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("X-Request-Id")
        .and_then(|value| value.to_str().ok())
        .filter(|id| (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned)
}

fn record(state: &State, source: &str, outcome: &'static str, reason: &'static str) {
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            source: source.to_owned(),
            outcome,
            reason,
        })
        .inc();
}

struct RequestHeaders<'a>(&'a HeaderMap);

impl Headers for RequestHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name)?.to_str().ok()
    }
}

/// Counts a request as in flight until it is answered or the client goes away.
struct InFlight<'a>(&'a Gauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
