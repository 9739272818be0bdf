//! The dead-letter queue `{P}.dead`: listing it without consuming, and replaying dead letters
//! to the exchange `{P}` with a fresh retry count. `consumer dlq list|replay` and the
//! dashboard's replay form both use it.

use std::collections::HashSet;
use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

use crate::broker::{self, BrokerConnection, BrokerSettings, ConnectError, Outgoing, Publisher};
use crate::consume::close;
use crate::envelope::{Envelope, header, header_text};
use crate::service::Selection;

/// How long a replay publish may wait for the broker's confirm.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the replay publisher may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Headers the broker adds when it dead-letters a message itself (e.g. past the delivery limit).
const BROKER_DEATH_HEADERS: [&str; 7] = [
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
];

/// Why listing or replaying could not be done (or not to the end). `Display` is the step that
/// failed; the cause is its [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// No connection to the broker could be opened (each address tried within
    /// [`broker::CONNECT_TIMEOUT`]).
    #[error("cannot connect to the broker at {at}")]
    Connect {
        /// The broker's addresses, redacted.
        at: String,
        /// Why.
        #[source]
        source: ConnectError,
    },
    /// The replay's confirming publisher did not connect within its timeout.
    #[error("cannot connect to the broker at {at} within {timeout:?}")]
    PublisherNotConnected {
        /// The broker's addresses, redacted.
        at: String,
        /// How long it was given.
        timeout: Duration,
    },
    /// The connection opened but a channel could not.
    #[error("opening a channel")]
    Channel(#[source] lapin::Error),
    /// `{P}.dead` does not exist (or the broker refused to look at it).
    #[error("the queue {queue} cannot be opened (it is declared when a service starts with this AMQP_PREFIX)")]
    Queue {
        /// The queue's name.
        queue: String,
        /// Why.
        #[source]
        source: lapin::Error,
    },
    /// Reading a letter failed (the connection or channel was lost on the way).
    #[error("reading {queue}")]
    Read {
        /// The queue's name.
        queue: String,
        /// Why.
        #[source]
        source: lapin::Error,
    },
}

impl DlqError {
    /// True when the broker could not be reached at all: nothing was read or replayed.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. } | Self::PublisherNotConnected { .. } | Self::Channel(_)
        )
    }

    /// The error and its causes, in one line (`step: cause: cause`).
    pub fn line(&self) -> String {
        let mut line = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(error) = cause {
            line.push_str(": ");
            line.push_str(&error.to_string());
            cause = error.source();
        }
        line.replace('\n', " ")
    }
}

/// A dead letter as `consumer dlq list` shows it. Fields a poison message lacks are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The `source` header.
    pub source: Option<String>,
    /// The `message_id` property (the vendor's delivery id).
    pub delivery_id: Option<String>,
    /// The `event-type` header.
    pub event_type: Option<String>,
    /// The `retry-count` header.
    pub retry_count: Option<u32>,
    /// Why it was dead-lettered: the `error` header, or the broker's reason.
    pub error: Option<String>,
    /// The `dead-lettered-at` header.
    pub dead_lettered_at: Option<String>,
    /// The routing key it was dead-lettered with.
    pub routing_key: String,
    /// The size of its body.
    pub body_bytes: usize,
}

impl DeadLetter {
    fn read(routing_key: &str, properties: &BasicProperties, body: &[u8]) -> Self {
        let text = |name: &str| {
            properties
                .headers()
                .as_ref()
                .and_then(|headers| header_text(headers, name))
        };
        let error = text(header::ERROR).or_else(|| {
            text("x-first-death-reason").map(|reason| {
                let queue = text("x-first-death-queue").unwrap_or_default();
                format!("dead-lettered by the broker: {reason} in {queue}")
            })
        });
        Self {
            source: text(header::SOURCE),
            delivery_id: properties.message_id().as_ref().map(|id| id.as_str().to_owned()),
            event_type: text(header::EVENT_TYPE),
            retry_count: text(header::RETRY_COUNT).and_then(|count| count.parse().ok()),
            error,
            dead_lettered_at: text(header::DEAD_LETTERED_AT),
            routing_key: routing_key.to_owned(),
            body_bytes: body.len(),
        }
    }
}

/// Reads up to `limit` dead letters from `{P}.dead` without removing them: they are taken
/// unacked and go back to the queue when the channel closes.
pub async fn list(broker: &BrokerSettings, limit: usize) -> Result<Vec<DeadLetter>, DlqError> {
    let queue = broker.topology.dead_queue();
    let (connection, channel) = open(broker, "list").await?;
    let listed = async {
        let waiting = waiting(&channel, &queue).await?;
        let mut letters = Vec::new();
        while letters.len() < limit.min(waiting) {
            let Some(message) = get(&channel, &queue).await? else {
                break;
            };
            let delivery = &message.delivery;
            letters.push(DeadLetter::read(
                delivery.routing_key.as_str(),
                &delivery.properties,
                &delivery.data,
            ));
        }
        Ok(letters)
    }
    .await;
    close(&connection, &channel).await;
    listed
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Dead letters republished (confirmed) and removed from `{P}.dead`.
    pub replayed: usize,
    /// Dead letters that could not be replayed, with why (they stay in `{P}.dead`).
    pub failed: Vec<(String, String)>,
    /// Requested ids that no dead letter carries.
    pub not_found: Vec<String>,
}

