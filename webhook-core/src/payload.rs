//! Reading a webhook body: JSON in one pass without building a tree, or form-encoded.
//!
//! The handler needs to know that a body is JSON and a few values in it: the top-level `type`
//! or `event` (the event type when no header names one) and whatever its source's JSON pointers
//! point at (the delivery id, the event type, a handshake's challenge). [`read_json`] checks the
//! whole document in one pass and keeps only those values, as raw JSON text borrowed from the
//! body; any JSON value (object, array, string, …) is accepted.
//!
//! What is JSON here is one definition for the handler and the consumer's processors: a
//! document `serde_json` reads in full (every string readable text, a lone surrogate is not;
//! every number within `f64`), nested at most [`MAX_JSON_DEPTH`] deep, with no number longer
//! than [`MAX_JSON_NUMBER_CHARS`]. [`read_json`] (the handler) and [`parse_json`] (the
//! processors) both apply it, so a body the handler answers 200 is one the processors can read.
//!
//! Some vendors post `application/x-www-form-urlencoded` bodies instead (Slack's slash
//! commands, for one). [`Form::parse`] checks such a body strictly and decodes its fields.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

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

/// A body read in its source's format.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// JSON, with the values its source asked for.
    Json(JsonBody<'a>),
    /// Form-encoded: its fields.
    Form(Form),
}

impl Parsed<'_> {
    /// The event type the body itself names: its top-level `type` string, else its `event`.
    pub fn event_type(&self) -> Option<String> {
        match self {
            Self::Json(json) => json.event_type(),
            Self::Form(form) => form.event_type().map(str::to_owned),
        }
    }
}

/// The pointers every JSON body is read for: where a body names its own event type.
const TYPE_POINTERS: [&str; 2] = ["/type", "/event"];

/// A JSON body that was checked, with the values at the JSON pointers asked for, as raw JSON
/// text borrowed from the body.
#[derive(Debug)]
pub struct JsonBody<'a> {
    pointers: Vec<String>,
    found: Vec<Option<&'a RawValue>>,
}

impl<'a> JsonBody<'a> {
    /// The raw JSON at `pointer`, if it was asked for and is there.
    pub fn get(&self, pointer: &str) -> Option<&'a RawValue> {
        let index = self.pointers.iter().position(|asked| asked == pointer)?;
        self.found[index]
    }

    /// The string at `pointer`, if it was asked for and is a string.
    pub fn text(&self, pointer: &str) -> Option<String> {
        self.get(pointer)
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
    }

    /// The event type the body names: its top-level `type` string, else its `event` string.
    pub fn event_type(&self) -> Option<String> {
        TYPE_POINTERS.iter().find_map(|pointer| self.text(pointer))
    }
}

/// The deepest a JSON body may nest objects and arrays: deeper than any vendor's payload, and
/// within both `serde_json`'s own limit (128) and MySQL's for its JSON functions (100).
pub const MAX_JSON_DEPTH: usize = 64;
/// The longest a number in a JSON body may be, in characters: more digits than any amount or
/// id, and few enough that reading one is cheap and its text can be kept.
pub const MAX_JSON_NUMBER_CHARS: usize = 100;

/// Why a body is not accepted as JSON.
#[derive(Debug, thiserror::Error)]
pub enum NotJson {
    /// JSON is UTF-8; this body is not.
    #[error("body is not valid UTF-8 (at byte {})", .0.valid_up_to())]
    NotUtf8(std::str::Utf8Error),
    /// Not one complete JSON document that can be read in full.
    #[error("body is not valid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// Objects and arrays nested deeper than [`MAX_JSON_DEPTH`].
    #[error("body is not accepted as JSON: nested deeper than {MAX_JSON_DEPTH} levels")]
    TooDeep,
    /// A number longer than [`MAX_JSON_NUMBER_CHARS`].
    #[error("body is not accepted as JSON: a number longer than {MAX_JSON_NUMBER_CHARS} characters")]
    NumberTooLong,
}

impl NotJson {
    /// Whether the body is JSON that breaks one of the limits (rather than not JSON at all).
    pub fn is_limit(&self) -> bool {
        matches!(self, Self::TooDeep | Self::NumberTooLong)
    }
}

