//! `POST /webhook` and `POST /webhooks/{source}`.
//!
//! The order of checks is the contract: unknown source (404), the sender's address for a
//! source with `allow_ips` (403), admission before the body is read (429 over the source's
//! rate limit, 503 past `MAX_IN_FLIGHT`), size (413, before and while reading), body arrival
//! (408), signature over the raw bytes (401), JSON or, for form sources, form encoding (400), a
//! vendor's handshake (answered, not stored), delivery id and event type (400), the source's
//! event-type filter (200 "filtered", not published), then publish and wait for the broker's
//! confirm (200, or 500 "not enqueued"). A vendor that wants another answer gets it
//! ([`webhook_core::signature::Answers`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::{CONTENT_LENGTH, HeaderMap};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use prometheus_client::metrics::gauge::Gauge;
use webhook_core::broker::{LocalPublisher, Outgoing};
use webhook_core::config::Secret;
use webhook_core::envelope::{Envelope, MAX_DELIVERY_ID_BYTES, MAX_SOURCE_BYTES, format_time};
use webhook_core::payload::{self, BodyFormat, Form, Parsed};
use webhook_core::rejection::bounded;
use webhook_core::signature::{Answer, Challenge, Headers, Request, Verified};

use super::State;
use crate::admission::filtered_by;
use crate::error::IngestError;
use crate::identify::{DELIVERY_ID_HEADERS, Identified, identify};
use crate::metrics::{RequestLabels, UNKNOWN_SOURCE_LABEL, VerifiedLabels};
use crate::rejections::RejectionRecord;
use crate::sources::{DEFAULT_SOURCE, Identity, Locator, Source};
use crate::spool::{self, Delivered};

/// Bodies from this size on are checked (signature, JSON, body hash) on a blocking thread, at
/// most one per HTTP worker at a time, so that a large body, or many, cannot hold a worker's
/// other connections up. Measured on the benchmark machine: HMAC-SHA256 costs about 2 µs per
/// KiB and secret, reading the JSON about 0.7 µs per KiB, a hand-off to a blocking thread
/// about 45 µs; at 64 KiB the hand-off is under a fifth of the work, and below it a request
/// holds its worker for a few hundred microseconds at most.
const LARGE_BODY_BYTES: usize = 64 * 1024;

