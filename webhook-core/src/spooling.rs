//! What a source asks of the request handler beyond checking and publishing: what its requests
//! get while the broker does not confirm (`when_broker_down`), and whether requests whose
//! signature matches no secret are kept for a later check with corrected secrets
//! (`quarantine`). Two keys of a `[[source]]` in the sources file; the handler's spool and
//! quarantine carry them out.

use std::time::Duration;

/// What a source's requests get when the broker does not confirm in time or there is no
/// connection: `when_broker_down` in the sources file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WhenBrokerDown {
    /// `"fail"` (the default): 500, and the vendor retries.
    #[default]
    Fail,
    /// `"spool"`: written to the handler's spool on disk, answered 200 once it is durable, and
    /// forwarded when the broker confirms again. For vendors that do not retry.
    Spool,
}

impl WhenBrokerDown {
    /// Its name in a sources file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::Spool => "spool",
        }
    }

    /// Reads the value of `when_broker_down`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "fail" => Ok(Self::Fail),
            "spool" => Ok(Self::Spool),
            other => Err(format!("{other:?} is not \"fail\" or \"spool\"")),
        }
    }
}

/// How many requests whose signature matches no secret a source keeps, and for how long:
/// `quarantine` in the sources file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quarantine {
    /// At most this many kept at once (`max_requests`); further ones are not kept.
    pub max_requests: usize,
    /// Each kept at most this long (`max_age_hours`), then removed.
    pub max_age: Duration,
}

impl Quarantine {
    /// `max_requests` unless set.
    pub const DEFAULT_MAX_REQUESTS: usize = 1000;
    /// `max_age_hours` unless set: three days, as long as GitHub offers a redelivery.
    pub const DEFAULT_MAX_AGE_HOURS: u64 = 72;
    /// The largest `max_requests`.
    pub const MAX_REQUESTS: usize = 100_000;
    /// The largest `max_age_hours` (30 days).
    pub const MAX_AGE_HOURS: u64 = 720;

    /// Reads the value of `quarantine`: `true`, `false`, or a table with `max_requests` and
    /// `max_age_hours`. `None` for `false`.
    pub fn parse(value: &toml::Value) -> Result<Option<Self>, String> {
        let defaults = Self {
            max_requests: Self::DEFAULT_MAX_REQUESTS,
            max_age: hours(Self::DEFAULT_MAX_AGE_HOURS),
        };
        let table = match value {
            toml::Value::Boolean(false) => return Ok(None),
            toml::Value::Boolean(true) => return Ok(Some(defaults)),
            toml::Value::Table(table) => table,
            _ => return Err("expected true, false or { max_requests = …, max_age_hours = … }".to_owned()),
        };
        let mut quarantine = defaults;
        for (key, value) in table {
            let number = value.as_integer().and_then(|number| u64::try_from(number).ok());
            match key.as_str() {
                "max_requests" => {
                    quarantine.max_requests = number
                        .and_then(|number| usize::try_from(number).ok())
                        .filter(|number| (1..=Self::MAX_REQUESTS).contains(number))
                        .ok_or_else(|| format!("max_requests: expected 1 to {}", Self::MAX_REQUESTS))?;
                }
                "max_age_hours" => {
                    let number = number
                        .filter(|number| (1..=Self::MAX_AGE_HOURS).contains(number))
                        .ok_or_else(|| format!("max_age_hours: expected 1 to {}", Self::MAX_AGE_HOURS))?;
                    quarantine.max_age = hours(number);
                }
                other => return Err(format!("unknown key {other:?} (max_requests, max_age_hours)")),
            }
        }
        Ok(Some(quarantine))
    }
}

fn hours(count: u64) -> Duration {
    Duration::from_secs(count * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> toml::Value {
        toml::from_str::<toml::Table>(&format!("v = {text}")).unwrap()["v"].clone()
    }

    #[test]
    fn when_broker_down_is_fail_or_spool() {
        assert_eq!(WhenBrokerDown::default(), WhenBrokerDown::Fail);
        assert_eq!(WhenBrokerDown::parse("spool"), Ok(WhenBrokerDown::Spool));
        assert_eq!(WhenBrokerDown::parse("fail"), Ok(WhenBrokerDown::Fail));
        assert_eq!(
            WhenBrokerDown::parse("retry"),
            Err("\"retry\" is not \"fail\" or \"spool\"".to_owned())
        );
    }

    #[test]
    fn quarantine_is_a_switch_or_its_limits() {
        assert_eq!(Quarantine::parse(&value("false")), Ok(None));
        let defaults = Quarantine::parse(&value("true")).unwrap().unwrap();
        assert_eq!(defaults.max_requests, 1000);
        assert_eq!(defaults.max_age, Duration::from_secs(72 * 3600));
        let limits = Quarantine::parse(&value("{ max_requests = 10, max_age_hours = 2 }"))
            .unwrap()
            .unwrap();
        assert_eq!((limits.max_requests, limits.max_age), (10, Duration::from_secs(7200)));
        for (text, error) in [
            ("{ max_requests = 0 }", "max_requests: expected 1 to 100000"),
            ("{ max_age_hours = 721 }", "max_age_hours: expected 1 to 720"),
            ("{ max_age_hours = \"2\" }", "max_age_hours: expected 1 to 720"),
            ("{ ttl = 1 }", "unknown key \"ttl\" (max_requests, max_age_hours)"),
            (
                "\"yes\"",
                "expected true, false or { max_requests = …, max_age_hours = … }",
            ),
        ] {
            assert_eq!(Quarantine::parse(&value(text)), Err(error.to_owned()), "{text}");
        }
    }
}