/// Checks [`MAX_JSON_DEPTH`] and [`MAX_JSON_NUMBER_CHARS`] in one pass over the bytes, without
/// parsing: outside strings, every `[` or `{` is a level down and every run of number
/// characters a number. (On text that is not JSON the answer does not matter: the parser
/// refuses it anyway.)
fn check_limits(text: &str) -> Result<(), NotJson> {
    let (mut depth, mut number, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for byte in text.bytes() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if matches!(byte, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
            number += 1;
            if number > MAX_JSON_NUMBER_CHARS {
                return Err(NotJson::NumberTooLong);
            }
            continue;
        }
        number = 0;
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(NotJson::TooDeep);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Reads a JSON body as a tree, with the same rules as [`read_json`]: what the processors use.
pub fn parse_json(text: &str) -> Result<serde_json::Value, NotJson> {
    check_limits(text)?;
    Ok(serde_json::from_str(text)?)
}

/// Checks that `body` is one complete JSON document in UTF-8 and picks out the values at
/// `pointers` (and at `/type` and `/event`), in one pass and without building a tree. As in
/// `serde_json::Value`, when an object has a key twice the last one counts.
pub fn read_json<'a>(body: &'a [u8], pointers: &[&str]) -> Result<JsonBody<'a>, NotJson> {
    // serde_json skips over ignored strings without checking their UTF-8, so check it first.
    let text = std::str::from_utf8(body).map_err(NotJson::NotUtf8)?;
    check_limits(text)?;
    let mut asked: Vec<String> = TYPE_POINTERS.iter().map(|pointer| (*pointer).to_owned()).collect();
    for pointer in pointers {
        if !asked.iter().any(|known| known == pointer) {
            asked.push((*pointer).to_owned());
        }
    }
    let tokens: Vec<Vec<String>> = asked.iter().map(|pointer| tokens(pointer)).collect();
    let mut found = vec![None; asked.len()];
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Capture {
        tokens: &tokens,
        found: &mut found,
        candidates: (0..tokens.len()).collect(),
        depth: 0,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(JsonBody { pointers: asked, found })
}

/// A JSON pointer's reference tokens, unescaped (`~1` is `/`, `~0` is `~`).
fn tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|token| token.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Whether an array index matches a pointer token (`0`, `12`; not `01` or `-`).
fn index_matches(token: &str, index: usize) -> bool {
    (token == "0" || !token.starts_with('0')) && token.parse() == Ok(index)
}

/// The visits of a value with nothing inside: by the time they are called, the deserializer has
/// read the value in full (a string decoded, a number parsed), which is all there is to check.
macro_rules! scalars_are_read {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
            Ok(())
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
            Ok(())
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
            Ok(())
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
            Ok(())
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
            Ok(())
        }

        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }
    };
}

/// The walk of one value: `candidates` are the pointers whose first `depth` tokens are the path
/// to it. A value at the end of a pointer is captured raw; one on the way to a pointer is
/// walked; anything else is skipped.
struct Capture<'w, 'a> {
    tokens: &'w [Vec<String>],
    found: &'w mut [Option<&'a RawValue>],
    candidates: Vec<usize>,
    depth: usize,
}

impl<'a> Capture<'_, 'a> {
    /// The pointers that go on through the member or element named `matches`; the ones that
    /// end there lose what an earlier duplicate key gave them.
    fn through(&mut self, matches: impl Fn(&str) -> bool) -> Vec<usize> {
        let next: Vec<usize> = self
            .candidates
            .iter()
            .copied()
            .filter(|&index| self.tokens[index].get(self.depth).is_some_and(|token| matches(token)))
            .collect();
        for &index in &next {
            self.found[index] = None;
        }
        next
    }

    /// Stores `raw` for the pointers that end here; those that go on below it are read from it.
    /// A value is captured as its text, so it is read in full here as everything else is.
    fn capture<E: de::Error>(&mut self, next: &[usize], raw: &'a RawValue) -> Result<(), E> {
        let mut deserializer = serde_json::Deserializer::from_str(raw.get());
        Validate.deserialize(&mut deserializer).map_err(E::custom)?;
        for &index in next {
            let rest = &self.tokens[index][self.depth + 1..];
            self.found[index] = if rest.is_empty() { Some(raw) } else { below(raw, rest) };
        }
        Ok(())
    }

    fn ends_here(&self, next: &[usize]) -> bool {
        next.iter().any(|&index| self.tokens[index].len() == self.depth + 1)
    }

    fn deeper<'s>(&'s mut self, next: Vec<usize>) -> Capture<'s, 'a> {
        Capture {
            tokens: self.tokens,
            found: self.found,
            candidates: next,
            depth: self.depth + 1,
        }
    }
}

