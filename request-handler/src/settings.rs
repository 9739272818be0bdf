//! The handler's settings, read once at start from the environment (or a map in tests).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use webhook_core::broker::BrokerSettings;
use webhook_core::config::{ConfigError, Vars};

use crate::sources::{DEFAULT_SOURCE, Source, Sources};
use crate::spool::SpoolSettings;

/// Everything the handler needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Broker URL and topology.
    pub broker: BrokerSettings,
    /// `HANDLER_ADDR`, default `0.0.0.0:3000`.
    pub addr: SocketAddr,
    /// Configured sources.
    pub sources: Arc<Sources>,
    /// `MAX_BODY_BYTES`, default 1 MiB.
    pub max_body_bytes: usize,
    /// `ENQUEUE_TIMEOUT_MS`, default 5 s: publish plus confirm must finish within it.
    pub enqueue_timeout: Duration,
    /// `BODY_READ_TIMEOUT_MS`, default 10 s: the whole body must arrive within it (else 408).
    pub body_read_timeout: Duration,
    /// `SHUTDOWN_GRACE_MS`, default 10 s: how long in-flight requests get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// `HANDLER_WORKERS`, default the number of CPUs.
    pub workers: usize,
    /// `PUBLISH_CHANNELS`, default 2: confirm-mode channels on the one broker connection.
    pub publish_channels: usize,
    /// `PUBLISH_PER_WORKER`, default true: each HTTP worker publishes over a broker connection
    /// of its own, on its own thread ([`webhook_core::broker::LocalPublisher`]).
    pub publish_per_worker: bool,
    /// `SPOOL_DIR`, `SPOOL_MAX_BYTES`, `SPOOL_PUBLISH_TIMEOUT_MS`: the spool and the
    /// quarantine, when `SPOOL_DIR` is set.
    pub spool: Option<SpoolSettings>,
    /// `MAX_IN_FLIGHT`: requests in work (body received, being checked or published) past
    /// which a new request is answered 503 before its body is read.
    pub max_in_flight: usize,
    /// `TRUSTED_PROXIES`, default none: the peers whose `X-Forwarded-For` is believed when a
    /// source's `allow_ips` is checked.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// The default of `MAX_IN_FLIGHT`, sized from a measurement (README, Decisions).
pub const DEFAULT_MAX_IN_FLIGHT: u64 = 1024;

impl Settings {
    /// Reads and validates every variable; the first bad one is the error.
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let broker = BrokerSettings::from_vars(vars)?;
        let addr = vars.socket_addr("HANDLER_ADDR", "0.0.0.0:3000")?;
        let mut sources = match vars.get("SOURCES_FILE") {
            Some(path) => Sources::from_file(std::path::Path::new(&path), &|name| vars.get(name))?,
            None => Sources::default(),
        };
        match vars.secret("WEBHOOK_SECRET") {
            // WEBHOOK_SECRET is the `default` source unless the file defines one.
            Some(secret) if sources.get(DEFAULT_SOURCE).is_none() => sources.insert(Source::default_with(secret)),
            Some(_) => {}
            None if sources.is_empty() => {
                return Err(ConfigError::missing(
                    "WEBHOOK_SECRET",
                    "the HMAC secret vendors sign POST /webhook with (e.g. WEBHOOK_SECRET=$(openssl rand -hex 32)), or SOURCES_FILE",
                ));
            }
            None => {}
        }
        let max_body_bytes = vars.integer("MAX_BODY_BYTES", 1_048_576, 1, 64 * 1_048_576, "bytes")?;
        let workers = std::thread::available_parallelism().map_or(2, usize::from) as u64;
        let max_body_bytes = usize::try_from(max_body_bytes).unwrap_or(usize::MAX);
        let enqueue_timeout = vars.millis("ENQUEUE_TIMEOUT_MS", 5_000, 1, 600_000)?;
        Ok(Self {
            broker,
            addr,
            spool: SpoolSettings::from_vars(vars, &sources, enqueue_timeout, max_body_bytes)?,
            sources: Arc::new(sources),
            max_body_bytes,
            enqueue_timeout,
            body_read_timeout: vars.millis("BODY_READ_TIMEOUT_MS", 10_000, 1, 600_000)?,
            shutdown_grace: vars.millis("SHUTDOWN_GRACE_MS", 10_000, 0, 3_600_000)?,
            workers: vars.integer("HANDLER_WORKERS", workers, 1, 256, "worker threads")? as usize,
            publish_channels: vars.integer("PUBLISH_CHANNELS", 2, 1, 64, "channels")? as usize,
            publish_per_worker: vars.parse("PUBLISH_PER_WORKER", true, "true or false")?,
            max_in_flight: vars.integer("MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT, 1, 1_000_000, "requests")? as usize,
            trusted_proxies: vars.networks("TRUSTED_PROXIES")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Vars::with_pairs(pairs, Settings::from_vars)
    }

    #[test]
    fn defaults_follow_the_design() {
        let settings = read(&[("WEBHOOK_SECRET", "s3cret")]).unwrap();
        assert_eq!(settings.addr.to_string(), "0.0.0.0:3000");
        assert_eq!(settings.max_body_bytes, 1_048_576);
        assert_eq!(settings.enqueue_timeout, Duration::from_secs(5));
        assert!(settings.sources.get(DEFAULT_SOURCE).is_some());
        assert!(settings.sources.get("other").is_none());
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let settings = read(&[("WEBHOOK_SECRET", "s"), ("TRUSTED_PROXIES", "10.0.0.0/8, ::1")]).unwrap();
        let shown: Vec<String> = settings.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "::1/128"]);
        assert!(read(&[("WEBHOOK_SECRET", "s")]).unwrap().trusted_proxies.is_empty());
        let error = read(&[("WEBHOOK_SECRET", "s"), ("TRUSTED_PROXIES", "proxy")]).unwrap_err();
        assert!(error.to_string().contains("TRUSTED_PROXIES"), "{error}");
    }

