//! Reading settings from the environment.
//!
//! Every service builds its `Settings` through [`Vars`], which reads variables from any lookup
//! (the process environment in `main`, a map in tests) and turns every bad value into one
//! [`ConfigError`] line naming the variable, the value (unless it is secret) and what was
//! expected.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// A bad or missing configuration value; its `Display` is the one line an operator sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {variable}{shown}: expected {expected}")]
pub struct ConfigError {
    variable: String,
    shown: String,
    expected: String,
}

impl ConfigError {
    /// A bad value; `value` is shown unless the variable holds a secret.
    pub fn invalid(variable: &str, value: Option<&str>, expected: impl Into<String>) -> Self {
        let shown = match value {
            Some(value) => format!("={value:?}"),
            None => " (value hidden)".to_owned(),
        };
        Self {
            variable: variable.to_owned(),
            shown,
            expected: expected.into(),
        }
    }

    /// A variable that must be set and is not.
    pub fn missing(variable: &str, expected: impl Into<String>) -> Self {
        Self {
            variable: variable.to_owned(),
            shown: " is not set".to_owned(),
            expected: expected.into(),
        }
    }

    /// The variable this error is about.
    pub fn variable(&self) -> &str {
        &self.variable
    }
}

/// A value that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it (signing, connecting).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A connection URL that may carry a password: `Debug` and [`Url::redacted`] hide it.
#[derive(Clone, PartialEq, Eq)]
pub struct Url(Secret);

impl Url {
    /// Wraps a URL.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(Secret::new(value))
    }

    /// The full URL, password included, for connecting.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The URL with any password replaced by `***`, for logs.
    pub fn redacted(&self) -> String {
        redact_password(self.0.expose())
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Url({:?})", self.redacted())
    }
}

fn redact_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            let hidden = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{}{hidden}{}", &url[..scheme_end + 3], &url[scheme_end + 3 + at..])
        }
        None => url.to_owned(),
    }
}

/// Typed access to configuration variables from a lookup function.
///
/// Unset and empty variables are treated alike, so `KEY=` in a `.env` file means "use the
/// default".
pub struct Vars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl fmt::Debug for Vars<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vars")
    }
}

impl<'a> Vars<'a> {
    /// Reads from `lookup`; in `main` that is `|name| std::env::var(name).ok()`.
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    /// The value of `name`, trimmed, or `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// A string with a default.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    /// An optional secret; its value is never shown in errors.
    pub fn secret(&self, name: &str) -> Option<Secret> {
        self.get(name).map(Secret::new)
    }

    /// A URL with one of `schemes`.
    pub fn url(&self, name: &str, default: &str, schemes: &[&str]) -> Result<Url, ConfigError> {
        let value = self.string(name, default);
        let ok = schemes
            .iter()
            .any(|scheme| value.starts_with(&format!("{scheme}://")) && value.len() > scheme.len() + 3);
        if ok {
            Ok(Url::new(value))
        } else {
            let expected = schemes
                .iter()
                .map(|scheme| format!("{scheme}://…"))
                .collect::<Vec<_>>()
                .join(" or ");
            Err(ConfigError::invalid(
                name,
                Some(&redact_password(&value)),
                format!("a URL of the form {expected}"),
            ))
        }
    }

    /// Any `FromStr` value; `expected` describes the accepted form for the error line.
    pub fn parse<T: FromStr>(&self, name: &str, default: T, expected: &str) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|_| ConfigError::invalid(name, Some(&value), expected)),
        }
    }

    /// An integer within `min..=max`.
    pub fn integer(&self, name: &str, default: u64, min: u64, max: u64, unit: &str) -> Result<u64, ConfigError> {
        let expected = format!("an integer number of {unit} from {min} to {max}");
        let value = self.parse(name, default, &expected)?;
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::invalid(name, Some(&value.to_string()), expected))
        }
    }

    /// A duration given in milliseconds, within `min_ms..=max_ms`.
    pub fn millis(&self, name: &str, default_ms: u64, min_ms: u64, max_ms: u64) -> Result<Duration, ConfigError> {
        self.integer(name, default_ms, min_ms, max_ms, "milliseconds")
            .map(Duration::from_millis)
    }

    /// A socket address such as `0.0.0.0:3000`.
    pub fn socket_addr(&self, name: &str, default: &str) -> Result<SocketAddr, ConfigError> {
        let value = self.string(name, default);
        value
            .parse()
            .map_err(|_| ConfigError::invalid(name, Some(&value), "a socket address such as 0.0.0.0:3000"))
    }

    /// A comma-separated list of IP addresses or networks such as `10.0.0.0/8,::1` (an address
    /// is a network of one), empty when unset: the peers a service believes, e.g.
    /// `TRUSTED_PROXIES`.
    pub fn networks(&self, name: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        let value = self.get(name);
        value
            .iter()
            .flat_map(|text| text.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::invalid(
                            name,
                            value.as_deref(),
                            "IP addresses or networks separated by commas (e.g. 10.0.0.0/8,::1)",
                        )
                    })
            })
            .collect()
    }

    /// A comma-separated list of durations such as `1s,5s,30s,2m,10m`.
    pub fn durations(&self, name: &str, default: &str) -> Result<Vec<Duration>, ConfigError> {
        let value = self.string(name, default);
        let expected = "a comma-separated list of durations such as 1s,5s,30s,2m,10m (each from 1ms to 24h)";
        let parsed: Option<Vec<Duration>> = value
            .split(',')
            .map(|item| {
                humantime::parse_duration(item.trim())
                    .ok()
                    .filter(|delay| *delay >= Duration::from_millis(1) && *delay <= Duration::from_secs(86_400))
            })
            .collect();
        match parsed {
            Some(delays) if !delays.is_empty() => Ok(delays),
            _ => Err(ConfigError::invalid(name, Some(&value), expected)),
        }
    }
}