/// The value at `tokens` below `raw`, read again from its text (only when one pointer ends where
/// another goes on, which sources seldom ask for).
fn below<'a>(raw: &'a RawValue, tokens: &[String]) -> Option<&'a RawValue> {
    let tokens = [tokens.to_vec()];
    let mut found = [None];
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    Capture {
        tokens: &tokens,
        found: &mut found,
        candidates: vec![0],
        depth: 0,
    }
    .deserialize(&mut deserializer)
    .ok()?;
    found[0]
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for Capture<'_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.candidates.is_empty() {
            Validate.deserialize(deserializer)
        } else {
            deserializer.deserialize_any(self)
        }
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Capture<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let next = self.through(|token| token == key);
            if next.is_empty() {
                map.next_value_seed(Validate)?;
            } else if self.ends_here(&next) {
                let raw: &'de RawValue = map.next_value()?;
                self.capture(&next, raw)?;
            } else {
                map.next_value_seed(self.deeper(next))?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let next = self.through(|token| index_matches(token, index));
            let more = if next.is_empty() {
                seq.next_element_seed(Validate)?.is_some()
            } else if self.ends_here(&next) {
                match seq.next_element::<&'de RawValue>()? {
                    Some(raw) => {
                        self.capture(&next, raw)?;
                        true
                    }
                    None => false,
                }
            } else {
                seq.next_element_seed(self.deeper(next))?.is_some()
            };
            if !more {
                return Ok(());
            }
            index += 1;
        }
    }

    scalars_are_read!();
}

/// Reads a value in full without keeping it, as `serde_json::Value` would read it: every string
/// (keys too) decoded, every number parsed. `IgnoredAny` would skip both unread.
struct Validate;

impl<'de> DeserializeSeed<'de> for Validate {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Validate {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(KeySeed)?.is_some() {
            map.next_value_seed(Validate)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Validate)?.is_some() {}
        Ok(())
    }

    scalars_are_read!();
}

