//! The rejection log: every rejected request leaves a small record (never its body, signature
//! or any secret) in the bounded queue `{P}.rejected`, so an operator can see, for example,
//! that a vendor rotated its secret and we did not.
//!
//! Recording never blocks or slows the request: records are published by background tasks,
//! at most [`MAX_IN_FLIGHT`] at a time; beyond that, or when the broker is away, a record is
//! dropped and counted in `webhook_handler_rejections_dropped_total`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lapin::BasicProperties;
use serde::Serialize;
use tokio::sync::Semaphore;
use webhook_core::broker::{Outgoing, Publisher};
use webhook_core::envelope::{CONTENT_TYPE_JSON, format_time};

use crate::metrics::Metrics;

/// Rejection records being published at once, at most.
pub const MAX_IN_FLIGHT: usize = 64;

/// What is kept about one rejected request.
#[derive(Debug, Serialize)]
pub struct RejectionRecord {
    /// When it was received (RFC 3339, µs).
    pub at: String,
    /// The source named in the path (truncated to 64 characters; may not be configured).
    pub source: String,
    /// A bounded reason label, e.g. `signature_mismatch`.
    pub reason: &'static str,
    /// The status we answered.
    pub status: u16,
    /// The request id of the log line.
    pub request_id: String,
    /// The delivery id the request claimed, if any (truncated to 200 bytes).
    pub delivery_id: Option<String>,
    /// The peer address.
    pub remote_addr: Option<String>,
    /// The declared body length, if any.
    pub content_length: Option<u64>,
}

impl RejectionRecord {
    /// Truncates a caller-supplied string to at most `max` bytes on a character boundary.
    pub fn bounded(text: &str, max: usize) -> String {
        let mut end = text.len().min(max);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_owned()
    }

    /// The time format of the record.
    pub fn time(at: DateTime<Utc>) -> String {
        format_time(at)
    }
}

/// Publishes rejection records in the background.
#[derive(Debug, Clone)]
pub struct RejectionLog {
    publisher: Publisher,
    queue: String,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl RejectionLog {
    /// Records go to `queue` through `publisher`.
    pub fn new(publisher: Publisher, queue: String, metrics: Arc<Metrics>) -> Self {
        Self {
            publisher,
            queue,
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            metrics,
        }
    }

    /// Records `record` without waiting; drops it (counted) if too many are in flight.
    pub fn record(&self, record: &RejectionRecord) {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            self.metrics.rejections_dropped.inc();
            return;
        };
        let body = match serde_json::to_vec(record) {
            Ok(body) => body,
            Err(error) => {
                log::error!("cannot encode a rejection record: {error}");
                return;
            }
        };
        let properties = BasicProperties::default()
            .with_content_type(CONTENT_TYPE_JSON.into())
            .with_message_id(record.request_id.as_str().into())
            .with_timestamp(u64::try_from(Utc::now().timestamp()).unwrap_or_default());
        let (publisher, queue, metrics) = (self.publisher.clone(), self.queue.clone(), Arc::clone(&self.metrics));
        tokio::spawn(async move {
            let _permit = permit;
            let message = Outgoing {
                exchange: "",
                routing_key: &queue,
                body: &body,
            };
            if let Err(error) = publisher.publish(message, properties).await {
                metrics.rejections_dropped.inc();
                log::debug!("rejection record not published: {error}");
            }
        });
    }
}
