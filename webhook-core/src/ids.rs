//! The three names every event carries, as types that can only hold valid values:
//! [`SourceName`], [`DeliveryId`] and [`EventType`].
//!
//! Each has a `parse` that says exactly what is wrong with a bad value; once parsed, a value is
//! safe everywhere it goes (a routing key, an AMQP short string, a unique key in MySQL). They
//! read as `&str` (`as_str`, `Deref`, `AsRef`, `Display`), so code that only reads them needs no
//! change.

use std::fmt;
use std::ops::Deref;

use sha2::{Digest, Sha256};

/// Longest accepted delivery id, in bytes.
pub const MAX_DELIVERY_ID_BYTES: usize = 200;
/// Longest accepted event type, in bytes.
pub const MAX_EVENT_TYPE_BYTES: usize = 128;
/// Longest accepted source name, in bytes.
pub const MAX_SOURCE_BYTES: usize = 64;

/// Why a value is not a valid name: `delivery id is longer than 200 bytes` and the like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} {why}")]
pub struct InvalidName {
    what: &'static str,
    why: &'static str,
}

impl InvalidName {
    /// What was wrong, without the name of the kind of value (`is empty`, …).
    pub fn why(&self) -> &'static str {
        self.why
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The value as an owned `String`.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// Shown as the string it holds (quoted and escaped), as a `String` would be.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidName;

            fn from_str(text: &str) -> Result<Self, InvalidName> {
                Self::parse(text)
            }
        }
    };
}

name_type! {
    /// A source (vendor) name: `[a-z0-9_-]{1,64}`, the `{source}` of `POST /webhooks/{source}`.
    SourceName
}

name_type! {
    /// A vendor's id for one delivery: 1 to 200 bytes of UTF-8, no control characters, no
    /// trailing space. With the source it is the event's unique key.
    DeliveryId
}

name_type! {
    /// An event type such as `push` or `charge.succeeded`: 1 to 128 bytes of UTF-8, no control
    /// characters.
    EventType
}

impl SourceName {
    /// Checks a source name: `[a-z0-9_-]{1,64}`.
    pub fn parse(name: &str) -> Result<Self, InvalidName> {
        let fail = |why| {
            Err(InvalidName {
                what: "source name",
                why,
            })
        };
        if name.is_empty() {
            fail("is empty")
        } else if name.len() > MAX_SOURCE_BYTES {
            fail("is longer than 64 bytes")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            fail("has characters other than a-z, 0-9, '_' and '-'")
        } else {
            Ok(Self(name.to_owned()))
        }
    }
}

impl DeliveryId {
    /// Checks a delivery id: 1 to 200 bytes, no control characters, no trailing space.
    ///
    /// The unique key compares ids the way MySQL's PAD SPACE collations do, so `"a"` and `"a "`
    /// would be the same event: an id that ends in a space is refused rather than stored as a
    /// duplicate of another.
    pub fn parse(id: &str) -> Result<Self, InvalidName> {
        let fail = |why| {
            Err(InvalidName {
                what: "delivery id",
                why,
            })
        };
        if id.is_empty() {
            fail("is empty")
        } else if id.len() > MAX_DELIVERY_ID_BYTES {
            fail("is longer than 200 bytes")
        } else if id.chars().any(char::is_control) {
            fail("contains control characters")
        } else if id.ends_with(' ') {
            fail("ends with a space")
        } else {
            Ok(Self(id.to_owned()))
        }
    }

    /// The id of a delivery identified by its body: the hex SHA-256 of the body, so a vendor
    /// resending the same body is still stored once.
    pub fn of_body(body: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(body)))
    }

    /// A new id for a delivery of a vendor that sends none (a random UUID): every such
    /// delivery is an event of its own.
    pub fn generated() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

impl EventType {
    /// The event type of an event that names none.
    pub fn unknown() -> Self {
        Self("unknown".to_owned())
    }

