//! Every exchange and queue name and argument, and their idempotent declaration.
//!
//! ```text
//! {P}            topic exchange; the handler publishes "{source}.{event_type}" here
//! {P}.events     queue bound with "#"; the consumer reads it
//! {P}.retry.{n}  one queue per retry delay, TTL = that delay, dead-letters back to {P}
//! {P}.dlx        fanout exchange for dead letters
//! {P}.dead       queue bound to {P}.dlx; `consumer dlq` lists and replays it
//! ```
//!
//! Both services declare all of it at start, so either may start first. Declaring with
//! different arguments than an existing queue has (another `QUEUE_TYPE` or `RETRY_DELAYS`)
//! fails with the broker's PRECONDITION_FAILED, which startup reports.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};
use std::str::FromStr;
use std::time::Duration;

/// How often the broker may redeliver a message from `{P}.events` (consumer crashes, channel
/// closures) before it dead-letters it instead: set explicitly so that no RabbitMQ version's
/// default can drop a message.
pub const DELIVERY_LIMIT: i64 = 20;

/// How many rejection records `{P}.rejected` holds before dropping the oldest.
pub const REJECTED_QUEUE_LENGTH: i64 = 10_000;

/// The queue type for every queue of the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    /// Replicated, durable, with at-least-once dead-lettering: the default.
    Quorum,
    /// A classic durable queue, for brokers without quorum queues.
    Classic,
}

impl FromStr for QueueType {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, ()> {
        match value {
            "quorum" => Ok(Self::Quorum),
            "classic" => Ok(Self::Classic),
            _ => Err(()),
        }
    }
}

/// The names and arguments of everything the services declare on the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    queue_type: QueueType,
    retry_delays: Vec<Duration>,
}

