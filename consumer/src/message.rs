//! Reading a delivery as an event (or recognising it as poison). Pure: no I/O.

use lapin::BasicProperties;
use serde::de::IgnoredAny;
use sha2::{Digest, Sha256};
use webhook_core::envelope::{Envelope, header, header_text};
use webhook_core::payload::{BodyFormat, Form};

/// What a dead letter's record says when poison lacks a source or an event type.
pub(crate) const UNKNOWN: &str = "(unknown)";

/// One delivery of a batch, read.
#[derive(Debug)]
pub(crate) struct Message {
    /// The routing key it was delivered with (kept for dead letters).
    pub(crate) routing_key: String,
    /// Its properties, for republishing.
    pub(crate) properties: BasicProperties,
    /// An event, or poison.
    pub(crate) content: Content,
}

/// What a delivery turned out to be.
#[derive(Debug)]
pub(crate) enum Content {
    /// A well-formed event.
    Event(Event),
    /// Not an event: it goes to the dead-letter exchange at once.
    Poison {
        /// The body, byte for byte.
        body: Vec<u8>,
        /// The `retry-count` header if it can be read, else 0.
        retry_count: u32,
        /// Why it is poison.
        why: String,
    },
}

/// A well-formed event.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) envelope: Envelope,
    /// The body: UTF-8 JSON (or a form, as `envelope.body_format` says), byte for byte as
    /// received.
    pub(crate) body: String,
    /// Hex SHA-256 of the body.
    pub(crate) sha256: String,
}

impl Message {
    /// Reads a delivery: the envelope from its properties, the body as UTF-8 JSON or, when the
    /// content type says so, as a form.
    pub(crate) fn read(routing_key: String, properties: BasicProperties, body: Vec<u8>) -> Self {
        let content = match Envelope::from_properties(&properties) {
            Err(error) => Content::Poison {
                retry_count: readable_retry_count(&properties),
                why: error.to_string(),
                body,
            },
            Ok(envelope) => match body_text(body, envelope.body_format) {
                Ok(body) => Content::Event(Event {
                    sha256: hex::encode(Sha256::digest(body.as_bytes())),
                    envelope,
                    body,
                }),
                Err((body, why)) => Content::Poison {
                    retry_count: envelope.retry_count,
                    why,
                    body,
                },
            },
        };
        Self {
            routing_key,
            properties,
            content,
        }
    }

    /// The body, byte for byte.
    pub(crate) fn body(&self) -> &[u8] {
        match &self.content {
            Content::Event(event) => event.body.as_bytes(),
            Content::Poison { body, .. } => body,
        }
    }

    /// The retries already spent on it.
    pub(crate) fn retry_count(&self) -> u32 {
        match &self.content {
            Content::Event(event) => event.envelope.retry_count,
            Content::Poison { retry_count, .. } => *retry_count,
        }
    }

    /// Its (source, delivery id, event type) for the record of a dead letter: the envelope's,
    /// or for poison whatever its headers hold, else `(unknown)`, empty and `(unknown)`.
    pub(crate) fn identity(&self) -> (String, String, String) {
        if let Some(event) = self.event() {
            let envelope = &event.envelope;
            return (
                envelope.source.clone(),
                envelope.delivery_id.clone(),
                envelope.event_type.clone(),
            );
        }
        let headers = self.properties.headers().as_ref();
        let text = |name: &str| headers.and_then(|headers| header_text(headers, name));
        let unknown = || UNKNOWN.to_owned();
        (
            text(header::SOURCE).unwrap_or_else(unknown),
            self.properties
                .message_id()
                .as_ref()
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
            text(header::EVENT_TYPE).unwrap_or_else(unknown),
        )
    }

    pub(crate) fn event(&self) -> Option<&Event> {
        match &self.content {
            Content::Event(event) => Some(event),
            Content::Poison { .. } => None,
        }
    }
}

/// The body as text if it is what its format says: one complete JSON document in UTF-8, or a
/// form; else the bytes back and why.
fn body_text(body: Vec<u8>, format: BodyFormat) -> Result<String, (Vec<u8>, String)> {
    if format == BodyFormat::Form
        && let Err(why) = Form::check(&body)
    {
        return Err((body, why.to_string()));
    }
    let text = match String::from_utf8(body) {
        Ok(text) => text,
        Err(error) => {
            let why = format!("body is not valid UTF-8 (at byte {})", error.utf8_error().valid_up_to());
            return Err((error.into_bytes(), why));
        }
    };
    if format == BodyFormat::Form {
        return Ok(text);
    }
    match serde_json::from_str::<IgnoredAny>(&text) {
        Ok(_) => Ok(text),
        Err(error) => Err((text.into_bytes(), format!("body is not valid JSON: {error}"))),
    }
}