/// A file's parse error as one line: `line N: message` when the parser knows the byte offset
/// in `text` where it went wrong.
pub fn error_at_line(text: &str, offset: Option<usize>, message: &str) -> String {
    let message = message.replace('\n', " ");
    match offset {
        Some(offset) => {
            let line = text.as_bytes()[..offset.min(text.len())]
                .iter()
                .filter(|byte| **byte == b'\n')
                .count()
                + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars_from(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn unset_and_empty_variables_take_the_default() {
        let map = vars_from(&[("EMPTY", "  ")]);
        let lookup = |name: &str| map.get(name).cloned();
        let vars = Vars::new(&lookup);
        assert_eq!(vars.integer("EMPTY", 7, 1, 10, "things").unwrap(), 7);
        assert_eq!(vars.integer("UNSET", 8, 1, 10, "things").unwrap(), 8);
    }

    #[test]
    fn a_bad_integer_names_the_variable_the_value_and_the_range() {
        let map = vars_from(&[("PREFETCH", "lots")]);
        let lookup = |name: &str| map.get(name).cloned();
        let err = Vars::new(&lookup)
            .integer("PREFETCH", 256, 1, 2000, "messages")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration: PREFETCH=\"lots\": expected an integer number of messages from 1 to 2000"
        );
    }

    #[test]
    fn an_out_of_range_integer_is_rejected() {
        let map = vars_from(&[("PREFETCH", "0")]);
        let lookup = |name: &str| map.get(name).cloned();
        let err = Vars::new(&lookup)
            .integer("PREFETCH", 256, 1, 2000, "messages")
            .unwrap_err();
        assert_eq!(err.variable(), "PREFETCH");
        assert!(err.to_string().contains("from 1 to 2000"), "{err}");
    }

    #[test]
    fn retry_delays_parse_human_durations() {
        let map = vars_from(&[("RETRY_DELAYS", "1s, 5s,500ms,2m")]);
        let lookup = |name: &str| map.get(name).cloned();
        let delays = Vars::new(&lookup).durations("RETRY_DELAYS", "1s").unwrap();
        assert_eq!(
            delays,
            vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_millis(500),
                Duration::from_secs(120)
            ]
        );
    }

    #[test]
    fn retry_delays_reject_garbage_and_empty_items() {
        for bad in ["1s,,5s", "soon", "1s,0s", "48h"] {
            let map = vars_from(&[("RETRY_DELAYS", bad)]);
            let lookup = |name: &str| map.get(name).cloned();
            let err = Vars::new(&lookup).durations("RETRY_DELAYS", "1s").unwrap_err();
            assert!(
                err.to_string().starts_with("invalid configuration: RETRY_DELAYS="),
                "{err}"
            );
        }
    }

    #[test]
    fn urls_must_have_an_accepted_scheme_and_hide_passwords_in_errors() {
        let map = vars_from(&[("DATABASE_URL", "postgres://me:hunter2@db/x")]);
        let lookup = |name: &str| map.get(name).cloned();
        let err = Vars::new(&lookup)
            .url("DATABASE_URL", "mysql://root@127.0.0.1/x", &["mysql", "mariadb"])
            .unwrap_err();
        let line = err.to_string();
        assert!(!line.contains("hunter2"), "{line}");
        assert!(line.contains("me:***@db"), "{line}");
        assert!(line.contains("mysql://… or mariadb://…"), "{line}");
    }

    #[test]
    fn url_debug_and_redacted_hide_the_password() {
        let url = Url::new("amqp://guest:s3cret@broker:5672/%2f");
        assert_eq!(url.redacted(), "amqp://guest:***@broker:5672/%2f");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(Url::new("mysql://root@db/x").redacted(), "mysql://root@db/x");
        assert_eq!(Url::new("mysql://db/x").redacted(), "mysql://db/x");
    }

    #[test]
    fn secret_debug_never_shows_the_value() {
        let secret = Secret::new("It's a Secret to Everybody");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(secret.expose(), "It's a Secret to Everybody");
    }

    #[test]
    fn a_missing_variable_says_so() {
        let err = ConfigError::missing("WEBHOOK_SECRET", "the shared secret vendors sign with");
        assert_eq!(
            err.to_string(),
            "invalid configuration: WEBHOOK_SECRET is not set: expected the shared secret vendors sign with"
        );
    }

    #[test]
    fn networks_are_addresses_or_networks_separated_by_commas() {
        let map = vars_from(&[("PROXIES", "10.0.0.0/8, ::1,"), ("BAD", "10.0.0.0/8,proxy")]);
        let lookup = |name: &str| map.get(name).cloned();
        let vars = Vars::new(&lookup);
        let shown: Vec<String> = vars
            .networks("PROXIES")
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "::1/128"]);
        assert!(vars.networks("UNSET").unwrap().is_empty());
        let error = vars.networks("BAD").unwrap_err().to_string();
        assert!(
            error.starts_with("invalid configuration: BAD=\"10.0.0.0/8,proxy\": expected IP addresses"),
            "{error}"
        );
    }
}
