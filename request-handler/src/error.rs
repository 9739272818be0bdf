//! Every way an ingest request can end other than "queued", and the status each one gets.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpResponse, ResponseError};
use webhook_core::broker::PublishError;
use webhook_core::payload::{NotForm, NotJson};
use webhook_core::signature::Rejection;

use crate::admission::{Refused, SHED_RETRY_AFTER};
use crate::identify::Unidentified;
use crate::spool::SpoolError;

/// Why a webhook was not queued.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No source of that name is configured.
    #[error("unknown source")]
    UnknownSource,
    /// The source admits other addresses only (`allow_ips`).
    #[error("address not allowed")]
    IpNotAllowed,
    /// The body is larger than `MAX_BODY_BYTES`.
    #[error("body larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body did not arrive within `BODY_READ_TIMEOUT_MS`.
    #[error("body not received in time")]
    BodyTimeout,
    /// The connection failed while the body was being read.
    #[error("body could not be read: {0}")]
    BodyRead(String),
    /// Missing or wrong signature. The reason is logged and counted, never sent back.
    #[error("invalid signature")]
    Signature(Rejection),
    /// The delivery id is missing, or the delivery id or event type cannot be used.
    #[error("{0}")]
    Unidentified(#[from] Unidentified),
    /// A request the vendor's scheme defines that is not what it should be (a handshake
    /// without its challenge).
    #[error("{0}")]
    BadRequest(String),
    /// The body is not one JSON document.
    #[error("{0}")]
    NotJson(#[from] NotJson),
    /// The body of a form source is not `application/x-www-form-urlencoded`.
    #[error("{0}")]
    NotForm(#[from] NotForm),
    /// The broker did not confirm the message.
    #[error("not enqueued")]
    NotEnqueued(#[from] PublishError),
    /// The broker did not confirm the message and the spool could not take it either.
    #[error("not enqueued")]
    NotSpooled(PublishError, SpoolError),
    /// The handler failed to check the request (a bug; logged with its cause).
    #[error("internal error")]
    Internal(String),
    /// The source is over its rate limit; try again after the duration.
    #[error("rate limit of this source exceeded")]
    RateLimited(Duration),
    /// `MAX_IN_FLIGHT` requests are in work; try again after the duration.
    #[error("too many requests in flight")]
    Overloaded(Duration),
}

impl From<Refused> for IngestError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::RateLimited(wait) => Self::RateLimited(wait),
            Refused::Overloaded => Self::Overloaded(SHED_RETRY_AFTER),
        }
    }
}

impl IngestError {
    /// A bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownSource => "unknown_source",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::TooLarge { .. } => "too_large",
            Self::BodyTimeout => "body_timeout",
            Self::BodyRead(_) => "body_read_error",
            Self::Signature(rejection) => rejection.label(),
            Self::Unidentified(why) => why.label(),
            Self::BadRequest(_) => "bad_request",
            Self::NotJson(error) if error.is_limit() => "json_limit",
            Self::NotJson(_) => "not_json",
            Self::NotForm(_) => "not_form",
            Self::NotEnqueued(error) => error.label(),
            Self::NotSpooled(_, why) => why.label(),
            Self::Internal(_) => "internal_error",
            Self::RateLimited(_) => "rate_limited",
            Self::Overloaded(_) => "overloaded",
        }
    }
}

impl IngestError {
    /// Why the message was not enqueued, for the log: the broker's failure, and the spool's
    /// when it could not take the message either. `None` for a request that was refused.
    pub fn not_enqueued(&self) -> Option<String> {
        match self {
            Self::NotEnqueued(cause) => Some(cause.to_string()),
            Self::NotSpooled(cause, why) => Some(format!("{cause}; not spooled either: {why}")),
            _ => None,
        }
    }
}

impl ResponseError for IngestError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::UnknownSource => StatusCode::NOT_FOUND,
            Self::IpNotAllowed => StatusCode::FORBIDDEN,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::BodyRead(_) | Self::Unidentified(_) | Self::BadRequest(_) | Self::NotJson(_) | Self::NotForm(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Signature(_) => StatusCode::UNAUTHORIZED,
            Self::NotEnqueued(_) | Self::NotSpooled(..) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Self::RateLimited(wait) | Self::Overloaded(wait) = self {
            // Whole seconds, rounded up: a client that waits that long finds a token.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.insert_header((RETRY_AFTER, seconds.max(1).to_string()));
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
    }
}
