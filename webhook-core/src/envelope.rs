//! The wire contract between the request handler and the consumer: message properties,
//! headers, and the rules for ids, source names and event types.
//!
//! The message body is the request body, byte for byte. Everything else the consumer needs
//! travels in properties and headers, named without an `x-` prefix because RabbitMQ 4 treats
//! `x-` headers as its own.

use crate::payload::BodyFormat;
use chrono::{DateTime, SecondsFormat, Utc};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

/// Header names carried by every event message.
pub mod header {
    /// The source (vendor) the event came from.
    pub const SOURCE: &str = "source";
    /// The event type, e.g. `push` or `charge.succeeded`.
    pub const EVENT_TYPE: &str = "event-type";
    /// When the handler received the request, RFC 3339 with microseconds.
    pub const RECEIVED_AT: &str = "received-at";
    /// How many times the consumer has sent this message down the retry ladder.
    pub const RETRY_COUNT: &str = "retry-count";
    /// Why a message was dead-lettered (only on dead letters).
    pub const ERROR: &str = "error";
    /// When a message was dead-lettered, RFC 3339 (only on dead letters).
    pub const DEAD_LETTERED_AT: &str = "dead-lettered-at";
}

pub use crate::ids::{
    DeliveryId, EventType, MAX_DELIVERY_ID_BYTES, MAX_EVENT_TYPE_BYTES, MAX_SOURCE_BYTES, SourceName,
};

/// The content type of JSON messages (events from JSON sources, rejection records).
pub const CONTENT_TYPE_JSON: &str = BodyFormat::Json.content_type();

/// The earliest `received-at` an event may carry: anything before is forged or broken.
pub const EARLIEST_RECEIVED_AT: &str = "2000-01-01T00:00:00Z";
/// How far ahead of the consumer's clock `received-at` may be, in hours: clocks of hosts
/// differ, a day ahead is forged or broken.
pub const MAX_RECEIVED_AT_AHEAD_HOURS: i64 = 24;

/// Whether `name` is a valid source name: `[a-z0-9_-]{1,64}` (see [`SourceName::parse`]).
pub fn is_valid_source_name(name: &str) -> bool {
    SourceName::parse(name).is_ok()
}

/// Formats a time the way `received-at` carries it: RFC 3339, UTC, microseconds.
pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Everything about an event that travels beside its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The source (vendor) name.
    pub source: String,
    /// The vendor's id for this delivery (the idempotency key together with `source`).
    pub delivery_id: String,
    /// The event type.
    pub event_type: String,
    /// When the handler received the request.
    pub received_at: DateTime<Utc>,
    /// How many retries the consumer has spent on it.
    pub retry_count: u32,
    /// How the body is encoded (the message's content type).
    pub body_format: BodyFormat,
}

/// Why a message cannot be read as an event: it is poison and goes straight to the
/// dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// A required header or property is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A required header or property has a value of the wrong form.
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, String),
}

impl Envelope {
    /// The envelope of an event received now or at `received_at`, not yet retried.
    pub fn new(
        source: &SourceName,
        delivery_id: &DeliveryId,
        event_type: &EventType,
        received_at: DateTime<Utc>,
        body_format: BodyFormat,
    ) -> Self {
        Self {
            source: source.to_string(),
            delivery_id: delivery_id.to_string(),
            event_type: event_type.to_string(),
            received_at,
            retry_count: 0,
            body_format,
        }
    }

    /// The routing key on the topic exchange: `{source}.{event_type}`.
    pub fn routing_key(&self) -> String {
        format!("{}.{}", self.source, self.event_type)
    }

