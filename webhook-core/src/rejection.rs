//! The rejection record: what the handler keeps about a request it turned away, published to
//! the bounded queue `{P}.rejected` and stored by the consumer in `rejections`. Never the body,
//! the signature or a secret.

use serde::{Deserialize, Serialize};

/// The `source` of every rejection whose source is not configured: strangers can choose any
/// name in the path, so no name they choose becomes a row of its own that the dashboard or a
/// view groups by. Parentheses cannot appear in a source name, so it never clashes with one.
pub const UNKNOWN_SOURCE: &str = "(unknown)";

/// The reason the handler gives for a request to a source that is not configured.
pub const REASON_UNKNOWN_SOURCE: &str = "unknown_source";

/// One rejected request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionRecord {
    /// When it was received (RFC 3339, µs).
    pub at: String,
    /// The configured source, or [`UNKNOWN_SOURCE`] when the path named no configured source.
    pub source: String,
    /// The name the path claimed when the source is [`UNKNOWN_SOURCE`], as [`escaped`] makes
    /// it (at most 64 bytes): for reading, never for grouping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_source: Option<String>,
    /// A bounded reason label, e.g. `signature_mismatch`.
    pub reason: String,
    /// The status the caller got.
    pub status: u16,
    /// The request id of the handler's log line.
    pub request_id: String,
    /// The delivery id the request claimed, if any (at most 200 bytes).
    pub delivery_id: Option<String>,
    /// The peer address.
    pub remote_addr: Option<String>,
    /// The declared body length, if any.
    pub content_length: Option<u64>,
}

/// `text` cut to at most `max` bytes on a character boundary: caller-supplied strings are
/// bounded before they are kept anywhere.
pub fn bounded(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// `text` as printable ASCII of at most `max` bytes: every other character (control
/// characters, terminal escapes, letters that look like other letters) becomes `\u{…}`, and
/// an escape is never cut in half. Applying it twice changes nothing, so the consumer can apply
/// it again to whatever a publisher sent.
pub fn escaped(text: &str, max: usize) -> String {
    let mut out = String::new();
    for character in text.chars() {
        let piece = if character.is_ascii_graphic() || character == ' ' {
            character.to_string()
        } else {
            format!("\\u{{{:x}}}", u32::from(character))
        };
        if out.len() + piece.len() > max {
            break;
        }
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounding_never_splits_a_character() {
        assert_eq!(bounded("abc", 10), "abc");
        assert_eq!(bounded("abcdef", 3), "abc");
        assert_eq!(bounded("aé", 2), "a");
        assert_eq!(bounded("", 0), "");
    }

    #[test]
    fn escaping_keeps_printable_ascii_and_is_stable() {
        assert_eq!(escaped("fake-1", 64), "fake-1");
        assert_eq!(escaped("a\nb\u{1b}[31mé", 64), "a\\u{a}b\\u{1b}[31m\\u{e9}");
        // An escape that does not fit is left out whole.
        assert_eq!(escaped("abc\n", 5), "abc");
        let long = "x".repeat(100);
        assert_eq!(escaped(&long, 64).len(), 64);
        for text in ["plain", "tab\there", "über\u{7}", "\\u{41}"] {
            let once = escaped(text, 64);
            assert_eq!(escaped(&once, 64), once, "{text:?}");
            assert!(once.bytes().all(|byte| byte.is_ascii_graphic() || byte == b' '));
        }
    }
}
