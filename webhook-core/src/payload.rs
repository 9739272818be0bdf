//! Reading a webhook body: JSON in one pass without building a tree, or form-encoded.
//!
//! The handler needs to know that a body is JSON and, when no header names the event type, its
//! top-level `type` or `event` string. [`inspect`] validates the whole document and keeps only
//! those two fields; any JSON value (object, array, string, …) is accepted.
//!
//! Some vendors post `application/x-www-form-urlencoded` bodies instead (Slack's slash
//! commands, for one). [`Form::parse`] checks such a body strictly and decodes its fields.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// How a source's bodies are encoded; it travels as the message's content type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON document in UTF-8.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

impl BodyFormat {
    /// Its name in a sources file: `json` or `form`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Form => "form",
        }
    }

    /// The content type of messages carrying such a body.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Form => "application/x-www-form-urlencoded",
        }
    }

    /// The format a message's content type names; no content type means JSON. `None` for any
    /// other content type.
    pub fn from_content_type(content_type: Option<&str>) -> Option<Self> {
        let Some(content_type) = content_type else {
            return Some(Self::Json);
        };
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        [Self::Json, Self::Form]
            .into_iter()
            .find(|format| essence.eq_ignore_ascii_case(format.content_type()))
    }
}

impl std::str::FromStr for BodyFormat {
    type Err = ();

    fn from_str(name: &str) -> Result<Self, ()> {
        [Self::Json, Self::Form]
            .into_iter()
            .find(|format| format.name() == name)
            .ok_or(())
    }
}

/// Why a body is not accepted as form-encoded.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotForm {
    /// Form bodies are stored as text; this one is not UTF-8.
    #[error("body is not form-encoded: not valid UTF-8 (at byte {0})")]
    NotUtf8(usize),
    /// Nothing but separators.
    #[error("body is not form-encoded: it has no fields")]
    Empty,
}

/// The fields of an `application/x-www-form-urlencoded` body, decoded, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Reads a form body the way browsers do (the WHATWG `application/x-www-form-urlencoded`
    /// parser): `&`-separated pairs, `+` for space, percent-escapes decoded; a pair without `=`
    /// is a name with an empty value and a stray `%` stays as it is. A signed body is not
    /// refused for being loosely encoded: only a body that is not UTF-8 (it is stored as
    /// text) or has no field at all is.
    pub fn parse(body: &[u8]) -> Result<Self, NotForm> {
        Self::check(body)?;
        Ok(Self(
            form_urlencoded::parse(body)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        ))
    }

    /// What [`Form::parse`] checks, without decoding anything: the body is UTF-8 and has a
    /// field (a `&`-separated part that is not empty).
    pub fn check(body: &[u8]) -> Result<(), NotForm> {
        let text = std::str::from_utf8(body).map_err(|error| NotForm::NotUtf8(error.valid_up_to()))?;
        if text.split('&').all(str::is_empty) {
            return Err(NotForm::Empty);
        }
        Ok(())
    }

    /// The value of the first field called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// The event type a form names: its `type` field, else `event`.
    pub fn event_type(&self) -> Option<&str> {
        self.get("type").or_else(|| self.get("event"))
    }
}

/// The top-level fields of a JSON body that matter before it is stored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// The top-level `"type"` string, if the body is an object with one.
    pub r#type: Option<String>,
    /// The top-level `"event"` string, if the body is an object with one.
    pub event: Option<String>,
}

impl Inspected {
    /// The event type a JSON body names: `type`, else `event`.
    pub fn event_type(&self) -> Option<&str> {
        self.r#type.as_deref().or(self.event.as_deref())
    }
}

/// Why a body is not accepted as JSON.
#[derive(Debug, thiserror::Error)]
pub enum NotJson {
    /// JSON is UTF-8; this body is not.
    #[error("body is not valid UTF-8 (at byte {})", .0.valid_up_to())]
    NotUtf8(std::str::Utf8Error),
    /// Not one complete JSON document.
    #[error("body is not valid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
}

/// Checks that `body` is one complete JSON document in UTF-8 and picks out its top-level `type`
/// and `event` strings.
pub fn inspect(body: &[u8]) -> Result<Inspected, NotJson> {
    // serde_json skips over ignored strings without checking their UTF-8, so check it first.
    let text = std::str::from_utf8(body).map_err(NotJson::NotUtf8)?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let inspected = TopLevel::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(inspected.0)
}

