//! What a source lets in, as its `[[source]]` says: a rate limit, what happens to its requests
//! when it is over that limit or the handler is saturated, and which event types it keeps.
//!
//! Pure: the sources file's four keys, checked at start (a mistake is one line naming the
//! source and the field), and the glob matching of event types. The handler's
//! `admission` module keeps the token buckets and counts what is in flight.
//!
//! ```toml
//! rate_limit = { per_second = 200, burst = 400 }   # a token bucket per handler process
//! when_limited = "accept"                          # "429" (default) | "accept"
//! accept_types = ["charge.*", "orders/paid"]       # or drop_types = ["ping", "*.updated"]
//! ```

use std::fmt;

/// The most requests per second a rate limit may name: beyond what one process can take.
pub const MAX_PER_SECOND: f64 = 1_000_000.0;
/// The most patterns in `accept_types` or `drop_types`.
pub const MAX_PATTERNS: usize = 256;
/// The longest pattern, in bytes: an event type is at most 128.
const MAX_PATTERN_BYTES: usize = 128;

/// A source's admission settings; the default admits everything and never refuses for load
/// otherwise than with 503 when the handler is saturated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Admission {
    /// `rate_limit`: a token bucket per handler process, if any.
    pub rate_limit: Option<RateLimit>,
    /// `when_limited`: what a request gets when over the limit or the handler is saturated.
    pub when_limited: WhenLimited,
    /// `accept_types` or `drop_types`, if either.
    pub types: Option<TypeFilter>,
}

/// `rate_limit = { per_second, burst }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second (above 0; below 1 is one request every few seconds).
    pub per_second: f64,
    /// The bucket's size: how many requests may come at once after a quiet spell.
    pub burst: u32,
}

/// `when_limited`: what a source's request gets when it is over its rate limit or the
/// handler has `MAX_IN_FLIGHT` requests in work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WhenLimited {
    /// `"429"`: refused before its body is read (429 over the rate limit, 503 when
    /// saturated), for vendors that retry.
    #[default]
    Refuse,
    /// `"accept"`: handled all the same, counted and logged as a warning, for vendors that
    /// never send an event again.
    Accept,
}

impl WhenLimited {
    /// Its value in a sources file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Refuse => "429",
            Self::Accept => "accept",
        }
    }
}

/// `accept_types` or `drop_types`: which event types a source keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeFilter {
    /// `accept_types`: only these are published.
    Accept(Vec<Glob>),
    /// `drop_types`: these are not published.
    Drop(Vec<Glob>),
}

impl TypeFilter {
    /// Whether an event of `event_type` is published.
    pub fn keeps(&self, event_type: &str) -> bool {
        match self {
            Self::Accept(patterns) => patterns.iter().any(|glob| glob.matches(event_type)),
            Self::Drop(patterns) => !patterns.iter().any(|glob| glob.matches(event_type)),
        }
    }

    /// The key that decides, for the `reason` label of a filtered request.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Accept(_) => "accept_types",
            Self::Drop(_) => "drop_types",
        }
    }
}

/// A pattern over event types: `*` is any run of characters (`.` and `/` included, so
/// `orders/*` and `*.updated` mean what they say), `?` exactly one; everything else stands
/// for itself. `[`, `]`, `{`, `}` and `\` are refused rather than given a meaning some other
/// glob dialect would read differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(char),
    One,
    Any,
}

