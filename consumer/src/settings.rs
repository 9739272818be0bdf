//! The consumer's settings, read once at start from the environment (or a map in tests).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::MySqlConnectOptions;
use webhook_core::broker::BrokerSettings;
use webhook_core::config::{ConfigError, Url, Vars};
use webhook_core::sources::SourcesFile;

use crate::processors::Mappings;
use crate::rejections::KnownSources;
use crate::retention::{self, Retention};

/// Default `DATABASE_URL`.
pub const DEFAULT_DATABASE_URL: &str = "mysql://root@127.0.0.1:3306/webhooks";

/// Everything the consumer needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Broker URL and topology (`AMQP_URL`, `AMQP_PREFIX`, `QUEUE_TYPE`, `RETRY_DELAYS`).
    pub broker: BrokerSettings,
    /// `DATABASE_URL`: a `mysql://` URL that names a database (created if missing).
    pub database_url: Url,
    /// `CONSUMER_ADDR`, default `0.0.0.0:3001`: health and metrics.
    pub addr: SocketAddr,
    /// `PREFETCH`, default 1000 (1 to 2000, the quorum-queue cap): unacked deliveries in flight
    /// per worker. Twice `BATCH_SIZE`, so the next batch arrives while one commits.
    pub prefetch: u16,
    /// `BATCH_SIZE`, default 500 (1 to 5000, at most `PREFETCH`): deliveries per transaction.
    pub batch_size: usize,
    /// `BATCH_WAIT_MS`, default 20 ms: how long a batch may wait for more deliveries after its
    /// first one.
    pub batch_wait: Duration,
    /// `MAX_RETRIES`, default 5: retries of a message the database refuses before it is
    /// dead-lettered.
    pub max_retries: u32,
    /// `CONSUMER_WORKERS`, default 2 (1 to 16): batch pipelines in this process, each with its
    /// own connection, channel and `PREFETCH`, so one batch is read and processed while
    /// another commits.
    pub workers: usize,
    /// `DB_POOL_SIZE`, default 4.
    pub db_pool_size: u32,
    /// `SHUTDOWN_GRACE_MS`, default 10 s: how long the batch in hand gets to be committed and
    /// acked after a stop is requested.
    pub shutdown_grace: Duration,
    /// `SOURCES_FILE`, optional: the request handler's file of sources, read here for the
    /// `[source.sales]` mapping of each (sources without one use the canonical format).
    pub sources_file: Option<PathBuf>,
    /// `RETENTION_DAYS`, optional (1 to 36500): bodies of events received longer ago are
    /// purged; unset keeps them forever. Tests may change its schedule.
    pub retention: Option<Retention>,
    /// `LEDGER_GRACE_MS`, default 10 minutes: how long past its retry delay a message sent to a
    /// retry queue may take to come back before the ledger calls it unexplained.
    pub ledger_grace: Duration,
    /// The sales mapping of every source, read from `SOURCES_FILE`.
    pub(crate) sales: Arc<Mappings>,
    /// `default` and the sources of `SOURCES_FILE`: rejections of any other are one bucket.
    pub(crate) sources: Arc<KnownSources>,
}

impl Settings {
    /// Reads and validates every variable; the first bad one is the error.
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let broker = BrokerSettings::from_vars(vars)?;
        let database_url = database_url(vars)?;
        let addr = vars.socket_addr("CONSUMER_ADDR", "0.0.0.0:3001")?;
        let prefetch = vars.integer("PREFETCH", 1000, 1, 2000, "messages")?;
        let batch_size = vars.integer("BATCH_SIZE", 500, 1, 5000, "messages")?;
        if batch_size > prefetch {
            return Err(ConfigError::invalid(
                "BATCH_SIZE",
                Some(&batch_size.to_string()),
                format!("at most PREFETCH ({prefetch}): a batch can never hold more than the broker sends unacked"),
            ));
        }
        let retention = match vars.get(retention::VARIABLE) {
            Some(_) => {
                let days = vars.integer(retention::VARIABLE, 0, 1, retention::MAX_DAYS, "days")?;
                Some(Retention::days(u32::try_from(days).unwrap_or(u32::MAX)))
            }
            None => None,
        };
        let sources_file = vars.get("SOURCES_FILE").map(PathBuf::from);
        let (sales, sources) = match &sources_file {
            Some(path) => {
                let file = SourcesFile::read(path)?;
                (Mappings::from_sources(&file), KnownSources::from_sources(&file))
            }
            None => (Mappings::default(), KnownSources::default()),
        };
        Ok(Self {
            broker,
            database_url,
            addr,
            prefetch: u16::try_from(prefetch).unwrap_or(u16::MAX),
            batch_size: usize::try_from(batch_size).unwrap_or(usize::MAX),
            batch_wait: vars.millis("BATCH_WAIT_MS", 20, 0, 60_000)?,
            max_retries: u32::try_from(vars.integer("MAX_RETRIES", 5, 0, 100, "retries")?).unwrap_or(u32::MAX),
            workers: usize::try_from(vars.integer("CONSUMER_WORKERS", 2, 1, 16, "workers")?).unwrap_or(1),
            db_pool_size: u32::try_from(vars.integer("DB_POOL_SIZE", 4, 1, 100, "connections")?).unwrap_or(u32::MAX),
            shutdown_grace: vars.millis("SHUTDOWN_GRACE_MS", 10_000, 0, 3_600_000)?,
            ledger_grace: vars.millis("LEDGER_GRACE_MS", 600_000, 0, 86_400_000)?,
            sources_file,
            retention,
            sales: Arc::new(sales),
            sources: Arc::new(sources),
        })
    }

    /// Connection options for `DATABASE_URL` (validated by [`Settings::from_vars`]).
    pub fn database_options(&self) -> anyhow::Result<MySqlConnectOptions> {
        Ok(MySqlConnectOptions::from_str(self.database_url.expose())?)
    }
}