    /// Message properties for publishing: persistent, the body format's content type,
    /// `message_id` = delivery id, timestamp, and the envelope headers.
    ///
    /// The caller must have validated `source`, `delivery_id` and `event_type`: lapin's
    /// short strings panic above 255 bytes.
    pub fn properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert(header::SOURCE.into(), long_string(&self.source));
        headers.insert(header::EVENT_TYPE.into(), long_string(&self.event_type));
        headers.insert(header::RECEIVED_AT.into(), long_string(&format_time(self.received_at)));
        headers.insert(
            header::RETRY_COUNT.into(),
            AMQPValue::LongLongInt(i64::from(self.retry_count)),
        );
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(self.body_format.content_type().into())
            .with_message_id(ShortString::from(self.delivery_id.as_str()))
            .with_timestamp(u64::try_from(self.received_at.timestamp()).unwrap_or_default())
            .with_headers(headers)
    }

    /// Reads an envelope from the properties of a delivered message, checking everything the
    /// handler checks (anyone who can publish to the broker can send one): the delivery id,
    /// source and event type by their rules, and `received-at` between
    /// [`EARLIEST_RECEIVED_AT`] and a day after now.
    pub fn from_properties(properties: &BasicProperties) -> Result<Self, EnvelopeError> {
        Self::from_properties_at(properties, Utc::now())
    }

    /// [`Envelope::from_properties`] as of `now`.
    pub fn from_properties_at(properties: &BasicProperties, now: DateTime<Utc>) -> Result<Self, EnvelopeError> {
        let headers = properties.headers().as_ref().ok_or(EnvelopeError::Missing("headers"))?;
        let content_type = properties.content_type().as_ref().map(ShortString::as_str);
        let body_format = BodyFormat::from_content_type(content_type).ok_or_else(|| {
            EnvelopeError::Invalid(
                "content_type",
                format!(
                    "{:?} is neither JSON nor form-encoded",
                    content_type.unwrap_or_default()
                ),
            )
        })?;
        let delivery_id = properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str().to_owned())
            .ok_or(EnvelopeError::Missing("message_id (delivery id)"))?;
        DeliveryId::parse(&delivery_id).map_err(|why| EnvelopeError::Invalid("message_id", why.to_string()))?;
        let source = string_header(headers, header::SOURCE)?;
        if SourceName::parse(&source).is_err() {
            return Err(EnvelopeError::Invalid(
                "header source",
                format!("{source:?} is not a source name ([a-z0-9_-]{{1,64}})"),
            ));
        }
        let event_type = string_header(headers, header::EVENT_TYPE)?;
        EventType::parse(&event_type).map_err(|why| EnvelopeError::Invalid("header event-type", why.to_string()))?;
        let received_at = string_header(headers, header::RECEIVED_AT)?;
        let received_at = DateTime::parse_from_rfc3339(&received_at)
            .map_err(|err| EnvelopeError::Invalid("header received-at", format!("{received_at:?}: {err}")))?
            .with_timezone(&Utc);
        let earliest = DateTime::parse_from_rfc3339(EARLIEST_RECEIVED_AT)
            .map(|at| at.with_timezone(&Utc))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        if received_at < earliest || received_at > now + chrono::Duration::hours(MAX_RECEIVED_AT_AHEAD_HOURS) {
            return Err(EnvelopeError::Invalid(
                "header received-at",
                format!(
                    "{} is not between {EARLIEST_RECEIVED_AT} and {MAX_RECEIVED_AT_AHEAD_HOURS} hours from now",
                    format_time(received_at)
                ),
            ));
        }
        let retry_count = match headers.inner().get(header::RETRY_COUNT) {
            None => return Err(EnvelopeError::Missing("header retry-count")),
            Some(value) => integer(value)
                .and_then(|count| u32::try_from(count).ok())
                .ok_or_else(|| EnvelopeError::Invalid("header retry-count", format!("{value:?}")))?,
        };
        Ok(Self {
            source,
            delivery_id,
            event_type,
            received_at,
            retry_count,
            body_format,
        })
    }
}

/// Properties for republishing a delivered message (to a retry queue or the dead-letter
/// exchange): the original properties with `retry-count` set and, for dead letters, the
/// `error` header and the time it was dead-lettered.
pub fn republish_properties(original: &BasicProperties, retry_count: u32, error: Option<&str>) -> BasicProperties {
    let mut headers = original.headers().clone().unwrap_or_default();
    headers.insert(
        header::RETRY_COUNT.into(),
        AMQPValue::LongLongInt(i64::from(retry_count)),
    );
    if let Some(error) = error {
        headers.insert(header::ERROR.into(), long_string(&truncate(error, 1000)));
        headers.insert(header::DEAD_LETTERED_AT.into(), long_string(&format_time(Utc::now())));
    }
    let properties = original.clone().with_headers(headers);
    if original.delivery_mode().is_none() {
        properties.with_delivery_mode(2)
    } else {
        properties
    }
}