impl ReplayReport {
    /// True when everything selected was replayed and every requested id was found.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty() && self.not_found.is_empty()
    }
}

/// Republishes the selected dead letters to the exchange `{P}` (routing key
/// `{source}.{event_type}`) with `retry-count` 0 and without the dead-letter headers, waits for
/// each confirm, then removes each from `{P}.dead`. Letters not selected stay where they are.
///
/// Only the letters in the queue when the replay starts are looked at, so a replay ends even
/// while new letters arrive. It is bounded in time: connecting takes at most
/// [`broker::CONNECT_TIMEOUT`] per broker address (then [`CONNECT_TIMEOUT`] for the
/// publisher), and each publish waits at most [`CONFIRM_TIMEOUT`] for its confirm.
pub async fn replay(broker: &BrokerSettings, selection: &Selection) -> Result<ReplayReport, DlqError> {
    // The reading connection first: a broker that cannot be reached fails here at once (or
    // within the per-address connect timeout), not after the publisher's wait.
    let (connection, channel) = open(broker, "replay").await?;
    let publisher = Publisher::start(broker.clone(), &client_name("replay"), 1, CONFIRM_TIMEOUT);
    let replayed = if publisher.wait_connected(CONNECT_TIMEOUT).await {
        replay_on(broker, &channel, &publisher, selection).await
    } else {
        Err(DlqError::PublisherNotConnected {
            at: broker.addresses.redacted(),
            timeout: CONNECT_TIMEOUT,
        })
    };
    close(&connection, &channel).await;
    publisher.close().await;
    replayed
}

async fn replay_on(
    broker: &BrokerSettings,
    channel: &Channel,
    publisher: &Publisher,
    selection: &Selection,
) -> Result<ReplayReport, DlqError> {
    let queue = broker.topology.dead_queue();
    let exchange = broker.topology.exchange();
    let waiting = waiting(channel, &queue).await?;
    let mut report = ReplayReport::default();
    let mut found = HashSet::new();
    for _ in 0..waiting {
        let Some(message) = get(channel, &queue).await? else {
            break;
        };
        let delivery = message.delivery;
        let id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default();
        if !selection.takes(&id) {
            // Left unacked: it goes back to the queue when the channel closes.
            continue;
        }
        found.insert(id.clone());
        let properties = replay_properties(&delivery.properties);
        let routing_key = Envelope::from_properties(&properties)
            .map(|envelope| envelope.routing_key())
            .unwrap_or_else(|_| delivery.routing_key.to_string());
        let outgoing = Outgoing {
            exchange: &exchange,
            routing_key: &routing_key,
            body: &delivery.data,
        };
        if let Err(error) = publisher.publish(outgoing, properties).await {
            report.failed.push((id, format!("not republished: {error}")));
            continue;
        }
        match delivery.acker.ack(BasicAckOptions::default()).await {
            Ok(true) => report.replayed += 1,
            Ok(false) => report.failed.push((
                id,
                "republished, but the channel closed before it was removed from the dead-letter queue (it will be listed again)".to_owned(),
            )),
            Err(error) => report.failed.push((
                id,
                format!("republished, but not removed from the dead-letter queue (it will be listed again): {error}"),
            )),
        }
    }
    report.not_found = selection.not_found(|id| found.contains(id));
    Ok(report)
}

/// The next message of `queue`, taken unacked (it goes back when the channel closes unless it
/// is acked), or `None` when the queue is empty.
async fn get(channel: &Channel, queue: &str) -> Result<Option<lapin::message::BasicGetMessage>, DlqError> {
    channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await
        .map_err(|source| DlqError::Read {
            queue: queue.to_owned(),
            source,
        })
}

/// How many messages wait in `queue` (which must exist: it is declared by whichever service
/// starts first with this `AMQP_PREFIX`).
async fn waiting(channel: &Channel, queue: &str) -> Result<usize, DlqError> {
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|source| DlqError::Queue {
            queue: queue.to_owned(),
            source,
        })?;
    Ok(usize::try_from(declared.message_count()).unwrap_or(usize::MAX))
}

/// The properties a dead letter is replayed with: the original ones with `retry-count` 0 and
/// without `error`, `dead-lettered-at` or the broker's dead-lettering headers.
pub fn replay_properties(dead: &BasicProperties) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (name, value) in dead.headers().as_ref().map(FieldTable::inner).into_iter().flatten() {
        let dropped = [header::ERROR, header::DEAD_LETTERED_AT].contains(&name.as_str())
            || BROKER_DEATH_HEADERS.contains(&name.as_str());
        if !dropped {
            headers.insert(name.clone(), value.clone());
        }
    }
    headers.insert(header::RETRY_COUNT.into(), lapin::types::AMQPValue::LongLongInt(0));
    let properties = dead.clone().with_headers(headers);
    if dead.delivery_mode().is_none() {
        properties.with_delivery_mode(2)
    } else {
        properties
    }
}