/// What checking a request's body found.
pub(crate) enum Checked {
    /// A vendor's handshake (its name) and the answer it wants.
    Handshake(&'static str, Answer),
    /// An event to publish.
    Event(Identified),
}

/// A request that passed every check.
enum Accepted {
    /// Published and confirmed; the delivery id.
    Queued(String),
    /// Not confirmed in time, and written to the spool (durable); the delivery id, and why the
    /// broker did not take it.
    Spooled(String, &'static str),
    /// Verified, but of an event type the source does not keep: not published. The delivery
    /// id and the key that dropped it.
    Filtered(String, &'static str),
    /// A vendor's handshake (Slack's `url_verification`, Zoom's `endpoint.url_validation`, …):
    /// its name and the answer it wants.
    Handshake(&'static str, Answer),
}

/// The body of a 200 for an event: `{"status": …, "id": the delivery id}`.
#[derive(serde::Serialize)]
struct Answered<'a> {
    status: &'static str,
    id: &'a str,
}

/// What the vendor signed besides the headers and the body.
pub(crate) struct Signing<'a> {
    pub(crate) method: &'a str,
    pub(crate) url: Option<&'a str>,
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
    // Made only where it is written (a log line that is on, a rejection record): a fresh id
    // costs a random draw.
    let request_id = || request_id_of(request.headers());
    let source = state.sources.get(source_name);
    let result = match source {
        None => Err(IngestError::UnknownSource),
        Some(source) => accept(request, source, &mut body, state, received_at).await,
    };
    let source_label = source.map_or(UNKNOWN_SOURCE_LABEL, |source| source.name.as_str());
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let answers = source.map(|source| source.scheme.answers()).unwrap_or_default();
    match result {
        Ok(Accepted::Handshake(name, answer)) => {
            record(state, source_label, "challenge_answered", "");
            log::info!(
                "answered {name} handshake request_id={} source={source_label}",
                request_id()
            );
            let mut response = HttpResponse::Ok();
            if let Some(content_type) = answer.content_type {
                response.content_type(content_type);
            }
            response.body(answer.body)
        }
        Ok(Accepted::Queued(delivery_id)) => {
            record(state, source_label, "queued", "");
            log::debug!(
                "queued request_id={} source={source_label} delivery_id={delivery_id:?} latency_ms={elapsed_ms:.2}",
                request_id()
            );
            match answers.accepted {
                Some((content_type, body)) => HttpResponse::Ok().content_type(content_type).body(body),
                None => HttpResponse::Ok().json(Answered {
                    status: "queued",
                    id: &delivery_id,
                }),
            }
        }
        Ok(Accepted::Spooled(delivery_id, reason)) => {
            record(state, source_label, "spooled", reason);
            log::debug!(
                "spooled request_id={} source={source_label} delivery_id={delivery_id:?} reason={reason} latency_ms={elapsed_ms:.2}",
                request_id()
            );
            HttpResponse::Ok().json(Answered {
                status: "spooled",
                id: &delivery_id,
            })
        }
        Ok(Accepted::Filtered(delivery_id, key)) => {
            record(state, source_label, "filtered", key);
            log::debug!(
                "filtered request_id={} source={source_label} delivery_id={delivery_id:?} by={key} latency_ms={elapsed_ms:.2}",
                request_id()
            );
            HttpResponse::Ok().json(Answered {
                status: "filtered",
                id: &delivery_id,
            })
        }
        Err(error) => {
            let request_id = request_id();
            let reason = error.reason();
            let shown_source = bounded(source_name, MAX_SOURCE_BYTES);
            if let Some(cause) = error.not_enqueued() {
                record(state, source_label, "not_enqueued", reason);
                log::warn!(
                    "not enqueued request_id={request_id} source={shown_source:?} reason={reason} error=\"{cause}\" latency_ms={elapsed_ms:.2}"
                );
            } else if let IngestError::Internal(cause) = &error {
                record(state, source_label, "not_enqueued", reason);
                log::error!(
                    "not enqueued request_id={request_id} source={shown_source:?} reason={reason} error={cause:?} latency_ms={elapsed_ms:.2}"
                );
            } else {
                record(state, source_label, "rejected", reason);
                let delivery_id = claimed_delivery_id(source.map(AsRef::as_ref), request.headers())
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
                    "rejected request_id={request_id} source={shown_source:?} status={} reason={reason} error={:?} latency_ms={elapsed_ms:.2}",
                    error.status_code().as_u16(),
                    error.to_string()
                );
            }
            if answers.empty_unauthorized && matches!(error, IngestError::Signature(_)) {
                HttpResponse::Unauthorized().finish()
            } else {
                error.error_response()
            }
        }
    }
}

async fn accept(
    request: &HttpRequest,
    source: &Arc<Source>,
    body: &mut web::Payload,
    state: &State,
    received_at: DateTime<Utc>,
) -> Result<Accepted, IngestError> {
    if !source.endpoint.allow_ips.is_empty() {
        let client = request
            .peer_addr()
            .map(|peer| client_address(peer.ip(), request.headers(), &state.trusted_proxies));
        if !client.is_some_and(|address| source.endpoint.allows(address)) {
            return Err(IngestError::IpNotAllowed);
        }
    }
    state.admission.admit(source)?;
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
    let _in_work = state.admission.in_work();

    let now = Utc::now().timestamp();
    let url = source.signed_url(request.query_string());
    let method = request.method().as_str();
    let signing = Signing {
        method,
        url: url.as_deref(),
    };
    let checked = if body.len() < LARGE_BODY_BYTES {
        check(source, &RequestHeaders(request.headers()), &body, &signing, now)
    } else {
        let _permit = state
            .large_checks
            .acquire()
            .await
            .map_err(|error| IngestError::Internal(error.to_string()))?;
        let (source, headers, body) = (Arc::clone(source), request.headers().clone(), body.clone());
        let method = method.to_owned();
        tokio::task::spawn_blocking(move || {
            let signing = Signing {
                method: &method,
                url: url.as_deref(),
            };
            check(&source, &RequestHeaders(&headers), &body, &signing, now)
        })
        .await
        .map_err(|error| IngestError::Internal(format!("checking the request failed: {error}")))?
    };
    if let (Err(IngestError::Signature(rejection)), Some(quarantine)) = (&checked, &state.quarantine) {
        quarantine.offer(source, *rejection, request.headers(), &body, received_at);
    }
    state
        .metrics
        .clock_skew
        .observe(source, &RequestHeaders(request.headers()), now);
    let checked = checked?;
    state.admission.spend(source)?;
    let (verified, identity) = match checked {
        (_, Checked::Handshake(name, answer)) => return Ok(Accepted::Handshake(name, answer)),
        (verified, Checked::Event(identity)) => (verified, identity),
    };
    if let Some(key) = filtered_by(source, &identity.event_type) {
        return Ok(Accepted::Filtered(identity.delivery_id.into_string(), key));
    }

    let envelope = Envelope::new(
        &source.name,
        &identity.delivery_id,
        &identity.event_type,
        received_at,
        source.body_format,
    );
    let routing_key = envelope.routing_key();
    let publishing = Instant::now();
    let message = Outgoing {
        exchange: &state.exchange,
        routing_key: &routing_key,
        body: &body,
    };
    // This worker's publisher (startup.rs installs one per worker), borrowed: a clone would
    // touch the shared publisher's reference count, which every worker shares, on every request.
    let shared_only;
    let publisher = match request.app_data::<LocalPublisher>() {
        Some(publisher) => publisher,
        None => {
            shared_only = LocalPublisher::shared_only(state.publisher.clone());
            &shared_only
        }
    };
    let delivered = spool::deliver(publisher, state.spool.as_deref(), source, message, &envelope).await?;
    if let Delivered::Spooled(cause) = delivered {
        return Ok(Accepted::Spooled(envelope.delivery_id, cause.label()));
    }
    state
        .metrics
        .enqueue_seconds
        .observe(publishing.elapsed().as_secs_f64());
    state
        .metrics
        .verified
        .get_or_create(&VerifiedLabels {
            source: source.name.to_string(),
            secret_index: verified.secret_index,
        })
        .inc();
    Ok(Accepted::Queued(envelope.delivery_id))
}

/// The checks that read the whole body, in the contract's order: the signature over the raw
/// bytes (401), then [`examine`]. The body is read once, for all of them.
pub(crate) fn check(
    source: &Source,
    headers: &(impl Headers + Sized),
    body: &[u8],
    signing: &Signing<'_>,
    now: i64,
) -> Result<(Verified, Checked), IngestError> {
    let request = Request {
        headers,
        body,
        method: signing.method,
        url: signing.url,
        webhook_id: source.endpoint.webhook_id.as_deref(),
        now,
        tolerance: source.tolerance_secs,
    };
    let verified = source
        .scheme
        .verify_request(&source.keys, &request)
        .map_err(IngestError::Signature)?;
    let secret = source.keys.secrets.get(verified.secret_index);
    Ok((verified, examine(source, headers, body, secret)?))
}

/// The checks after the signature: the body in its source's format (400), a handshake, then
/// the delivery id and event type (400). `secret` is the one that verified the signature, for
/// handshakes whose answer is keyed.
pub(crate) fn examine(
    source: &Source,
    headers: &(impl Headers + Sized),
    body: &[u8],
    secret: Option<&Secret>,
) -> Result<Checked, IngestError> {
    let parsed = match source.body_format {
        BodyFormat::Json => Parsed::Json(payload::read_json(body, &source.json_pointers())?),
        BodyFormat::Form => Parsed::Form(Form::parse(body)?),
    };
    if let Some(handshake) = source.scheme.handshake() {
        let challenge = Challenge {
            headers,
            json: match &parsed {
                Parsed::Json(json) => Some(json),
                Parsed::Form(_) => None,
            },
            secret,
        };
        if let Some(answer) = (handshake.answer)(&challenge) {
            return answer
                .map(|answer| Checked::Handshake(handshake.name, answer))
                .map_err(IngestError::BadRequest);
        }
    }
    let identity = identify(source, headers, &parsed, body)?;
    Ok(Checked::Event(identity))
}

/// The address a request comes from: the peer, or, when the peer is a trusted proxy, the
/// last address of `X-Forwarded-For` that is not one (each proxy appends the one it saw). A
/// header that cannot be read leaves the peer.
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |address: &IpAddr| {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(*address, IpAddr::V4),
            v4 => *v4,
        };
        trusted.iter().any(|network| network.contains(&address))
    };
    if !is_trusted(&peer) {
        return peer;
    }
    let mut forwarded = Vec::new();
    for value in headers.get_all("X-Forwarded-For") {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for entry in text.split(',') {
            match entry.trim().parse::<IpAddr>() {
                Ok(address) => forwarded.push(address),
                Err(_) => return peer,
            }
        }
    }
    let mut client = peer;
    for address in forwarded.into_iter().rev() {
        client = address;
        if !is_trusted(&address) {
            break;
        }
    }
    client
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

/// The delivery id a rejected request claims, for its record: the source's id header, else
/// the first of the headers ids are commonly sent in.
fn claimed_delivery_id<'h>(source: Option<&Source>, headers: &'h HeaderMap) -> Option<&'h str> {
    let text = |name: &str| std::str::from_utf8(headers.get(name)?.as_bytes()).ok();
    match source.map(|source| &source.delivery_id) {
        Some(Identity::At(Locator::Header(name))) => text(name),
        _ => DELIVERY_ID_HEADERS.iter().find_map(|name| text(name)),
    }
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// The caller's `X-Request-Id` when it is short and printable, else a fresh one.
fn request_id_of(headers: &HeaderMap) -> String {
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
    fn raw(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(|value| value.as_bytes())
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
