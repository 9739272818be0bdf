//! Text that came from outside (bodies, headers, and the database's messages, which can quote
//! them) made safe to put in a dead-letter error: every character that is not printable
//! (control characters such as a newline or an escape, bidirectional overrides and other
//! format characters, line separators) is written as its `\u{…}` escape, and the length is
//! bounded. Log lines show such text with `{:?}`, which escapes the same characters and
//! quotes as well.

/// Most characters of a dead-letter error (the `dead_letters.error` column keeps 4,000).
pub(crate) const MAX_ERROR_CHARS: usize = 1000;

/// `text` with its unprintable characters escaped, at most `max_chars` characters long; a
/// text cut short ends in `…` (one more).
pub(crate) fn escaped(text: &str, max_chars: usize) -> String {
    let mut shown = String::with_capacity(text.len().min(max_chars));
    let mut count = 0;
    for character in text.chars() {
        // Quotes and backslashes are printable: escape_debug escapes them for Rust's quoting.
        let quoting = matches!(character, '"' | '\'' | '\\');
        let escape = character.escape_debug();
        count += if quoting { 1 } else { escape.len() };
        if count > max_chars {
            shown.push('…');
            break;
        }
        if quoting {
            shown.push(character);
        } else {
            shown.extend(escape);
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_is_kept_as_it_is() {
        let text = r#"sale.completed: /data/amount: "12,50 €" is not a number (Grüße, 🎉, \n as text)"#;
        assert_eq!(escaped(text, 1000), text);
    }

    #[test]
    fn control_format_and_separator_characters_are_escaped() {
        assert_eq!(
            escaped("a\nb\r\u{1b}[31mc\u{0}d\u{7f}e\u{85}f", 100),
            "a\\nb\\r\\u{1b}[31mc\\0d\\u{7f}e\\u{85}f"
        );
        // A right-to-left override, a zero-width space, a line separator.
        assert_eq!(
            escaped("x\u{202e}y\u{200b}z\u{2028}", 100),
            "x\\u{202e}y\\u{200b}z\\u{2028}"
        );
    }

    #[test]
    fn long_text_is_cut_to_the_bound() {
        assert_eq!(escaped(&"é".repeat(10), 4), "éééé…");
        assert_eq!(escaped("abcd", 4), "abcd");
        // An escape is not cut in two.
        assert_eq!(escaped("\n\n\n", 5), "\\n\\n…");
    }
}
