//! The rejection log: every rejected request leaves a small record (never its body, signature
//! or any secret) in the bounded queue `{P}.rejected`, so an operator can see, for example,
//! that a vendor rotated its secret and we did not.
//!
//! Recording never blocks or slows the request: records are published by background tasks,
//! at most [`MAX_IN_FLIGHT`] at a time; beyond that, or when the broker is away, a record is
//! dropped and counted in `webhook_handler_rejections_dropped_total`.

use std::sync::Arc;

use chrono::Utc;
use lapin::BasicProperties;
use tokio::sync::Semaphore;
use webhook_core::broker::{Outgoing, Publisher};
use webhook_core::envelope::CONTENT_TYPE_JSON;
pub use webhook_core::rejection::RejectionRecord;

use crate::metrics::Metrics;

/// Rejection records being published at once, at most.
pub const MAX_IN_FLIGHT: usize = 64;

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
