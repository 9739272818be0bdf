//! Which event a request is: its delivery id and event type, read from the places its source
//! names, then the common headers and the body. Pure: no I/O.

use webhook_core::ids::{DeliveryId, EventType, InvalidName};
use webhook_core::payload::Parsed;
use webhook_core::signature::Headers;

use crate::sources::{Locator, Source};

/// Headers that carry a delivery id, in order of preference, when the source's own place has
/// none.
pub(crate) const DELIVERY_ID_HEADERS: [&str; 3] = ["X-GitHub-Delivery", "webhook-id", "Idempotency-Key"];
/// The header that carries the event type when the source's own place has none.
const EVENT_TYPE_HEADER: &str = "X-GitHub-Event";

/// The event a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// With the source, the event's unique key.
    pub(crate) delivery_id: DeliveryId,
    /// What happened.
    pub(crate) event_type: EventType,
}

/// The delivery id: the source's place, else the first of [`DELIVERY_ID_HEADERS`], else the
/// hex SHA-256 of the body. The event type: the source's place, else `X-GitHub-Event`, else the
/// body's own `type` or `event`, else `unknown`. A value that is found but is not a valid id or
/// type is the error.
pub(crate) fn identify(
    source: &Source,
    headers: &(impl Headers + ?Sized),
    parsed: &Parsed<'_>,
    body: &[u8],
) -> Result<Identity, InvalidName> {
    let delivery_id = match locate(source.delivery_id.as_ref(), headers, parsed).or_else(|| {
        DELIVERY_ID_HEADERS
            .iter()
            .find_map(|name| headers.get(name))
            .map(str::to_owned)
    }) {
        Some(id) => DeliveryId::parse(&id)?,
        None => DeliveryId::of_body(body),
    };
    let event_type = match locate(source.event_type.as_ref(), headers, parsed)
        .or_else(|| headers.get(EVENT_TYPE_HEADER).map(str::to_owned))
        .or_else(|| parsed.event_type())
    {
        Some(event_type) => EventType::parse(&event_type)?,
        None => EventType::unknown(),
    };
    Ok(Identity {
        delivery_id,
        event_type,
    })
}

/// The text at `locator`: a header, a form field, or a JSON string or number.
fn locate(locator: Option<&Locator>, headers: &(impl Headers + ?Sized), parsed: &Parsed<'_>) -> Option<String> {
    match (locator?, parsed) {
        (Locator::Header(name), _) => headers.get(name).map(str::to_owned),
        (Locator::Json(pointer), Parsed::Json(json)) => {
            match serde_json::from_str::<serde_json::Value>(json.get(pointer)?.get()).ok()? {
                serde_json::Value::String(text) => Some(text),
                serde_json::Value::Number(number) => Some(number.to_string()),
                _ => None,
            }
        }
        (Locator::Form(name), Parsed::Form(form)) => form.get(name).map(str::to_owned),
        (Locator::Json(_) | Locator::Form(_), _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webhook_core::config::Secret;
    use webhook_core::payload::{Form, read_json};
    use webhook_core::signature::Scheme;

    fn source(delivery_id: Option<Locator>, event_type: Option<Locator>) -> Source {
        Source {
            delivery_id,
            event_type,
            ..Source::default_with(Secret::new("s"))
        }
    }

    fn identify_json(source: &Source, headers: &[(&str, &str)], body: &[u8]) -> Result<(String, String), InvalidName> {
        let parsed = Parsed::Json(read_json(body, &source.json_pointers()).unwrap());
        identify(source, headers, &parsed, body)
            .map(|identity| (identity.delivery_id.into_string(), identity.event_type.into_string()))
    }

    #[test]
    fn the_sources_places_come_first() {
        let stripe = Source {
            scheme: Scheme::STRIPE,
            ..source(Some(Locator::Json("/id".into())), Some(Locator::Json("/type".into())))
        };
        let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
        assert_eq!(
            identify_json(&stripe, &[("X-GitHub-Delivery", "g"), ("X-GitHub-Event", "h")], body),
            Ok(("evt_1".into(), "charge.succeeded".into()))
        );
        let numbered = source(Some(Locator::Json("/n".into())), Some(Locator::Header("X-Kind".into())));
        assert_eq!(
            identify_json(&numbered, &[("x-kind", "order")], br#"{"n":42}"#),
            Ok(("42".into(), "order".into()))
        );
    }

    #[test]
    fn without_the_sources_places_the_common_headers_then_the_body_decide() {
        let plain = source(None, None);
        type Case<'a> = (&'a [u8], &'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: [Case<'_>; 4] = [
            (br#"{"type":"t1","event":"e1"}"#, &[("webhook-id", "w1")], "w1", "t1"),
            (br#"{"event":"e2"}"#, &[("Idempotency-Key", "k2")], "k2", "e2"),
            (
                br#"{"type":"t3"}"#,
                &[
                    ("X-GitHub-Delivery", "g3"),
                    ("webhook-id", "w3"),
                    ("X-GitHub-Event", "h3"),
                ],
                "g3",
                "h3",
            ),
            (
                b"[1,2,3]",
                &[],
                "a615eeaee21de5179de080de8c3052c8da901138406ba71c38c032845f7d54f4",
                "unknown",
            ),
        ];
        for (body, headers, id, event_type) in cases {
            assert_eq!(
                identify_json(&plain, headers, body),
                Ok((id.to_owned(), event_type.to_owned())),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(DeliveryId::of_body(b"[1,2,3]").as_str(), cases[3].2);
    }

    #[test]
    fn a_value_that_is_found_but_invalid_is_the_error() {
        let plain = source(None, None);
        let long = "i".repeat(201);
        assert_eq!(
            identify_json(&plain, &[("X-GitHub-Delivery", &long)], b"{}")
                .unwrap_err()
                .to_string(),
            "delivery id is longer than 200 bytes"
        );
        assert_eq!(
            identify_json(&plain, &[("X-GitHub-Event", "a\tb")], b"{}")
                .unwrap_err()
                .to_string(),
            "event type contains control characters"
        );
        let stripe = source(Some(Locator::Json("/id".into())), None);
        assert_eq!(
            identify_json(&stripe, &[], br#"{"id":"evt_1 "}"#)
                .unwrap_err()
                .to_string(),
            "delivery id ends with a space"
        );
    }

    #[test]
    fn form_sources_read_their_fields() {
        let slash = source(
            Some(Locator::Form("trigger_id".into())),
            Some(Locator::Form("command".into())),
        );
        let body = b"command=%2Fdeploy&trigger_id=t-1";
        let parsed = Parsed::Form(Form::parse(body).unwrap());
        let identity = identify(&slash, &[][..], &parsed, body).unwrap();
        assert_eq!(
            (identity.delivery_id.as_str(), identity.event_type.as_str()),
            ("t-1", "/deploy")
        );
    }
}