/// `DATABASE_URL`: read as every service reads it (its TLS files checked), and naming a
/// database that can be created by name.
fn database_url(vars: &Vars<'_>) -> Result<Url, ConfigError> {
    let (url, options) = webhook_core::database::from_vars(vars, DEFAULT_DATABASE_URL)?;
    let named = options.get_database().filter(|name| is_valid_database_name(name));
    if named.is_none() {
        return Err(ConfigError::invalid(
            webhook_core::database::VARIABLE,
            Some(&url.redacted()),
            format!(
                "a MySQL URL that names the database, such as {DEFAULT_DATABASE_URL} (1 to 64 characters from a-z, A-Z, 0-9, '_', '$' and '-')"
            ),
        ));
    }
    Ok(url)
}

/// A database name the consumer may create: it is quoted with backticks in `CREATE DATABASE`.
fn is_valid_database_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Vars::with_pairs(pairs, Settings::from_vars)
    }

    fn error_line(pairs: &[(&str, &str)]) -> String {
        let line = read(pairs).unwrap_err().to_string();
        assert!(!line.contains('\n'), "{line}");
        line
    }

    #[test]
    fn defaults_follow_the_design() {
        let settings = read(&[]).unwrap();
        assert_eq!(settings.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(settings.addr.to_string(), "0.0.0.0:3001");
        assert_eq!(settings.prefetch, 1000);
        assert_eq!(settings.batch_size, 500);
        assert_eq!(settings.workers, 2);
        assert_eq!(settings.batch_wait, Duration::from_millis(20));
        assert_eq!(settings.max_retries, 5);
        assert_eq!(settings.db_pool_size, 4);
        assert_eq!(settings.shutdown_grace, Duration::from_secs(10));
        assert_eq!(settings.ledger_grace, Duration::from_secs(600));
        assert_eq!(settings.broker.topology.prefix(), "webhooks");
        assert_eq!(settings.sources_file, None);
        assert_eq!(settings.sales.summary(), "every source canonical");
        assert_eq!(
            settings.retention, None,
            "bodies are kept forever unless RETENTION_DAYS is set"
        );
    }

    #[test]
    fn retention_days_is_a_whole_number_of_days_from_1() {
        assert_eq!(
            read(&[("RETENTION_DAYS", "30")]).unwrap().retention,
            Some(Retention::days(30))
        );
        assert_eq!(read(&[("RETENTION_DAYS", "")]).unwrap().retention, None);
        for bad in ["0", "-1", "thirty", "1.5", "36501"] {
            assert_eq!(
                error_line(&[("RETENTION_DAYS", bad)]),
                format!(
                    "invalid configuration: RETENTION_DAYS=\"{bad}\": expected an integer number of days from 1 to 36500"
                )
            );
        }
    }

    #[test]
    fn sources_file_gives_sources_their_sales_mapping_and_a_bad_one_is_one_line() {
        let dir = std::env::temp_dir().join(format!("consumer-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(
            &good,
            "[[source]]\nname = \"shop\"\nscheme = \"shopify\"\nsecret_env = [\"SHOP_SECRET\"]\n[source.sales]\npreset = \"shopify\"\n",
        )
        .unwrap();
        let settings = read(&[("SOURCES_FILE", good.to_str().unwrap())]).unwrap();
        assert_eq!(settings.sources_file.as_deref(), Some(good.as_path()));
        assert_eq!(settings.sales.summary(), "shop=shopify (others canonical)");

        let bad = dir.join("bad.toml");
        std::fs::write(
            &bad,
            "[[source]]\nname = \"shop\"\nscheme = \"shopify\"\n[source.sales]\npreset = \"shopify\"\namount_unit = \"cents\"\n",
        )
        .unwrap();
        let line = error_line(&[("SOURCES_FILE", bad.to_str().unwrap())]);
        assert!(
            line.starts_with(&format!("invalid configuration: SOURCES_FILE={:?}: expected a valid sources file: source \"shop\": field `sales.amount_unit`", bad.display().to_string())),
            "{line}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_database_url_with_another_scheme_is_rejected_without_its_password() {
        assert_eq!(
            error_line(&[("DATABASE_URL", "postgres://me:hunter2@db/x")]),
            "invalid configuration: DATABASE_URL=\"postgres://me:***@db/x\": expected a URL of the form mysql://…"
        );
    }

    #[test]
    fn a_database_url_must_name_the_database() {
        for bad in [
            "mysql://root@127.0.0.1:3306",
            "mysql://root@127.0.0.1:3306/",
            "mysql://h/bad`name",
        ] {
            let line = error_line(&[("DATABASE_URL", bad)]);
            assert!(
                line.starts_with("invalid configuration: DATABASE_URL=")
                    && line.contains("expected a MySQL URL that names the database"),
                "{line}"
            );
        }
    }

    #[test]
    fn an_unparseable_database_url_is_rejected() {
        let line = error_line(&[("DATABASE_URL", "mysql://root:pw@host:notaport/db")]);
        assert!(line.starts_with("invalid configuration: DATABASE_URL=\"mysql://root:***@host:notaport/db\": expected a MySQL URL such as"), "{line}");
        assert!(!line.contains("pw@"), "{line}");
    }

    #[test]
    fn a_bad_consumer_addr_is_rejected() {
        assert_eq!(
            error_line(&[("CONSUMER_ADDR", "localhost")]),
            "invalid configuration: CONSUMER_ADDR=\"localhost\": expected a socket address such as 0.0.0.0:3000"
        );
    }

    #[test]
    fn prefetch_is_between_1_and_2000() {
        assert_eq!(
            error_line(&[("PREFETCH", "0")]),
            "invalid configuration: PREFETCH=\"0\": expected an integer number of messages from 1 to 2000"
        );
        assert_eq!(
            error_line(&[("PREFETCH", "2001")]),
            "invalid configuration: PREFETCH=\"2001\": expected an integer number of messages from 1 to 2000"
        );
        assert_eq!(
            error_line(&[("PREFETCH", "many")]),
            "invalid configuration: PREFETCH=\"many\": expected an integer number of messages from 1 to 2000"
        );
    }

    #[test]
    fn batch_size_is_between_1_and_5000() {
        assert_eq!(
            error_line(&[("BATCH_SIZE", "0")]),
            "invalid configuration: BATCH_SIZE=\"0\": expected an integer number of messages from 1 to 5000"
        );
        assert_eq!(
            error_line(&[("PREFETCH", "2000"), ("BATCH_SIZE", "5001")]),
            "invalid configuration: BATCH_SIZE=\"5001\": expected an integer number of messages from 1 to 5000"
        );
    }

    #[test]
    fn batch_size_may_not_exceed_prefetch() {
        assert_eq!(
            error_line(&[("PREFETCH", "100"), ("BATCH_SIZE", "101")]),
            "invalid configuration: BATCH_SIZE=\"101\": expected at most PREFETCH (100): a batch can never hold more than the broker sends unacked"
        );
        let settings = read(&[("PREFETCH", "100"), ("BATCH_SIZE", "100")]).unwrap();
        assert_eq!((settings.prefetch, settings.batch_size), (100, 100));
    }

    #[test]
    fn batch_wait_is_0_to_60000_ms() {
        assert_eq!(read(&[("BATCH_WAIT_MS", "0")]).unwrap().batch_wait, Duration::ZERO);
        assert_eq!(
            error_line(&[("BATCH_WAIT_MS", "60001")]),
            "invalid configuration: BATCH_WAIT_MS=\"60001\": expected an integer number of milliseconds from 0 to 60000"
        );
        assert_eq!(
            error_line(&[("BATCH_WAIT_MS", "-1")]),
            "invalid configuration: BATCH_WAIT_MS=\"-1\": expected an integer number of milliseconds from 0 to 60000"
        );
    }

    #[test]
    fn max_retries_is_0_to_100() {
        assert_eq!(read(&[("MAX_RETRIES", "0")]).unwrap().max_retries, 0);
        assert_eq!(
            error_line(&[("MAX_RETRIES", "101")]),
            "invalid configuration: MAX_RETRIES=\"101\": expected an integer number of retries from 0 to 100"
        );
    }

    #[test]
    fn db_pool_size_is_1_to_100() {
        assert_eq!(
            error_line(&[("DB_POOL_SIZE", "0")]),
            "invalid configuration: DB_POOL_SIZE=\"0\": expected an integer number of connections from 1 to 100"
        );
    }

    #[test]
    fn shutdown_grace_is_a_bounded_number_of_milliseconds() {
        assert_eq!(
            error_line(&[("SHUTDOWN_GRACE_MS", "10s")]),
            "invalid configuration: SHUTDOWN_GRACE_MS=\"10s\": expected an integer number of milliseconds from 0 to 3600000"
        );
    }

    #[test]
    fn broker_variables_are_checked_too() {
        assert_eq!(
            error_line(&[("QUEUE_TYPE", "stream")]),
            "invalid configuration: QUEUE_TYPE=\"stream\": expected quorum or classic"
        );
        assert!(error_line(&[("RETRY_DELAYS", "soon")]).starts_with("invalid configuration: RETRY_DELAYS=\"soon\""));
    }
}