    #[test]
    fn a_missing_secret_stops_the_handler_with_one_line() {
        let error = read(&[]).unwrap_err().to_string();
        assert!(
            error.starts_with("invalid configuration: WEBHOOK_SECRET is not set: expected"),
            "{error}"
        );
        assert!(!error.contains('\n'));
    }

    #[test]
    fn a_sources_file_adds_sources_beside_the_default_one() {
        let dir = std::env::temp_dir().join(format!("sources-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sources.toml");
        std::fs::write(
            &path,
            "[[source]]\nname = \"shop\"\nscheme = \"shopify\"\nsecret_env = [\"SHOP_SECRET\"]\n",
        )
        .unwrap();
        let path = path.to_str().unwrap();
        let settings = read(&[("WEBHOOK_SECRET", "s"), ("SOURCES_FILE", path), ("SHOP_SECRET", "x")]).unwrap();
        assert!(settings.sources.get("shop").is_some());
        assert!(settings.sources.get(DEFAULT_SOURCE).is_some());
        let settings = read(&[("SOURCES_FILE", path), ("SHOP_SECRET", "x")]).unwrap();
        assert!(settings.sources.get(DEFAULT_SOURCE).is_none());
        let error = read(&[("SOURCES_FILE", path)]).unwrap_err().to_string();
        assert!(
            error.contains("SOURCES_FILE=")
                && error.contains("source \"shop\": field `secret_env`: environment variable SHOP_SECRET is not set"),
            "{error}"
        );
        let error = read(&[("SOURCES_FILE", "/no/such/file.toml")]).unwrap_err().to_string();
        assert!(
            error.starts_with("invalid configuration: SOURCES_FILE=\"/no/such/file.toml\": expected a readable file"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let settings = read(&[("WEBHOOK_SECRET", "hunter2-very-secret")]).unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn each_bad_value_names_its_variable_and_what_was_expected() {
        let cases = [
            (
                "HANDLER_ADDR",
                "localhost",
                "invalid configuration: HANDLER_ADDR=\"localhost\": expected a socket address such as 0.0.0.0:3000",
            ),
            (
                "MAX_BODY_BYTES",
                "1MB",
                "invalid configuration: MAX_BODY_BYTES=\"1MB\": expected an integer number of bytes from 1 to 67108864",
            ),
            (
                "MAX_BODY_BYTES",
                "0",
                "invalid configuration: MAX_BODY_BYTES=\"0\": expected an integer number of bytes from 1 to 67108864",
            ),
            (
                "ENQUEUE_TIMEOUT_MS",
                "-5",
                "invalid configuration: ENQUEUE_TIMEOUT_MS=\"-5\": expected an integer number of milliseconds from 1 to 600000",
            ),
            (
                "BODY_READ_TIMEOUT_MS",
                "soon",
                "invalid configuration: BODY_READ_TIMEOUT_MS=\"soon\": expected an integer number of milliseconds from 1 to 600000",
            ),
            (
                "SHUTDOWN_GRACE_MS",
                "1h",
                "invalid configuration: SHUTDOWN_GRACE_MS=\"1h\": expected an integer number of milliseconds from 0 to 3600000",
            ),
            (
                "HANDLER_WORKERS",
                "0",
                "invalid configuration: HANDLER_WORKERS=\"0\": expected an integer number of worker threads from 1 to 256",
            ),
            (
                "PUBLISH_CHANNELS",
                "many",
                "invalid configuration: PUBLISH_CHANNELS=\"many\": expected an integer number of channels from 1 to 64",
            ),
            (
                "MAX_IN_FLIGHT",
                "0",
                "invalid configuration: MAX_IN_FLIGHT=\"0\": expected an integer number of requests from 1 to 1000000",
            ),
            (
                "QUEUE_TYPE",
                "stream",
                "invalid configuration: QUEUE_TYPE=\"stream\": expected quorum or classic",
            ),
        ];
        for (variable, value, expected) in cases {
            let error = read(&[("WEBHOOK_SECRET", "s"), (variable, value)]).unwrap_err();
            assert_eq!(error.to_string(), expected);
        }
    }

    #[test]
    fn a_bad_amqp_url_does_not_show_its_password() {
        let error = read(&[("WEBHOOK_SECRET", "s"), ("AMQP_URL", "amqp://user:pa55word@host:port/")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("invalid configuration: AMQP_URL="), "{error}");
        assert!(!error.contains("pa55word"), "{error}");
    }
}
