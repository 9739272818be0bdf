//! The rejection record: what the handler keeps about a request it turned away, published to
//! the bounded queue `{P}.rejected` and stored by the consumer in `rejections`. Never the body,
//! the signature or a secret.

use serde::{Deserialize, Serialize};

/// One rejected request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionRecord {
    /// When it was received (RFC 3339, µs).
    pub at: String,
    /// The source named in the path (at most 64 bytes; may not be a configured source).
    pub source: String,
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
}
