//! Which event a request is: its delivery id and event type. Pure: no I/O.
//!
//! Each source says how its events are told apart ([`Identity`]): the vendor's id at a place
//! (a header, a JSON pointer, a form field), the body hash, or none (every delivery a new
//! event). An id that should be there and is not, or is there and cannot be used, is an error
//! that names where it looked, never a silent fallback to something else. Values are read as
//! UTF-8 wherever they come from, headers included.

use serde_json::value::RawValue;
use webhook_core::ids::{DeliveryId, EventType};
use webhook_core::payload::Parsed;
use webhook_core::signature::Headers;

use crate::sources::{Identity, Locator, Source};

/// Headers delivery ids are commonly sent in: what a rejection record shows as the claimed id
/// when the source's id is not in a header of its own.
pub const DELIVERY_ID_HEADERS: [&str; 3] = ["X-GitHub-Delivery", "webhook-id", "Idempotency-Key"];
/// The header that carries the event type when the source's own place has none.
const EVENT_TYPE_HEADER: &str = "X-GitHub-Event";

/// The event a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identified {
    /// With the source, the event's unique key.
    pub delivery_id: DeliveryId,
    /// What happened.
    pub event_type: EventType,
}

/// Why a request's event cannot be told: each a 400 with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unidentified {
    /// The source's id is not where the source says it is.
    #[error("delivery id missing: no {0}")]
    NoDeliveryId(String),
    /// A delivery id that is there but cannot be used.
    #[error("{0}")]
    BadDeliveryId(String),
    /// An event type that is there but cannot be used.
    #[error("{0}")]
    BadEventType(String),
}

impl Unidentified {
    /// A bounded label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NoDeliveryId(_) => "delivery_id_missing",
            Self::BadDeliveryId(_) => "delivery_id_invalid",
            Self::BadEventType(_) => "event_type_invalid",
        }
    }
}

/// The delivery id as the source's [`Identity`] says; the event type from the source's place,
/// else `X-GitHub-Event`, else the body's own top-level `type` or `event` string, else
/// `unknown`. A value found at the source's place (or in `X-GitHub-Event`) that cannot be used
/// is an error, not a reason to look elsewhere.
pub fn identify(
    source: &Source,
    headers: &(impl Headers + ?Sized),
    parsed: &Parsed<'_>,
    body: &[u8],
) -> Result<Identified, Unidentified> {
    let delivery_id = match &source.delivery_id {
        Identity::At(locator) => {
            let text = read(locator, headers, parsed)
                .map_err(|why| Unidentified::BadDeliveryId(format!("delivery id in {locator} {why}")))?
                .ok_or_else(|| Unidentified::NoDeliveryId(locator.to_string()))?;
            DeliveryId::parse(&text).map_err(|why| Unidentified::BadDeliveryId(why.to_string()))?
        }
        Identity::BodyHash => DeliveryId::of_body(body),
        Identity::None => DeliveryId::generated(),
    };
    let fallback = Locator::Header(EVENT_TYPE_HEADER.to_owned());
    let mut event_type = None;
    for locator in source.event_type.iter().chain([&fallback]) {
        event_type = read(locator, headers, parsed)
            .map_err(|why| Unidentified::BadEventType(format!("event type in {locator} {why}")))?;
        if event_type.is_some() {
            break;
        }
    }
    let event_type = match event_type.or_else(|| parsed.event_type()) {
        Some(text) => EventType::parse(&text).map_err(|why| Unidentified::BadEventType(why.to_string()))?,
        None => EventType::unknown(),
    };
    Ok(Identified {
        delivery_id,
        event_type,
    })
}

/// The text at `locator`: `Ok(None)` when nothing is there, an error (`is not UTF-8` and the
/// like) when something is there that is not text.
fn read(
    locator: &Locator,
    headers: &(impl Headers + ?Sized),
    parsed: &Parsed<'_>,
) -> Result<Option<String>, &'static str> {
    match (locator, parsed) {
        (Locator::Header(name), _) => match headers.raw(name) {
            None => Ok(None),
            Some(bytes) => std::str::from_utf8(bytes)
                .map(|text| Some(text.to_owned()))
                .map_err(|_| "is not UTF-8"),
        },
        (Locator::Json(pointer), Parsed::Json(json)) => json.get(pointer).map(json_text).transpose(),
        (Locator::Form(name), Parsed::Form(form)) => Ok(form.get(name).map(str::to_owned)),
        // The sources file pairs JSON pointers with JSON bodies and form fields with forms.
        (Locator::Json(_) | Locator::Form(_), _) => Ok(None),
    }
}

