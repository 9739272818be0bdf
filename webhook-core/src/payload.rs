//! Reading a webhook body as JSON in one pass, without building a tree.
//!
//! The handler needs to know that a body is JSON and, when no header names the event type, its
//! top-level `type` or `event` string. [`inspect`] validates the whole document and keeps only
//! those two fields; any JSON value (object, array, string, …) is accepted.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

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