/// Reads a header as text, whichever AMQP string type carries it.
pub fn header_text(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(value) => std::str::from_utf8(value.as_bytes()).ok().map(str::to_owned),
        AMQPValue::ShortString(value) => Some(value.as_str().to_owned()),
        other => integer(other).map(|value| value.to_string()),
    }
}

fn string_header(headers: &FieldTable, name: &'static str) -> Result<String, EnvelopeError> {
    match headers.inner().get(name) {
        None => Err(EnvelopeError::Missing(match name {
            header::SOURCE => "header source",
            header::EVENT_TYPE => "header event-type",
            header::RECEIVED_AT => "header received-at",
            _ => "header",
        })),
        Some(AMQPValue::LongString(value)) => std::str::from_utf8(value.as_bytes())
            .map(str::to_owned)
            .map_err(|_| EnvelopeError::Invalid(name, "not UTF-8".to_owned())),
        Some(AMQPValue::ShortString(value)) => Ok(value.as_str().to_owned()),
        Some(other) => Err(EnvelopeError::Invalid(name, format!("not a string: {other:?}"))),
    }
}

fn integer(value: &AMQPValue) -> Option<i64> {
    match value {
        AMQPValue::ShortShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongString(v) => std::str::from_utf8(v.as_bytes()).ok()?.trim().parse().ok(),
        AMQPValue::ShortString(v) => v.as_str().trim().parse().ok(),
        _ => None,
    }
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes()))
}

