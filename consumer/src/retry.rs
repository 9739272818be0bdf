//! What happens to a message that cannot be stored: pure rules, no I/O.
//!
//! A message the database refuses goes down the retry ladder (`{P}.retry.{n}`, its
//! `retry-count` one higher) until it has used `MAX_RETRIES` retries; then, like poison at
//! once, it goes to the dead-letter exchange with an `error` header.
//!
//! What a decision says comes from outside (a header value, a fragment of the body, the
//! database quoting a value): it is escaped and bounded here ([`crate::untrusted`]), once, for
//! every dead-letter error and log line.

use crate::untrusted::{self, MAX_ERROR_CHARS};

/// Why a message is dead-lettered; the `reason` label of `webhook_consumer_dead_lettered_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeadReason {
    /// Not an event at all: headers missing or invalid, body not UTF-8 JSON.
    Poison,
    /// Refused on every attempt.
    RetriesExhausted,
    /// Larger than the database takes in one packet (`max_allowed_packet`): it could never be
    /// stored as the server is configured.
    TooLarge,
}

impl DeadReason {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Poison => "poison",
            Self::RetriesExhausted => "retries_exhausted",
            Self::TooLarge => "too_large",
        }
    }
}

/// What to do with a message that will not be stored now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Republish to the retry queue for this attempt (1-based) with `retry-count` = attempt;
    /// `error` says why (for the log).
    Retry { attempt: u32, error: String },
    /// Publish to the dead-letter exchange with this `error` header.
    DeadLetter { reason: DeadReason, error: String },
}

/// A message the database refused with `error`, after `retry_count` retries.
pub(crate) fn after_refusal(retry_count: u32, max_retries: u32, error: &str) -> Decision {
    let error = untrusted::escaped(error, MAX_ERROR_CHARS);
    if retry_count >= max_retries {
        Decision::DeadLetter {
            reason: DeadReason::RetriesExhausted,
            error: format!("retries exhausted after {retry_count}: {error}"),
        }
    } else {
        Decision::Retry {
            attempt: retry_count + 1,
            error,
        }
    }
}

/// A message too large for the database, as `why` explains: dead-lettered at once, whatever
/// its retries (a retry could only be refused again).
pub(crate) fn too_large(why: &str) -> Decision {
    Decision::DeadLetter {
        reason: DeadReason::TooLarge,
        error: format!(
            "too large for the database: {}",
            untrusted::escaped(why, MAX_ERROR_CHARS)
        ),
    }
}

/// A message that can never be stored.
pub(crate) fn poison(why: &str) -> Decision {
    Decision::DeadLetter {
        reason: DeadReason::Poison,
        error: format!("poison: {}", untrusted::escaped(why, MAX_ERROR_CHARS)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_message_is_retried_with_the_next_attempt() {
        let retry = |attempt| Decision::Retry {
            attempt,
            error: "x".to_owned(),
        };
        assert_eq!(after_refusal(0, 5, "x"), retry(1));
        assert_eq!(after_refusal(4, 5, "x"), retry(5));
    }

    #[test]
    fn a_message_refused_after_max_retries_is_dead_lettered_with_the_last_error() {
        assert_eq!(
            after_refusal(5, 5, "Data too long for column 'x'"),
            Decision::DeadLetter {
                reason: DeadReason::RetriesExhausted,
                error: "retries exhausted after 5: Data too long for column 'x'".to_owned()
            }
        );
    }

    #[test]
    fn with_no_retries_allowed_the_first_refusal_is_final() {
        assert!(matches!(
            after_refusal(0, 0, "x"),
            Decision::DeadLetter {
                reason: DeadReason::RetriesExhausted,
                ..
            }
        ));
    }

    #[test]
    fn a_retry_count_beyond_the_limit_is_still_dead_lettered() {
        // MAX_RETRIES lowered while messages were on the ladder.
        assert!(matches!(after_refusal(9, 3, "x"), Decision::DeadLetter { .. }));
    }

    #[test]
    fn what_a_decision_quotes_from_outside_is_escaped_and_bounded() {
        let header = format!("invalid header event-type: x\n\u{202e}{}", "y".repeat(5000));
        let Decision::DeadLetter { error, .. } = poison(&header) else {
            panic!("poison is dead-lettered")
        };
        assert!(
            error.starts_with("poison: invalid header event-type: x\\n\\u{202e}yyy"),
            "{error}"
        );
        assert!(!error.chars().any(char::is_control));
        assert_eq!(
            error.chars().count(),
            "poison: ".len() + MAX_ERROR_CHARS + 1,
            "cut, with …"
        );
        let Decision::Retry { error, .. } = after_refusal(0, 1, "bad \u{1b}[2J value") else {
            panic!("retried")
        };
        assert_eq!(error, "bad \\u{1b}[2J value");
    }

    #[test]
    fn poison_is_dead_lettered_at_once_and_says_why() {
        assert_eq!(
            poison("missing headers"),
            Decision::DeadLetter {
                reason: DeadReason::Poison,
                error: "poison: missing headers".to_owned()
            }
        );
        assert_eq!(DeadReason::Poison.label(), "poison");
        assert_eq!(DeadReason::RetriesExhausted.label(), "retries_exhausted");
        assert_eq!(DeadReason::TooLarge.label(), "too_large");
    }

    #[test]
    fn a_message_too_large_for_the_database_is_dead_lettered_at_once() {
        assert_eq!(
            too_large("max_allowed_packet is 16 bytes"),
            Decision::DeadLetter {
                reason: DeadReason::TooLarge,
                error: "too large for the database: max_allowed_packet is 16 bytes".to_owned()
            }
        );
    }
}