/// The dead letters as a table: source, delivery id, event type, retries, dead-lettered-at and
/// error (last, as it is the longest).
pub fn format_table(letters: &[DeadLetter]) -> String {
    let rows: Vec<[String; 6]> = letters
        .iter()
        .map(|letter| {
            let cell = |value: &Option<String>| value.as_deref().map_or_else(|| "-".to_owned(), printable);
            [
                cell(&letter.source),
                cell(&letter.delivery_id),
                cell(&letter.event_type),
                letter
                    .retry_count
                    .map_or_else(|| "-".to_owned(), |count| count.to_string()),
                cell(&letter.dead_lettered_at),
                cell(&letter.error),
            ]
        })
        .collect();
    let titles = [
        "SOURCE",
        "DELIVERY ID",
        "EVENT TYPE",
        "RETRIES",
        "DEAD-LETTERED AT",
        "ERROR",
    ];
    let mut widths = titles.map(|title| title.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if index == cells.len() - 1 {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.trim_end().to_owned()
    };
    let mut table = line(titles);
    table.push('\n');
    for row in &rows {
        table.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]));
        table.push('\n');
    }
    table
}

/// Control characters (a poison message's headers can hold anything) shown as `?`.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// The name of this process's connection for `what` (shown in the management UI):
/// `consumer-dlq-replay-<pid>`, `dashboard-dlq-replay-<pid>`.
fn client_name(what: &str) -> String {
    let program = std::env::current_exe()
        .ok()
        .and_then(|path| path.file_stem().map(|stem| stem.to_string_lossy().into_owned()))
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .unwrap_or_else(|| "webhook-inbox".to_owned());
    format!("{program}-dlq-{what}-{}", std::process::id())
}

async fn open(broker: &BrokerSettings, what: &str) -> Result<(BrokerConnection, Channel), DlqError> {
    let connection = broker::connect(&broker.addresses, &client_name(what))
        .await
        .map_err(|source| DlqError::Connect {
            at: broker.addresses.redacted(),
            source,
        })?;
    match connection.create_channel().await {
        Ok(channel) => Ok((connection, channel)),
        Err(error) => {
            connection.close().await;
            Err(DlqError::Channel(error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::republish_properties;
    use chrono::Utc;

    fn dead_properties() -> BasicProperties {
        let envelope = Envelope {
            source: "stripe".to_owned(),
            delivery_id: "evt_1".to_owned(),
            event_type: "charge.succeeded".to_owned(),
            received_at: Utc::now(),
            retry_count: 0,
            body_format: crate::payload::BodyFormat::Json,
        };
        republish_properties(&envelope.properties(), 5, Some("retries exhausted after 5: boom"))
    }

    #[test]
    fn a_dead_letter_shows_its_envelope_and_error() {
        let letter = DeadLetter::read("stripe.charge.succeeded", &dead_properties(), b"{}");
        assert_eq!(letter.source.as_deref(), Some("stripe"));
        assert_eq!(letter.delivery_id.as_deref(), Some("evt_1"));
        assert_eq!(letter.event_type.as_deref(), Some("charge.succeeded"));
        assert_eq!(letter.retry_count, Some(5));
        assert_eq!(letter.error.as_deref(), Some("retries exhausted after 5: boom"));
        assert!(letter.dead_lettered_at.is_some());
        assert_eq!(letter.body_bytes, 2);
    }

    #[test]
    fn replayed_properties_reset_the_retry_count_and_drop_the_error() {
        let replayed = replay_properties(&dead_properties());
        let envelope = Envelope::from_properties(&replayed).unwrap();
        assert_eq!(envelope.retry_count, 0);
        assert_eq!(envelope.routing_key(), "stripe.charge.succeeded");
        let headers = replayed.headers().as_ref().unwrap();
        assert!(header_text(headers, header::ERROR).is_none());
        assert!(header_text(headers, header::DEAD_LETTERED_AT).is_none());
        assert_eq!(replayed.message_id(), dead_properties().message_id());
    }

    #[test]
    fn the_table_has_a_header_and_one_line_per_letter() {
        let letters = vec![
            DeadLetter::read("k", &dead_properties(), b"{}"),
            DeadLetter::read("k", &BasicProperties::default(), b"x"),
        ];
        let table = format_table(&letters);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("SOURCE  DELIVERY ID  EVENT TYPE"), "{table}");
        assert!(lines[1].starts_with("stripe  evt_1"), "{table}");
        assert!(lines[1].ends_with("retries exhausted after 5: boom"), "{table}");
        assert!(lines[2].starts_with("-       -"), "{table}");
    }

    #[test]
    fn control_characters_in_headers_are_not_printed() {
        assert_eq!(printable("a\nb\u{1b}[31m"), "a?b?[31m");
    }
}