    /// Checks an event type: 1 to 128 bytes, no control characters.
    pub fn parse(event_type: &str) -> Result<Self, InvalidName> {
        let fail = |why| {
            Err(InvalidName {
                what: "event type",
                why,
            })
        };
        if event_type.is_empty() {
            fail("is empty")
        } else if event_type.len() > MAX_EVENT_TYPE_BYTES {
            fail("is longer than 128 bytes")
        } else if event_type.chars().any(char::is_control) {
            fail("contains control characters")
        } else {
            Ok(Self(event_type.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_follow_the_documented_pattern() {
        for good in ["default", "stripe", "shop-1", "a_b", &"x".repeat(64)] {
            assert!(SourceName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Stripe", "a.b", "a b", "ä", &"x".repeat(65)] {
            assert!(SourceName::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            SourceName::parse("Shop").unwrap_err().to_string(),
            "source name has characters other than a-z, 0-9, '_' and '-'"
        );
    }

    #[test]
    fn delivery_ids_are_bounded_and_printable() {
        assert!(DeliveryId::parse("72d3162e-cc78-11e3-81ab-4c9367dc0958").is_ok());
        assert!(DeliveryId::parse(&"x".repeat(200)).is_ok());
        assert!(DeliveryId::parse("café-1").is_ok());
        assert_eq!(
            DeliveryId::parse(&"x".repeat(201)).unwrap_err().to_string(),
            "delivery id is longer than 200 bytes"
        );
        assert_eq!(
            DeliveryId::parse("a\nb").unwrap_err().to_string(),
            "delivery id contains control characters"
        );
        assert_eq!(DeliveryId::parse("").unwrap_err().to_string(), "delivery id is empty");
        assert_eq!(
            DeliveryId::parse("a ").unwrap_err().to_string(),
            "delivery id ends with a space"
        );
        assert!(DeliveryId::parse(" a").is_ok());
    }

    #[test]
    fn event_types_are_bounded_and_printable() {
        assert!(EventType::parse("orders/paid").is_ok());
        assert!(EventType::parse(&"t".repeat(128)).is_ok());
        assert_eq!(
            EventType::parse(&"t".repeat(129)).unwrap_err().to_string(),
            "event type is longer than 128 bytes"
        );
        assert_eq!(
            EventType::parse("a\u{7f}").unwrap_err().to_string(),
            "event type contains control characters"
        );
        assert_eq!(EventType::parse("").unwrap_err().why(), "is empty");
        assert_eq!(EventType::unknown(), "unknown");
    }

    #[test]
    fn the_body_id_is_the_hex_sha256_of_the_body() {
        // printf '%s' '{}' | sha256sum
        assert_eq!(
            DeliveryId::of_body(b"{}"),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn generated_ids_are_valid_and_new_each_time() {
        let (one, two) = (DeliveryId::generated(), DeliveryId::generated());
        assert_ne!(one, two);
        assert_eq!(DeliveryId::parse(&one).as_ref(), Ok(&one));
        assert_eq!(one.len(), 36);
    }

    #[test]
    fn names_read_as_the_text_they_hold() {
        let id = DeliveryId::parse("evt_\"1\"").unwrap();
        assert_eq!(id.as_str(), "evt_\"1\"");
        assert_eq!(&*id, "evt_\"1\"");
        assert_eq!(id.to_string(), "evt_\"1\"");
        assert_eq!(format!("{id:?}"), format!("{:?}", "evt_\"1\""));
        assert_eq!(String::from(id.clone()), id.into_string());
        assert_eq!("push".parse::<EventType>().unwrap(), "push");
    }

    proptest::proptest! {
        #[test]
        fn what_parses_keeps_its_text_and_what_does_not_says_why(text in "\\PC{0,210}|.{0,10}") {
            match DeliveryId::parse(&text) {
                Ok(id) => proptest::prop_assert_eq!(id.as_str(), text.as_str()),
                Err(error) => proptest::prop_assert!(error.to_string().starts_with("delivery id ")),
            }
            match EventType::parse(&text) {
                Ok(event_type) => proptest::prop_assert!(event_type.len() <= MAX_EVENT_TYPE_BYTES),
                Err(error) => proptest::prop_assert!(error.to_string().starts_with("event type ")),
            }
        }
    }
}