fn truncate(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn envelope() -> Envelope {
        Envelope {
            source: "stripe".to_owned(),
            delivery_id: "evt_1".to_owned(),
            event_type: "charge.succeeded".to_owned(),
            received_at: Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
                + chrono::Duration::microseconds(123_456),
            retry_count: 0,
            body_format: BodyFormat::Json,
        }
    }

    #[test]
    fn properties_round_trip_through_from_properties() {
        let original = envelope();
        let properties = original.properties();
        assert_eq!(properties.delivery_mode(), &Some(2));
        assert_eq!(
            properties.content_type().as_ref().map(ShortString::as_str),
            Some("application/json")
        );
        assert_eq!(Envelope::from_properties(&properties), Ok(original));

        let form = Envelope {
            body_format: BodyFormat::Form,
            ..envelope()
        };
        let properties = form.properties();
        assert_eq!(
            properties.content_type().as_ref().map(ShortString::as_str),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(Envelope::from_properties(&properties), Ok(form));
    }

    #[test]
    fn the_content_type_says_how_the_body_is_encoded() {
        let without = envelope().properties().with_content_type(ShortString::from(""));
        assert!(matches!(
            Envelope::from_properties(&without),
            Err(EnvelopeError::Invalid("content_type", _))
        ));
        let xml = envelope().properties().with_content_type(ShortString::from("text/xml"));
        assert!(matches!(
            Envelope::from_properties(&xml),
            Err(EnvelopeError::Invalid("content_type", _))
        ));
        let full = envelope().properties();
        let none = BasicProperties::default()
            .with_headers(full.headers().clone().unwrap())
            .with_message_id(full.message_id().clone().unwrap());
        assert_eq!(
            Envelope::from_properties(&none).map(|read| read.body_format),
            Ok(BodyFormat::Json)
        );
    }

    #[test]
    fn received_at_carries_microseconds_in_utc() {
        let properties = envelope().properties();
        let headers = properties.headers().as_ref().unwrap();
        assert_eq!(
            header_text(headers, header::RECEIVED_AT).unwrap(),
            "2026-11-22T10:00:00.123456Z"
        );
    }

    #[test]
    fn the_routing_key_is_source_dot_event_type() {
        assert_eq!(envelope().routing_key(), "stripe.charge.succeeded");
    }

    #[test]
    fn a_message_without_headers_or_message_id_is_poison() {
        assert_eq!(
            Envelope::from_properties(&BasicProperties::default()),
            Err(EnvelopeError::Missing("headers"))
        );
        let without_id = envelope().properties().with_message_id(ShortString::from(""));
        assert!(matches!(
            Envelope::from_properties(&without_id),
            Err(EnvelopeError::Invalid("message_id", _))
        ));
    }

    #[test]
    fn each_missing_header_is_named() {
        for name in [
            header::SOURCE,
            header::EVENT_TYPE,
            header::RECEIVED_AT,
            header::RETRY_COUNT,
        ] {
            let properties = envelope().properties();
            let mut headers = FieldTable::default();
            for (key, value) in properties.headers().as_ref().unwrap().inner() {
                if key.as_str() != name {
                    headers.insert(key.clone(), value.clone());
                }
            }
            let err = Envelope::from_properties(&properties.with_headers(headers)).unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }

    fn with_header(name: &str, value: &str) -> BasicProperties {
        let properties = envelope().properties();
        let mut headers = properties.headers().clone().unwrap();
        headers.insert(name.into(), long_string(value));
        properties.with_headers(headers)
    }

    #[test]
    fn what_the_handler_checks_is_checked_again_on_every_message() {
        let now = envelope().received_at;
        let invalid = |properties: &BasicProperties| match Envelope::from_properties_at(properties, now) {
            Err(EnvelopeError::Invalid(what, why)) => format!("{what}: {why}"),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            invalid(&with_header(header::EVENT_TYPE, "push\u{1b}[31m")),
            "header event-type: event type contains control characters"
        );
        assert_eq!(
            invalid(&with_header(header::EVENT_TYPE, &"t".repeat(129))),
            "header event-type: event type is longer than 128 bytes"
        );
        assert_eq!(
            invalid(&with_header(header::SOURCE, "Not A Source")),
            "header source: \"Not A Source\" is not a source name ([a-z0-9_-]{1,64})"
        );
        assert_eq!(
            invalid(&envelope().properties().with_message_id(ShortString::from("a "))),
            "message_id: delivery id ends with a space"
        );
        assert_eq!(
            invalid(&with_header(header::RECEIVED_AT, "9999-12-31T23:59:59Z")),
            "header received-at: 9999-12-31T23:59:59.000000Z is not between 2000-01-01T00:00:00Z and 24 hours from now"
        );
        assert!(invalid(&with_header(header::RECEIVED_AT, "1999-12-31T23:59:59Z")).starts_with("header received-at: "));
        // An event a day old (a retry, a replayed dead letter) or a little ahead is fine.
        for at in [now - chrono::Duration::days(400), now + chrono::Duration::hours(23)] {
            let properties = with_header(header::RECEIVED_AT, &format_time(at));
            assert_eq!(
                Envelope::from_properties_at(&properties, now).map(|read| read.received_at),
                Ok(at)
            );
        }
    }

    #[test]
    fn retry_count_is_read_from_any_integer_type_or_numeric_text() {
        for value in [
            AMQPValue::LongInt(3),
            AMQPValue::ShortShortUInt(3),
            AMQPValue::LongString("3".into()),
        ] {
            let properties = envelope().properties();
            let mut headers = properties.headers().clone().unwrap();
            headers.insert(header::RETRY_COUNT.into(), value);
            let read = Envelope::from_properties(&properties.with_headers(headers)).unwrap();
            assert_eq!(read.retry_count, 3);
        }
    }

    #[test]
    fn republishing_sets_retry_count_and_keeps_everything_else() {
        let properties = envelope().properties();
        let retried = republish_properties(&properties, 2, None);
        assert_eq!(Envelope::from_properties(&retried).unwrap().retry_count, 2);
        assert_eq!(retried.message_id(), properties.message_id());
        let dead = republish_properties(&properties, 5, Some("Data too long for column 'x'"));
        let headers = dead.headers().as_ref().unwrap();
        assert_eq!(
            header_text(headers, header::ERROR).unwrap(),
            "Data too long for column 'x'"
        );
        assert!(header_text(headers, header::DEAD_LETTERED_AT).is_some());
    }

    #[test]
    fn long_error_texts_are_cut_on_a_char_boundary() {
        let cut = truncate(&"é".repeat(600), 1000);
        assert!(cut.len() <= 1000 + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }
}