/// Whether `prefix` can name exchanges and queues: `[A-Za-z0-9_.-]{1,100}`.
pub fn is_valid_prefix(prefix: &str) -> bool {
    (1..=100).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl Topology {
    /// A topology under `prefix` with one retry queue per delay.
    pub fn new(prefix: impl Into<String>, queue_type: QueueType, retry_delays: Vec<Duration>) -> Self {
        Self {
            prefix: prefix.into(),
            queue_type,
            retry_delays,
        }
    }

    /// The prefix `{P}`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The topic exchange `{P}` the handler publishes to.
    pub fn exchange(&self) -> String {
        self.prefix.clone()
    }

    /// The queue `{P}.events` the consumer reads.
    pub fn events_queue(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// The dead-letter exchange `{P}.dlx`.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.prefix)
    }

    /// The queue `{P}.dead` that holds dead letters.
    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// The queue `{P}.rejected`: a bounded log of rejected requests (no bodies), newest kept.
    pub fn rejected_queue(&self) -> String {
        format!("{}.rejected", self.prefix)
    }

    /// The configured retry delays, shortest first as given.
    pub fn retry_delays(&self) -> &[Duration] {
        &self.retry_delays
    }

    /// The retry queue for the `attempt`-th retry (1-based): `{P}.retry.{n}`. Attempts past
    /// the last delay reuse the last queue.
    pub fn retry_queue(&self, attempt: u32) -> String {
        let last = self.retry_delays.len().max(1);
        let n = usize::try_from(attempt).unwrap_or(usize::MAX).clamp(1, last);
        format!("{}.retry.{n}", self.prefix)
    }

    /// Every queue name, for cleanup and inspection.
    pub fn queue_names(&self) -> Vec<String> {
        let mut names = vec![self.events_queue(), self.dead_queue()];
        names.extend((1..=self.retry_delays.len()).map(|n| format!("{}.retry.{n}", self.prefix)));
        names.push(self.rejected_queue());
        names
    }

    /// Every exchange name, for cleanup.
    pub fn exchange_names(&self) -> Vec<String> {
        vec![self.exchange(), self.dead_letter_exchange()]
    }

    /// Declares everything; safe to call any number of times from any number of processes.
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.exchange().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.dead_letter_exchange().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;

        let queue = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        // Declared before anything that dead-letters into it: a message dead-lettered to an
        // exchange with no queue bound is dropped.
        channel
            .queue_declare(self.dead_queue().into(), queue, self.base_arguments())
            .await?;
        channel
            .queue_bind(
                self.dead_queue().into(),
                self.dead_letter_exchange().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        let mut events = self.dead_lettering_arguments(&self.dead_letter_exchange());
        if self.queue_type == QueueType::Quorum {
            events.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(DELIVERY_LIMIT));
        }
        channel.queue_declare(self.events_queue().into(), queue, events).await?;
        channel
            .queue_bind(
                self.events_queue().into(),
                self.exchange().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        // Bounded: when full the oldest record goes, so a flood of bad requests costs a fixed
        // amount of broker memory and never pushes back on the handler.
        let mut rejected = self.base_arguments();
        rejected.insert("x-max-length".into(), AMQPValue::LongLongInt(REJECTED_QUEUE_LENGTH));
        rejected.insert("x-overflow".into(), text("drop-head"));
        channel
            .queue_declare(self.rejected_queue().into(), queue, rejected)
            .await?;

        for (index, delay) in self.retry_delays.iter().enumerate() {
            let mut arguments = self.dead_lettering_arguments(&self.exchange());
            let ttl = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
            channel
                .queue_declare(format!("{}.retry.{}", self.prefix, index + 1).into(), queue, arguments)
                .await?;
        }
        Ok(())
    }

    fn base_arguments(&self) -> FieldTable {
        let mut arguments = FieldTable::default();
        let kind = match self.queue_type {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        };
        arguments.insert("x-queue-type".into(), text(kind));
        arguments
    }

    /// Dead-lettering to `exchange`; on quorum queues at-least-once, which RabbitMQ only
    /// offers together with `reject-publish` overflow.
    fn dead_lettering_arguments(&self, exchange: &str) -> FieldTable {
        let mut arguments = self.base_arguments();
        arguments.insert("x-dead-letter-exchange".into(), text(exchange));
        if self.queue_type == QueueType::Quorum {
            arguments.insert("x-dead-letter-strategy".into(), text("at-least-once"));
            arguments.insert("x-overflow".into(), text("reject-publish"));
        }
        arguments
    }
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        Topology::new(
            "webhooks",
            QueueType::Quorum,
            vec![Duration::from_secs(1), Duration::from_secs(5), Duration::from_secs(30)],
        )
    }

    #[test]
    fn names_follow_the_prefix() {
        let topology = topology();
        assert_eq!(topology.exchange(), "webhooks");
        assert_eq!(topology.events_queue(), "webhooks.events");
        assert_eq!(topology.dead_letter_exchange(), "webhooks.dlx");
        assert_eq!(topology.dead_queue(), "webhooks.dead");
        assert_eq!(
            topology.queue_names(),
            vec![
                "webhooks.events",
                "webhooks.dead",
                "webhooks.retry.1",
                "webhooks.retry.2",
                "webhooks.retry.3",
                "webhooks.rejected"
            ]
        );
    }

    #[test]
    fn attempts_past_the_last_delay_reuse_the_last_retry_queue() {
        let topology = topology();
        assert_eq!(topology.retry_queue(1), "webhooks.retry.1");
        assert_eq!(topology.retry_queue(3), "webhooks.retry.3");
        assert_eq!(topology.retry_queue(7), "webhooks.retry.3");
        assert_eq!(topology.retry_queue(0), "webhooks.retry.1");
    }

    #[test]
    fn quorum_queues_dead_letter_at_least_once() {
        let arguments = topology().dead_lettering_arguments("webhooks.dlx");
        let get = |key: &str| arguments.inner().get(key).cloned();
        assert_eq!(get("x-queue-type"), Some(text("quorum")));
        assert_eq!(get("x-dead-letter-strategy"), Some(text("at-least-once")));
        assert_eq!(get("x-overflow"), Some(text("reject-publish")));
    }

    #[test]
    fn classic_queues_get_no_quorum_only_arguments() {
        let topology = Topology::new("p", QueueType::Classic, vec![Duration::from_secs(1)]);
        let arguments = topology.dead_lettering_arguments("p.dlx");
        assert!(!arguments.contains_key("x-dead-letter-strategy"));
        assert!(!arguments.contains_key("x-overflow"));
        assert_eq!(arguments.inner().get("x-queue-type"), Some(&text("classic")));
    }

    #[test]
    fn prefixes_are_restricted_to_safe_characters() {
        assert!(is_valid_prefix("webhooks"));
        assert!(is_valid_prefix("test_1a2b.x-y"));
        assert!(!is_valid_prefix(""));
        assert!(!is_valid_prefix("with space"));
        assert!(!is_valid_prefix(&"p".repeat(101)));
    }
}