impl Glob {
    /// Parses a pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("an empty pattern matches no event type".to_owned());
        }
        if text.len() > MAX_PATTERN_BYTES {
            return Err(format!("{text:?} is longer than {MAX_PATTERN_BYTES} bytes"));
        }
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(format!("{text:?} holds the control character {c:?}"));
        }
        if let Some(c) = text.chars().find(|c| matches!(c, '[' | ']' | '{' | '}' | '\\')) {
            return Err(format!(
                "{text:?}: {c:?} is not glob syntax here (only * for any characters and ? for one)"
            ));
        }
        let mut parts: Vec<Part> = Vec::with_capacity(text.len());
        for c in text.chars() {
            match c {
                // `**` is `*`: keep one, so matching stays linear.
                '*' if parts.last() == Some(&Part::Any) => {}
                '*' => parts.push(Part::Any),
                '?' => parts.push(Part::One),
                c => parts.push(Part::Literal(c)),
            }
        }
        Ok(Self {
            text: text.to_owned(),
            parts,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `event_type` matches, all of it.
    pub fn matches(&self, event_type: &str) -> bool {
        let text: Vec<char> = event_type.chars().collect();
        let (mut p, mut t) = (0, 0);
        // Where the last `*` was and what it has swallowed so far: on a mismatch, it takes
        // one character more (the classic wildcard match, no recursion).
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.parts.get(p) {
                Some(Part::Any) => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(Part::One) => {
                    p += 1;
                    t += 1;
                }
                Some(Part::Literal(c)) if *c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((star_p, star_t)) => {
                        p = star_p + 1;
                        t = star_t + 1;
                        star = Some((star_p, star_t + 1));
                    }
                    None => return false,
                },
            }
        }
        self.parts[p..].iter().all(|part| *part == Part::Any)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The four keys as the file has them, each still a TOML value so that an error can name
/// the key.
#[derive(Debug, Default)]
pub(crate) struct RawAdmission {
    pub(crate) rate_limit: Option<toml::Value>,
    pub(crate) when_limited: Option<toml::Value>,
    pub(crate) accept_types: Option<toml::Value>,
    pub(crate) drop_types: Option<toml::Value>,
}

/// A mistake: the field and what is wrong.
pub(crate) type FieldError = (&'static str, String);

impl RawAdmission {
    /// Checks every key; the first mistake is the error.
    pub(crate) fn read(self) -> Result<Admission, FieldError> {
        let rate_limit = self.rate_limit.map(rate_limit).transpose()?;
        let when_limited = match self.when_limited {
            None => WhenLimited::Refuse,
            Some(value) => match (&value, value.as_str()) {
                (_, Some("429")) | (toml::Value::Integer(429), _) => WhenLimited::Refuse,
                (_, Some("accept")) => WhenLimited::Accept,
                _ => {
                    return Err((
                        "when_limited",
                        format!("{} is not \"429\" or \"accept\"", shown(&value)),
                    ));
                }
            },
        };
        let types = match (self.accept_types, self.drop_types) {
            (Some(_), Some(_)) => {
                return Err((
                    "drop_types",
                    "set accept_types or drop_types, not both: a type in neither would be undecided".to_owned(),
                ));
            }
            (Some(value), None) => Some(TypeFilter::Accept(patterns("accept_types", &value)?)),
            (None, Some(value)) => Some(TypeFilter::Drop(patterns("drop_types", &value)?)),
            (None, None) => None,
        };
        Ok(Admission {
            rate_limit,
            when_limited,
            types,
        })
    }
}

fn rate_limit(value: toml::Value) -> Result<RateLimit, FieldError> {
    let toml::Value::Table(table) = value else {
        return Err((
            "rate_limit",
            "expected a table such as { per_second = 200, burst = 400 }".to_owned(),
        ));
    };
    if let Some(key) = table.keys().find(|key| !matches!(key.as_str(), "per_second" | "burst")) {
        return Err((
            "rate_limit",
            format!("unknown key `{key}`, expected `per_second` or `burst`"),
        ));
    }
    let per_second = match table.get("per_second") {
        None => return Err(("rate_limit.per_second", "required".to_owned())),
        Some(toml::Value::Integer(n)) => *n as f64,
        Some(toml::Value::Float(x)) => *x,
        Some(other) => return Err(("rate_limit.per_second", format!("{} is not a number", shown(other)))),
    };
    if !(per_second > 0.0 && per_second <= MAX_PER_SECOND) {
        return Err((
            "rate_limit.per_second",
            format!("expected requests per second above 0 and at most {MAX_PER_SECOND}, not {per_second}"),
        ));
    }
    let burst = match table.get("burst") {
        // One second's worth, and at least one request.
        None => per_second.ceil().max(1.0) as u32,
        Some(toml::Value::Integer(n)) => u32::try_from(*n)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ("rate_limit.burst", format!("expected at least 1 request, not {n}")))?,
        Some(other) => return Err(("rate_limit.burst", format!("{} is not a whole number", shown(other)))),
    };
    Ok(RateLimit { per_second, burst })
}

fn patterns(key: &'static str, value: &toml::Value) -> Result<Vec<Glob>, FieldError> {
    let list = value
        .as_array()
        .ok_or_else(|| (key, "expected a list of event type patterns".to_owned()))?;
    if list.is_empty() {
        return Err((key, "expected at least one pattern".to_owned()));
    }
    if list.len() > MAX_PATTERNS {
        return Err((key, format!("expected at most {MAX_PATTERNS} patterns")));
    }
    list.iter()
        .map(|item| {
            let text = item
                .as_str()
                .ok_or_else(|| (key, format!("{} is not a string", shown(item))))?;
            Glob::parse(text).map_err(|why| (key, why))
        })
        .collect()
}

/// A value as an error shows it: text quoted, numbers as they are, anything else by kind.
fn shown(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => format!("{text:?}"),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(_) => "a date".to_owned(),
        toml::Value::Array(_) => "a list".to_owned(),
        toml::Value::Table(_) => "a table".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn glob(text: &str) -> Glob {
        Glob::parse(text).unwrap()
    }

    #[test]
    fn a_star_matches_any_run_of_characters_and_a_question_mark_one() {
        let cases = [
            ("charge.*", "charge.succeeded", true),
            ("charge.*", "charge.", true),
            ("charge.*", "charges.succeeded", false),
            ("*.updated", "customer.subscription.updated", true),
            ("*.updated", "customer.updated.later", false),
            ("orders/*", "orders/paid", true),
            ("orders/paid", "orders/paid", true),
            ("orders/paid", "orders/paidx", false),
            ("ping", "ping", true),
            ("ping", "PING", false),
            ("*", "anything/at.all", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("a**b", "ab", true),
            ("v?.event", "v1.event", true),
            ("v?.event", "v10.event", false),
            ("é*", "événement", true),
        ];
        for (pattern, event_type, expected) in cases {
            assert_eq!(glob(pattern).matches(event_type), expected, "{pattern} ~ {event_type}");
        }
    }

    #[test]
    fn syntax_of_other_glob_dialects_is_refused() {
        for pattern in ["[ab]", "{a,b}", "a\\*", "charge.]", ""] {
            assert!(Glob::parse(pattern).is_err(), "{pattern:?}");
        }
        assert!(Glob::parse("a\u{7}b").unwrap_err().contains("control character"));
        assert!(Glob::parse(&"x".repeat(129)).unwrap_err().contains("longer than"));
    }

    #[test]
    fn a_filter_keeps_what_accept_types_name_or_what_drop_types_do_not() {
        let accept = TypeFilter::Accept(vec![glob("charge.*"), glob("orders/paid")]);
        assert!(accept.keeps("charge.refunded"));
        assert!(accept.keeps("orders/paid"));
        assert!(!accept.keeps("customer.created"));
        let drop = TypeFilter::Drop(vec![glob("ping"), glob("*.updated")]);
        assert!(!drop.keeps("ping"));
        assert!(!drop.keeps("customer.updated"));
        assert!(drop.keeps("push"));
    }
}