/// An object key, borrowed from the body unless it has escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Cow<'de, str>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Cow<'de, str>, E> {
                Ok(Cow::Borrowed(key))
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Cow<'de, str>, E> {
                Ok(Cow::Owned(key.to_owned()))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &[u8], pointers: &[&str]) -> JsonBody<'static> {
        let body: &'static [u8] = Box::leak(body.to_vec().into_boxed_slice());
        read_json(body, pointers).unwrap()
    }

    #[test]
    fn objects_give_their_top_level_type_and_event() {
        let json = read(br#"{"data":{"type":"inner"},"type":"sale.completed","event":"x"}"#, &[]);
        assert_eq!(json.text("/type").as_deref(), Some("sale.completed"));
        assert_eq!(json.text("/event").as_deref(), Some("x"));
        assert_eq!(json.event_type().as_deref(), Some("sale.completed"));
    }

    #[test]
    fn event_is_used_when_type_is_absent_or_not_a_string() {
        let json = read(br#"{"type":42,"event":"push"}"#, &[]);
        assert_eq!(json.event_type().as_deref(), Some("push"));
        let json = read(br#"{"type":{"a":[1,2]},"event":["push"]}"#, &[]);
        assert_eq!(json.event_type(), None);
    }

    #[test]
    fn escaped_keys_and_values_are_read() {
        let json = read(br#"{"typ\u0065":"caf\u00e9"}"#, &[]);
        assert_eq!(json.event_type().as_deref(), Some("café"));
    }

    #[test]
    fn any_json_value_is_accepted() {
        for body in [&b"[1,2,{}]"[..], b"\"text\"", b"12.5", b"null", b"true", b" {} "] {
            assert!(read_json(body, &["/id"]).is_ok(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn pointers_reach_into_objects_and_arrays_and_are_read_raw() {
        let json = read(
            br#"{"id":"evt_1","data":{"object":{"id":7,"a/b":"slash","m~n":"tilde"}},"list":[{"x":1},{"x":"two"}]}"#,
            &[
                "/id",
                "/data/object/id",
                "/data/object/a~1b",
                "/data/object/m~0n",
                "/list/1/x",
                "/list/01/x",
                "/nope",
                "/id/x",
            ],
        );
        assert_eq!(json.get("/id").map(RawValue::get), Some("\"evt_1\""));
        assert_eq!(json.get("/data/object/id").map(RawValue::get), Some("7"));
        assert_eq!(json.text("/data/object/a~1b").as_deref(), Some("slash"));
        assert_eq!(json.text("/data/object/m~0n").as_deref(), Some("tilde"));
        assert_eq!(json.text("/list/1/x").as_deref(), Some("two"));
        assert!(json.get("/list/01/x").is_none());
        assert!(json.get("/nope").is_none());
        assert!(json.get("/id/x").is_none());
        assert!(json.get("/not/asked").is_none());
    }

    #[test]
    fn a_pointer_that_ends_where_another_goes_on_gets_both() {
        let json = read(br#"{"data":{"id":"in_1","n":2}}"#, &["/data", "/data/id"]);
        assert_eq!(json.get("/data").map(RawValue::get), Some(r#"{"id":"in_1","n":2}"#));
        assert_eq!(json.text("/data/id").as_deref(), Some("in_1"));
    }

    #[test]
    fn the_last_of_two_equal_keys_counts_as_in_serde_json() {
        let body = br#"{"id":"first","data":{"id":"a"},"id":"second","data":"flat"}"#;
        let json = read(body, &["/id", "/data/id"]);
        let value: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            json.text("/id").as_deref(),
            value.pointer("/id").and_then(|v| v.as_str())
        );
        assert_eq!(json.text("/id").as_deref(), Some("second"));
        assert!(json.get("/data/id").is_none());
        assert!(value.pointer("/data/id").is_none());
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

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let key = proptest::sample::select(vec!["a", "b", "id", "type", "0", "1", "a/b", "~"]);
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z\"\\\\é]{0,6}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 24, 4, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(key.clone().prop_map(str::to_owned), inner, 0..4)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever document and pointers: the raw value read is what `serde_json` finds there.
        #[test]
        fn what_a_pointer_reads_is_what_serde_json_finds_there(
            value in json_value(),
            pointers in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec!["a", "b", "id", "type", "0", "1", "a~1b", "~0", "01"]), 1..4),
                1..4,
            ),
        ) {
            let text = value.to_string();
            let pointers: Vec<String> = pointers.iter().map(|tokens| format!("/{}", tokens.join("/"))).collect();
            let asked: Vec<&str> = pointers.iter().map(String::as_str).collect();
            let json = read_json(text.as_bytes(), &asked).unwrap();
            proptest::prop_assert!(parse_json(&text).is_ok());
            for pointer in &asked {
                let read = json.get(pointer).map(|raw| serde_json::from_str::<serde_json::Value>(raw.get()).unwrap());
                proptest::prop_assert_eq!(read.as_ref(), value.pointer(pointer), "{} in {}", pointer, text);
            }
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

    /// Bodies at and past every limit, and the kinds of JSON `serde_json` cannot read in full.
    fn edge_cases() -> Vec<(String, bool)> {
        let nested = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
        let deep_object = |levels: usize| format!("{}{{\"id\":1{}", "{\"a\":".repeat(levels - 1), "}".repeat(levels));
        vec![
            (nested(MAX_JSON_DEPTH), true),
            (nested(MAX_JSON_DEPTH + 1), false),
            (nested(200), false),
            (deep_object(MAX_JSON_DEPTH), true),
            (deep_object(MAX_JSON_DEPTH + 1), false),
            (
                format!("{{\"amount\":{}}}", "9".repeat(MAX_JSON_NUMBER_CHARS + 1)),
                false,
            ),
            (
                format!("{{\"amount\":0.{}}}", "1".repeat(MAX_JSON_NUMBER_CHARS - 2)),
                true,
            ),
            (
                format!("{{\"amount\":0.{}}}", "1".repeat(MAX_JSON_NUMBER_CHARS - 1)),
                false,
            ),
            (format!("{{\"amount\":1{}}}", "0".repeat(100_000)), false),
            (r#"{"n":1e400}"#.to_owned(), false),
            (r#"{"n":18446744073709551616}"#.to_owned(), true),
            (r#"{"n":-9223372036854775809}"#.to_owned(), true),
            (r#"{"id":"\ud800"}"#.to_owned(), false),
            (r#"{"other":["\udc00"],"id":"x"}"#.to_owned(), false),
            (r#"{"\ud800":1}"#.to_owned(), false),
            (r#"{"emoji":"\ud83d\ude00","text":"a \"[{\" b"}"#.to_owned(), true),
            (format!("\"{}\"", "[".repeat(500)), true),
            (r#"{"a":1,"a":{"b":2}}"#.to_owned(), true),
        ]
    }

    #[test]
    fn the_handler_and_the_processors_accept_the_same_json() {
        for (body, accepted) in edge_cases() {
            let shown = &body[..body.len().min(80)];
            assert_eq!(
                read_json(body.as_bytes(), &["/id"]).is_ok(),
                accepted,
                "read_json: {shown}"
            );
            assert_eq!(parse_json(&body).is_ok(), accepted, "parse_json: {shown}");
        }
    }

    #[test]
    fn limits_are_told_from_bodies_that_are_not_json() {
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        let error = read_json(deep.as_bytes(), &[]).unwrap_err();
        assert!(error.is_limit());
        assert_eq!(
            error.to_string(),
            "body is not accepted as JSON: nested deeper than 64 levels"
        );
        let long = format!("[{}]", "1".repeat(101));
        assert_eq!(
            parse_json(&long).unwrap_err().to_string(),
            "body is not accepted as JSON: a number longer than 100 characters"
        );
        let surrogate = read_json(br#"{"x":"\ud800"}"#, &[]).unwrap_err();
        assert!(!surrogate.is_limit());
        assert!(
            surrogate.to_string().starts_with("body is not valid JSON: "),
            "{surrogate}"
        );
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
            assert!(read_json(body, &[]).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
