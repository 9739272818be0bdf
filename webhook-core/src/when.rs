//! Time bounds as an operator writes them, for `consumer replay` and the dashboard's filters.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// What [`parse`] takes, for an error message.
pub const FORMATS: &str = "an RFC 3339 time such as 2026-11-01T00:00:00Z or a date such as 2026-11-01";

/// What [`parse`] takes with [`Naive::Utc`], for an error message.
pub const FORMATS_WITH_NAIVE: &str =
    "a time such as 2026-11-01T10:00:00Z, 2026-11-01T10:00 (UTC) or a date such as 2026-11-01";

/// Whether a time without an offset is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naive {
    /// Refused: on a command line an offset-less time is ambiguous.
    Refused,
    /// Read as UTC: what a browser's `datetime-local` field sends for a form that says UTC.
    Utc,
}

/// An RFC 3339 time (any offset), a date (its midnight, UTC; with `end_of_day` the next
/// midnight, so that an `until` date takes its whole day in), and with [`Naive::Utc`] a time
/// without an offset (`2026-11-01T10:00`, `2026-11-01 10:00:00`) read as UTC. `None` for
/// anything else.
pub fn parse(text: &str, end_of_day: bool, naive: Naive) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    if naive == Naive::Utc {
        for layout in [
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%d %H:%M",
        ] {
            if let Ok(at) = NaiveDateTime::parse_from_str(text, layout) {
                return Some(at.and_utc());
            }
        }
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let day = if end_of_day { date.succ_opt()? } else { date };
    Some(day.and_hms_opt(0, 0, 0)?.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn offsets_and_dates_are_read_and_an_until_date_takes_in_its_whole_day() {
        for naive in [Naive::Refused, Naive::Utc] {
            assert_eq!(
                parse("2026-11-01T10:00:00+01:00", false, naive),
                Some(at("2026-11-01T09:00:00Z"))
            );
            assert_eq!(parse("2026-11-01", false, naive), Some(at("2026-11-01T00:00:00Z")));
            assert_eq!(parse("2026-11-30", true, naive), Some(at("2026-12-01T00:00:00Z")));
            assert_eq!(
                parse("2026-11-30T12:00:00Z", true, naive),
                Some(at("2026-11-30T12:00:00Z"))
            );
            for bad in ["yesterday", "2026-13-01", "2026-11-01T25:00:00Z", ""] {
                assert_eq!(parse(bad, false, naive), None, "{bad}");
            }
        }
    }

    #[test]
    fn a_time_without_an_offset_is_utc_only_where_asked() {
        for text in [
            "2026-11-01T10:00",
            "2026-11-01T10:00:00",
            "2026-11-01 10:00",
            "2026-11-01 10:00:00",
        ] {
            assert_eq!(
                parse(text, false, Naive::Utc),
                Some(at("2026-11-01T10:00:00Z")),
                "{text}"
            );
            assert_eq!(
                parse(text, true, Naive::Utc),
                Some(at("2026-11-01T10:00:00Z")),
                "{text}"
            );
            assert_eq!(parse(text, false, Naive::Refused), None, "{text}");
        }
    }
}