struct TopLevel(Inspected);

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopLevelVisitor).map(TopLevel)
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = Inspected;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Inspected, A::Error> {
        let mut inspected = Inspected::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Type => inspected.r#type = map.next_value_seed(StringOrNothing)?,
                Key::Event => inspected.event = map.next_value_seed(StringOrNothing)?,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(inspected)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Inspected, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Inspected::default())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Inspected, E> {
        Ok(Inspected::default())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Inspected, E> {
        Ok(Inspected::default())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Inspected, E> {
        Ok(Inspected::default())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Inspected, E> {
        Ok(Inspected::default())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Inspected, E> {
        Ok(Inspected::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Inspected, E> {
        Ok(Inspected::default())
    }
}

enum Key {
    Type,
    Event,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "type" => Key::Type,
                    "event" => Key::Event,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A value kept only when it is a string.
struct StringOrNothing;

impl<'de> DeserializeSeed<'de> for StringOrNothing {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<String>, D::Error> {
        struct StringVisitor;
        impl<'de> Visitor<'de> for StringVisitor {
            type Value = Option<String>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Option<String>, E> {
                Ok(Some(value.to_owned()))
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<String>, E> {
                Ok(None)
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Option<String>, E> {
                Ok(None)
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Option<String>, E> {
                Ok(None)
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<String>, E> {
                Ok(None)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
                Ok(None)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(None)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(None)
            }
        }
        deserializer.deserialize_any(StringVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_give_their_top_level_type_and_event() {
        let inspected = inspect(br#"{"data":{"type":"inner"},"type":"sale.completed","event":"x"}"#).unwrap();
        assert_eq!(inspected.r#type.as_deref(), Some("sale.completed"));
        assert_eq!(inspected.event.as_deref(), Some("x"));
        assert_eq!(inspected.event_type(), Some("sale.completed"));
    }

    #[test]
    fn event_is_used_when_type_is_absent_or_not_a_string() {
        let inspected = inspect(br#"{"type":42,"event":"push"}"#).unwrap();
        assert_eq!(inspected.event_type(), Some("push"));
        let inspected = inspect(br#"{"type":{"a":[1,2]},"event":["push"]}"#).unwrap();
        assert_eq!(inspected.event_type(), None);
    }

    #[test]
    fn escaped_keys_and_values_are_read() {
        let inspected = inspect(br#"{"typ\u0065":"caf\u00e9"}"#).unwrap();
        assert_eq!(inspected.event_type(), Some("café"));
    }

    #[test]
    fn any_json_value_is_accepted() {
        for body in [&b"[1,2,{}]"[..], b"\"text\"", b"12.5", b"null", b"true", b" {} "] {
            assert!(inspect(body).is_ok(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn slash_command_forms_are_decoded() {
        // The example body of Slack's "verifying requests" documentation.
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let form = Form::parse(body).unwrap();
        assert_eq!(form.get("command"), Some("/webhook-collect"));
        assert_eq!(form.get("text"), Some(""));
        assert_eq!(
            form.get("response_url"),
            Some("https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN")
        );
        assert_eq!(form.get("missing"), None);
    }

    #[test]
    fn form_fields_decode_plus_escapes_and_utf8_and_skip_empty_pairs() {
        let form = Form::parse("a=1+2%2B3&&type=caf%C3%A9&event=x&a=second&".as_bytes()).unwrap();
        assert_eq!(form.get("a"), Some("1 2+3"));
        assert_eq!(form.event_type(), Some("café"));
        assert_eq!(Form::parse(b"event=push").unwrap().event_type(), Some("push"));
    }

    #[test]
    fn loosely_encoded_forms_are_read_as_browsers_read_them() {
        let form = Form::parse(b"flag&=anonymous&pct=100%&legacy=caf%E9&json={\"a\":1}").unwrap();
        assert_eq!(form.get("flag"), Some(""));
        assert_eq!(form.get(""), Some("anonymous"));
        assert_eq!(form.get("pct"), Some("100%"));
        assert_eq!(form.get("legacy"), Some("caf\u{fffd}"));
        assert_eq!(form.get("json"), Some("{\"a\":1}"));
    }

    #[test]
    fn only_bodies_that_are_not_utf8_or_have_no_field_are_refused() {
        assert_eq!(Form::parse(b""), Err(NotForm::Empty));
        assert_eq!(Form::parse(b"&&"), Err(NotForm::Empty));
        assert_eq!(Form::parse(b"a=\xff"), Err(NotForm::NotUtf8(2)));
        assert_eq!(
            NotForm::NotUtf8(2).to_string(),
            "body is not form-encoded: not valid UTF-8 (at byte 2)"
        );
    }

    proptest::proptest! {
        #[test]
        fn form_parsing_never_panics_and_keeps_what_it_reads(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
        ) {
            match Form::parse(&body) {
                Ok(form) => proptest::prop_assert!(!form.0.is_empty() && std::str::from_utf8(&body).is_ok()),
                Err(NotForm::NotUtf8(at)) => proptest::prop_assert!(std::str::from_utf8(&body[..at]).is_ok()),
                Err(NotForm::Empty) => proptest::prop_assert!(body.iter().all(|byte| *byte == b'&')),
            }
        }

        #[test]
        fn encoded_fields_decode_to_what_was_encoded(name in ".{1,12}", value in ".{0,24}") {
            let body = format!("{}={}", encode(&name), encode(&value));
            let form = Form::parse(body.as_bytes()).unwrap();
            proptest::prop_assert_eq!(form.get(&name), Some(value.as_str()));
        }
    }

    /// Percent-encodes every byte but ASCII letters and digits, space as `+`.
    fn encode(text: &str) -> String {
        text.bytes()
            .map(|byte| match byte {
                b' ' => "+".to_owned(),
                byte if byte.is_ascii_alphanumeric() => char::from(byte).to_string(),
                byte => format!("%{byte:02X}"),
            })
            .collect()
    }

    #[test]
    fn body_formats_travel_as_content_types() {
        for format in [BodyFormat::Json, BodyFormat::Form] {
            assert_eq!(BodyFormat::from_content_type(Some(format.content_type())), Some(format));
            assert_eq!(format.name().parse(), Ok(format));
        }
        assert_eq!(BodyFormat::from_content_type(None), Some(BodyFormat::Json));
        assert_eq!(
            BodyFormat::from_content_type(Some("application/x-www-form-urlencoded; charset=utf-8")),
            Some(BodyFormat::Form)
        );
        assert_eq!(BodyFormat::from_content_type(Some("text/plain")), None);
        assert_eq!("xml".parse::<BodyFormat>(), Err(()));
    }

    #[test]
    fn anything_that_is_not_one_json_document_is_refused() {
        for body in [
            &b""[..],
            b"Hello, World!",
            b"{\"a\":1",
            b"{\"a\":1} {}",
            b"{\"a\":1}x",
            b"\xff\xfe",
            b"{\"a\":\"\xff\"}",
        ] {
            assert!(inspect(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