/// A JSON string, or an integer as its decimal text; anything else cannot be an id or a type.
fn json_text(raw: &RawValue) -> Result<String, &'static str> {
    let text = raw.get();
    if text.starts_with('"') {
        // The body was read in full already, so this string is readable text.
        serde_json::from_str::<String>(text).map_err(|_| "is not a readable string")
    } else if !text.is_empty() && text.trim_start_matches('-').bytes().all(|byte| byte.is_ascii_digit()) {
        Ok(text.to_owned())
    } else {
        Err("is not a string or an integer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webhook_core::config::Secret;
    use webhook_core::payload::{Form, read_json};

    fn source(delivery_id: Identity, event_type: Option<Locator>) -> Source {
        let mut source = Source::default_with(Secret::new("s"));
        source.config.delivery_id = delivery_id;
        source.config.event_type = event_type;
        source
    }

    fn at_json(pointer: &str) -> Identity {
        Identity::At(Locator::Json(pointer.to_owned()))
    }

    fn at_header(name: &str) -> Identity {
        Identity::At(Locator::Header(name.to_owned()))
    }

    /// Headers whose values are any bytes.
    struct Raw<'a>(&'a [(&'a str, &'a [u8])]);

    impl Headers for Raw<'_> {
        fn raw(&self, name: &str) -> Option<&[u8]> {
            self.0
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| *value)
        }
    }

    fn identify_json(source: &Source, headers: &[(&str, &str)], body: &[u8]) -> Result<(String, String), String> {
        let parsed = Parsed::Json(read_json(body, &source.json_pointers()).unwrap());
        identify(source, headers, &parsed, body)
            .map(|found| (found.delivery_id.into_string(), found.event_type.into_string()))
            .map_err(|error| error.to_string())
    }

    #[test]
    fn the_sources_places_decide() {
        let stripe = source(at_json("/id"), Some(Locator::Json("/type".into())));
        let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
        assert_eq!(
            identify_json(&stripe, &[("X-GitHub-Delivery", "g"), ("X-GitHub-Event", "h")], body),
            Ok(("evt_1".into(), "charge.succeeded".into()))
        );
        let numbered = source(at_json("/n"), Some(Locator::Header("X-Kind".into())));
        assert_eq!(
            identify_json(&numbered, &[("x-kind", "order")], br#"{"n":-42}"#),
            Ok(("-42".into(), "order".into()))
        );
    }

    #[test]
    fn without_a_type_at_its_place_the_event_type_falls_back_to_the_header_then_the_body() {
        let plain = source(at_header("X-Id"), Some(Locator::Json("/kind".into())));
        type Case<'a> = (&'a [u8], &'a [(&'a str, &'a str)], &'a str);
        let cases: [Case<'_>; 4] = [
            (br#"{"kind":"k","type":"t"}"#, &[("X-GitHub-Event", "h")], "k"),
            (br#"{"type":"t1","event":"e1"}"#, &[("X-GitHub-Event", "h")], "h"),
            (br#"{"type":7,"event":"e2"}"#, &[], "e2"),
            (b"[1,2,3]", &[], "unknown"),
        ];
        for (body, headers, event_type) in cases {
            let mut headers = headers.to_vec();
            headers.push(("X-Id", "d"));
            assert_eq!(
                identify_json(&plain, &headers, body),
                Ok(("d".to_owned(), event_type.to_owned())),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_source_with_a_place_for_its_id_refuses_a_request_without_one() {
        let github = source(at_header("X-GitHub-Delivery"), None);
        assert_eq!(
            identify_json(&github, &[("webhook-id", "w"), ("Idempotency-Key", "k")], b"{}"),
            Err("delivery id missing: no header X-GitHub-Delivery".to_owned())
        );
        let stripe = source(at_json("/id"), None);
        assert_eq!(
            identify_json(&stripe, &[], br#"{"object":{"id":"x"}}"#),
            Err("delivery id missing: no /id in the body".to_owned())
        );
        let slash = source(Identity::At(Locator::Form("trigger_id".into())), None);
        let parsed = Parsed::Form(Form::parse(b"command=%2Fdeploy").unwrap());
        assert_eq!(
            identify(&slash, &[][..], &parsed, b"command=%2Fdeploy"),
            Err(Unidentified::NoDeliveryId("form field trigger_id".to_owned()))
        );
    }

    #[test]
    fn an_id_that_is_there_but_unusable_is_refused_with_where_it_was() {
        let stripe = source(at_json("/id"), None);
        for (body, error) in [
            (
                &br#"{"id":{"v":1}}"#[..],
                "delivery id in /id in the body is not a string or an integer",
            ),
            (
                br#"{"id":1.5}"#,
                "delivery id in /id in the body is not a string or an integer",
            ),
            (
                br#"{"id":null}"#,
                "delivery id in /id in the body is not a string or an integer",
            ),
            (br#"{"id":"evt_1 "}"#, "delivery id ends with a space"),
            (br#"{"id":""}"#, "delivery id is empty"),
        ] {
            assert_eq!(
                identify_json(&stripe, &[], body),
                Err(error.to_owned()),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let long = "i".repeat(201);
        let github = source(at_header("X-GitHub-Delivery"), None);
        assert_eq!(
            identify_json(&github, &[("X-GitHub-Delivery", &long)], b"{}"),
            Err("delivery id is longer than 200 bytes".to_owned())
        );
        assert_eq!(
            identify_json(
                &github,
                &[("X-GitHub-Delivery", "d"), ("X-GitHub-Event", "a\tb")],
                b"{}"
            ),
            Err("event type contains control characters".to_owned())
        );
        let typed = source(at_header("X-GitHub-Delivery"), Some(Locator::Json("/type".into())));
        assert_eq!(
            identify_json(&typed, &[("X-GitHub-Delivery", "d")], br#"{"type":["a"]}"#),
            Err("event type in /type in the body is not a string or an integer".to_owned())
        );
    }

    #[test]
    fn header_values_are_read_as_utf8() {
        let github = source(at_header("X-GitHub-Delivery"), None);
        let parsed = Parsed::Json(read_json(b"{}", &[]).unwrap());
        let with = |id: &'static [u8], event: &'static [u8]| {
            let pairs: [(&str, &[u8]); 2] = [("X-GitHub-Delivery", id), ("X-GitHub-Event", event)];
            identify(&github, &Raw(&pairs), &parsed, b"{}")
                .map(|found| (found.delivery_id.into_string(), found.event_type.into_string()))
        };
        assert_eq!(
            with("café-1".as_bytes(), "bestellung/bezahlt".as_bytes()),
            Ok(("café-1".to_owned(), "bestellung/bezahlt".to_owned()))
        );
        assert_eq!(with("café-2".as_bytes(), b"push").unwrap().0, "café-2");
        assert_eq!(
            with(b"caf\xe9-1", b"push").unwrap_err().to_string(),
            "delivery id in header X-GitHub-Delivery is not UTF-8"
        );
        assert_eq!(
            with(b"d", b"caf\xe9").unwrap_err().to_string(),
            "event type in header X-GitHub-Event is not UTF-8"
        );
    }

    #[test]
    fn a_body_hash_source_and_a_source_without_ids_need_nothing_from_the_request() {
        let body = b"[1,2,3]";
        let hashed = source(Identity::BodyHash, None);
        assert_eq!(
            identify_json(&hashed, &[("X-GitHub-Delivery", "ignored")], body),
            Ok((DeliveryId::of_body(body).into_string(), "unknown".to_owned()))
        );
        let fresh = source(Identity::None, None);
        let (one, _) = identify_json(&fresh, &[], body).unwrap();
        let (two, _) = identify_json(&fresh, &[], body).unwrap();
        assert_ne!(one, two, "every delivery is a new event");
        assert!(DeliveryId::parse(&one).is_ok());
    }

    #[test]
    fn form_sources_read_their_fields() {
        let slash = source(
            Identity::At(Locator::Form("trigger_id".into())),
            Some(Locator::Form("command".into())),
        );
        let body = b"command=%2Fdeploy&trigger_id=t-1";
        let parsed = Parsed::Form(Form::parse(body).unwrap());
        let found = identify(&slash, &[][..], &parsed, body).unwrap();
        assert_eq!(
            (found.delivery_id.as_str(), found.event_type.as_str()),
            ("t-1", "/deploy")
        );
    }
}