fn readable_retry_count(properties: &BasicProperties) -> u32 {
    properties
        .headers()
        .as_ref()
        .and_then(|headers| header_text(headers, header::RETRY_COUNT))
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn envelope(source: &str, id: &str) -> Envelope {
        Envelope {
            source: source.to_owned(),
            delivery_id: id.to_owned(),
            event_type: "push".to_owned(),
            received_at: Utc::now(),
            retry_count: 2,
            body_format: BodyFormat::Json,
        }
    }

    fn event(source: &str, id: &str) -> Message {
        Message::read(
            "k".to_owned(),
            envelope(source, id).properties(),
            br#"{"a":1}"#.to_vec(),
        )
    }

    #[test]
    fn a_well_formed_delivery_is_an_event_with_the_body_hash() {
        let message = event("stripe", "evt_1");
        let event = message.event().unwrap();
        assert_eq!(event.body, r#"{"a":1}"#);
        assert_eq!(event.sha256, hex::encode(Sha256::digest(br#"{"a":1}"#)));
        assert_eq!(message.retry_count(), 2);
    }

    #[test]
    fn a_form_delivery_is_an_event_when_its_body_is_a_form_and_poison_when_not() {
        let form = Envelope {
            body_format: BodyFormat::Form,
            ..envelope("slash", "t1")
        };
        let body = b"command=%2Fdeploy&text=prod&trigger_id=t1";
        let message = Message::read("k".to_owned(), form.properties(), body.to_vec());
        assert_eq!(message.event().unwrap().body.as_bytes(), body);
        assert_eq!(message.event().unwrap().envelope.body_format, BodyFormat::Form);

        let message = Message::read("k".to_owned(), form.properties(), b"text=caf\xe9".to_vec());
        match &message.content {
            Content::Poison { why, .. } => {
                assert_eq!(why, "body is not form-encoded: not valid UTF-8 (at byte 8)");
            }
            Content::Event(_) => panic!("a form body that is not UTF-8 is poison"),
        }
        assert_eq!(message.body(), b"text=caf\xe9");
    }

    #[test]
    fn a_delivery_without_headers_is_poison() {
        let message = Message::read("k".to_owned(), BasicProperties::default(), b"{}".to_vec());
        match &message.content {
            Content::Poison { why, retry_count, .. } => {
                assert_eq!(why, "missing headers");
                assert_eq!(*retry_count, 0);
            }
            Content::Event(_) => panic!("not poison"),
        }
        assert_eq!(message.body(), b"{}");
    }

    #[test]
    fn a_body_that_is_not_json_or_not_utf8_is_poison_and_kept_byte_for_byte() {
        for (body, why) in [
            (b"not json".to_vec(), "body is not valid JSON"),
            (b"{\"a\":1} trailing".to_vec(), "body is not valid JSON"),
            (b"\"\xff\"".to_vec(), "body is not valid UTF-8 (at byte 1)"),
            (Vec::new(), "body is not valid JSON"),
        ] {
            let message = Message::read("k".to_owned(), envelope("s", "1").properties(), body.clone());
            match &message.content {
                Content::Poison {
                    why: actual,
                    retry_count,
                    ..
                } => {
                    assert!(actual.starts_with(why), "{actual}");
                    assert_eq!(*retry_count, 2);
                }
                Content::Event(_) => panic!("not poison: {body:?}"),
            }
            assert_eq!(message.body(), body.as_slice());
        }
    }

    #[test]
    fn a_dead_letter_is_identified_by_its_envelope_or_whatever_poison_carries() {
        assert_eq!(
            event("stripe", "evt_1").identity(),
            ("stripe".to_owned(), "evt_1".to_owned(), "push".to_owned())
        );
        let bad_body = Message::read("k".to_owned(), envelope("shop", "d-1").properties(), b"{".to_vec());
        assert_eq!(
            bad_body.identity(),
            ("shop".to_owned(), "d-1".to_owned(), "push".to_owned())
        );
        let bare = Message::read("k".to_owned(), BasicProperties::default(), b"{}".to_vec());
        assert_eq!(bare.identity(), (UNKNOWN.to_owned(), String::new(), UNKNOWN.to_owned()));
    }

    #[test]
    fn any_json_value_is_an_event() {
        for body in ["[]", "3", "\"text\"", "null", " {\"nested\": {\"x\": [1, 2]}} "] {
            let message = Message::read("k".to_owned(), envelope("s", "1").properties(), body.into());
            assert!(message.event().is_some(), "{body}");
        }
    }
}
