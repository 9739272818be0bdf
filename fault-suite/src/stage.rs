//! One scenario's world: its own broker prefix and database (both removed when it ends), proxies
//! between the services and the broker and database that the scenario can cut, the services'
//! configuration, and reading back what ended up where.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use sqlx::{Connection as _, MySqlConnection};
use testkit::{TcpProxy, TestBroker, TestDatabase};
use tokio::time::Instant;
use webhook_core::envelope::Envelope;

use crate::check::Row;
use crate::cluster::Cluster;
use crate::load::{REFUSED_EVENT_TYPE, Target};
use crate::process::{Log, Service};

/// Retry delays of the services under test: short, so the ladder is walked in a second.
const RETRY_DELAYS: &str = "200ms,500ms";
/// How many retry queues that makes.
const RETRY_QUEUES: usize = 2;
/// Retries before a refused message is dead-lettered.
const MAX_RETRIES: u32 = 2;
/// The services' shutdown grace.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a service may take to become ready.
pub(crate) const READY_DEADLINE: Duration = Duration::from_secs(30);
/// How long draining may take at most.
const DRAIN_DEADLINE: Duration = Duration::from_secs(90);
/// With every queue empty, how long the counts must stay still before draining is over even
/// though not everything expected has arrived: longer than the consumer's longest backoff
/// while holding a batch (5 s), so a held batch is not mistaken for a lost one.
const QUIET_FOR: Duration = Duration::from_secs(8);

/// Where the service binaries are and where logs go.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub(crate) handler: PathBuf,
    pub(crate) consumer: PathBuf,
    /// This run's directory under `target/fault-suite/`.
    pub(crate) logs: PathBuf,
}

/// How the consumer under test is tuned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConsumerTuning {
    /// `BATCH_WAIT_MS`: longer keeps a batch in hand most of the time (for kills mid-batch).
    pub(crate) batch_wait_ms: u64,
}

impl Default for ConsumerTuning {
    fn default() -> Self {
        Self { batch_wait_ms: 20 }
    }
}

/// A scenario's world. Services are started from it and must be dropped before it (declare
/// them after it): they are killed when dropped, then the proxies stop, then the prefix's
/// queues and exchanges are deleted and the database is dropped.
pub(crate) struct Stage {
    pub(crate) name: String,
    pub(crate) log: Log,
    pub(crate) client: reqwest::Client,
    paths: Paths,
    secret: String,
    /// Between both services and the broker.
    pub(crate) broker_proxy: TcpProxy,
    /// The services' `AMQP_URL`: through the proxy, or every node of a cluster.
    amqp_url: String,
    /// Between the consumer and the database.
    pub(crate) database_proxy: TcpProxy,
    broker: TestBroker,
    database: TestDatabase,
    tuning: ConsumerTuning,
}

impl Stage {
    /// A stage on the machine's broker (through a proxy the scenario can cut), or on `cluster`.
    pub(crate) async fn new(
        name: &str,
        round: u32,
        paths: &Paths,
        tuning: ConsumerTuning,
        cluster: Option<&Cluster>,
    ) -> anyhow::Result<Self> {
        let log = Log::create(log_file(paths, round, name))?;
        let database = TestDatabase::new();
        let broker_proxy = TcpProxy::start(&host_port(&testkit::amqp_url())).await;
        let (broker, amqp_url) = match cluster {
            None => (TestBroker::new(), broker_proxy.amqp_url()),
            Some(cluster) => (TestBroker::on(cluster.urls()), cluster.amqp_url()),
        };
        let database_proxy = TcpProxy::start(&host_port(&testkit::database_server_url())).await;
        log.note(&format!(
            "scenario {name}: prefix {} database {} broker proxy {} database proxy {}",
            broker.prefix(),
            database.name(),
            broker_proxy.addr(),
            database_proxy.addr()
        ));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            name: name.to_owned(),
            log,
            client,
            paths: paths.clone(),
            secret: format!("fault-suite-{}", testkit::unique_suffix()),
            broker_proxy,
            amqp_url,
            database_proxy,
            broker,
            database,
            tuning,
        })
    }

    /// The scenario's `AMQP_PREFIX`.
    pub(crate) fn prefix(&self) -> &str {
        self.broker.prefix()
    }

    fn common_env(&self) -> Vec<(String, String)> {
        [
            ("AMQP_URL", self.amqp_url.clone()),
            ("AMQP_PREFIX", self.broker.prefix().to_owned()),
            ("RETRY_DELAYS", RETRY_DELAYS.to_owned()),
            ("SHUTDOWN_GRACE_MS", SHUTDOWN_GRACE.as_millis().to_string()),
            ("RUST_LOG", "info".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// Starts the request handler and waits until it is ready.
    pub(crate) async fn start_handler(&self) -> anyhow::Result<(Service, Target)> {
        self.start_handler_with(&[]).await
    }

    /// Starts the request handler with these variables as well, and waits until it is ready.
    pub(crate) async fn start_handler_with(&self, extra: &[(&str, &str)]) -> anyhow::Result<(Service, Target)> {
        self.start_handler_on(free_addr()?, "request-handler", extra).await
    }

    /// Writes a sources file whose `default` source (the GitHub scheme, the stage's secret)
    /// spools while the broker is away, and makes a spool directory; returns the handler's
    /// variables for both. Each call makes a new directory under the run's logs.
    pub(crate) fn spooling_handler_env(&self) -> anyhow::Result<Vec<(&'static str, String)>> {
        let dir = self
            .paths
            .logs
            .join(format!("{}-spool-{}", self.name, testkit::unique_suffix()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let sources = dir.join("sources.toml");
        std::fs::write(
            &sources,
            format!(
                "[[source]]\nname = \"default\"\nscheme = \"github\"\nsecrets = [\"{}\"]\nwhen_broker_down = \"spool\"\n",
                self.secret
            ),
        )
        .with_context(|| format!("writing {}", sources.display()))?;
        self.log.note(&format!("spool directory {}", dir.display()));
        Ok(vec![
            ("SOURCES_FILE", sources.display().to_string()),
            ("SPOOL_DIR", dir.join("spool").display().to_string()),
        ])
    }

    /// Starts the request handler as `name` on `addr` (a restart takes its predecessor's
    /// address, so that the load goes on to the same URL), with these variables as well, and
    /// waits until it is ready.
    pub(crate) async fn start_handler_on(
        &self,
        addr: SocketAddr,
        name: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<(Service, Target)> {
        let mut env = self.common_env();
        env.extend(
            [
                ("HANDLER_ADDR", addr.to_string()),
                ("WEBHOOK_SECRET", self.secret.clone()),
                ("ENQUEUE_TIMEOUT_MS", "2000".to_owned()),
            ]
            .map(|(name, value)| (name.to_owned(), value)),
        );
        env.extend(
            extra
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
        );
        let mut service = Service::spawn(&self.paths.handler, name, &env, addr, &self.paths.logs, &self.log)?;
        service.wait_ready(&self.client, READY_DEADLINE).await?;
        let target = Target {
            url: format!("http://{addr}/webhook"),
            secret: self.secret.clone(),
            tag: format!("{}-{}", self.name, testkit::unique_suffix()),
        };
        Ok((service, target))
    }

    /// Starts a consumer named `name` and waits until it is ready.
    pub(crate) async fn start_consumer(&self, name: &str) -> anyhow::Result<Service> {
        let addr = free_addr()?;
        let mut env = self.common_env();
        env.extend(
            [
                ("CONSUMER_ADDR", addr.to_string()),
                ("DATABASE_URL", self.database.url_through(&self.database_proxy)),
                ("MAX_RETRIES", MAX_RETRIES.to_string()),
                ("BATCH_WAIT_MS", self.tuning.batch_wait_ms.to_string()),
            ]
            .map(|(name, value)| (name.to_owned(), value)),
        );
        let mut service = Service::spawn(&self.paths.consumer, name, &env, addr, &self.paths.logs, &self.log)?;
        service.wait_ready(&self.client, READY_DEADLINE).await?;
        Ok(service)
    }

    /// A connection straight to the scenario's database (never through the proxy).
    pub(crate) async fn database(&self) -> anyhow::Result<MySqlConnection> {
        MySqlConnection::connect(&self.database.url())
            .await
            .with_context(|| format!("connecting to {}", self.database.name()))
    }

    /// Makes the database refuse events of [`REFUSED_EVENT_TYPE`]: a rule the table did not
    /// have, as a stand-in for any row the database refuses on its own.
    pub(crate) async fn refuse_in_database(&self) -> anyhow::Result<()> {
        let mut connection = self.database().await?;
        let statement = format!(
            "ALTER TABLE events ADD CONSTRAINT fault_suite_refused CHECK (event_type <> '{REFUSED_EVENT_TYPE}')"
        );
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut connection)
            .await
            .context("adding the CHECK constraint")?;
        self.log
            .note(&format!("the database now refuses events of type {REFUSED_EVENT_TYPE}"));
        Ok(())
    }

    /// Publishes poison straight to the exchange `{P}` (confirmed): `headerless` messages with
    /// a delivery id but none of the envelope headers, and `not_json` with a full envelope but
    /// a body that is not JSON. Returns their delivery ids.
    pub(crate) async fn publish_poison(
        &self,
        tag: &str,
        headerless: usize,
        not_json: usize,
    ) -> anyhow::Result<Vec<String>> {
        let messages = (0..headerless)
            .map(|n| {
                let id = format!("{tag}-poison-headerless-{n}");
                let properties = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_message_id(id.as_str().into());
                (id, properties, br#"{"poison":"no headers"}"#.to_vec())
            })
            .chain((0..not_json).map(|n| {
                let id = format!("{tag}-poison-not-json-{n}");
                (id.clone(), envelope(&id, "poison").properties(), b"{not json".to_vec())
            }))
            .collect();
        let ids = self.publish_straight("default.poison", messages).await?;
        self.log.note(&format!(
            "published poison: {headerless} without headers, {not_json} not JSON"
        ));
        Ok(ids)
    }

    /// Publishes `(delivery id, properties, body)` messages straight to the exchange `{P}`
    /// with `routing_key`, each confirmed. Returns their delivery ids.
    async fn publish_straight(
        &self,
        routing_key: &str,
        messages: Vec<(String, BasicProperties, Vec<u8>)>,
    ) -> anyhow::Result<Vec<String>> {
        let connection = Connection::connect(&testkit::amqp_url(), ConnectionProperties::default())
            .await
            .context("connecting to the broker")?;
        let published = async {
            let channel = connection.create_channel().await?;
            channel.confirm_select(ConfirmSelectOptions::default()).await?;
            let mut ids = Vec::new();
            for (id, properties, body) in messages {
                let confirmation = channel
                    .basic_publish(
                        self.broker.prefix().into(),
                        routing_key.into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        },
                        &body,
                        properties,
                    )
                    .await?
                    .await?;
                if !matches!(confirmation, Confirmation::Ack(None)) {
                    bail!("{id} was not confirmed: {confirmation:?}");
                }
                ids.push(id);
            }
            Ok(ids)
        }
        .await;
        let _ = connection.close(200, "OK".into()).await;
        published
    }

    /// Waits until the events and retry queues are empty and the rows and dead letters have
    /// settled: every delivery id of `stored` has its row and at least `dead` letters are in
    /// `{P}.dead`, still for a second; or nothing changed for [`QUIET_FOR`] whatever they are.
    /// The ids, not a count: events answered 500 may be stored too, and would make up for one
    /// answered 200 that a consumer still holds (a held batch is invisible to the queue's
    /// ready count). Returns how long it took; fails only when [`DRAIN_DEADLINE`] passes with
    /// messages still queued.
    pub(crate) async fn drain(&self, stored_ids: &HashSet<&str>, dead: usize) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut connection = self.database().await?;
        let mut last = (usize::MAX, u32::MAX);
        let mut changed = Instant::now();
        loop {
            let mut queued = Vec::new();
            for suffix in std::iter::once(".events".to_owned()).chain((1..=RETRY_QUEUES).map(|n| format!(".retry.{n}")))
            {
                match self.broker.depth(&suffix).await {
                    Some(0) => {}
                    Some(depth) => queued.push(format!("{suffix}={depth}")),
                    None => queued.push(format!("{suffix} missing")),
                }
            }
            let ids: Vec<String> = sqlx::query_scalar("SELECT delivery_id FROM events")
                .fetch_all(&mut connection)
                .await
                .context("reading the stored delivery ids")?;
            let stored = ids.len();
            let present: HashSet<&str> = ids.iter().map(String::as_str).collect();
            let missing = stored_ids.iter().filter(|id| !present.contains(*id)).count();
            let dead_now = self.broker.depth(".dead").await.unwrap_or_default();
            if (stored, dead_now) != last {
                last = (stored, dead_now);
                changed = Instant::now();
            }
            let still = changed.elapsed();
            if queued.is_empty() {
                let complete = missing == 0 && dead_now as usize >= dead;
                if (complete && still >= Duration::from_secs(1)) || still >= QUIET_FOR {
                    self.log.note(&format!(
                        "drained in {} ms: rows={stored} dead={dead_now}; of the {} answered 200, {missing} not stored \
                         (expected at least {dead} dead)",
                        started.elapsed().as_millis(),
                        stored_ids.len()
                    ));
                    return Ok(started.elapsed());
                }
            }
            if started.elapsed() >= DRAIN_DEADLINE {
                bail!(
                    "not drained after {DRAIN_DEADLINE:?}: still queued {}; rows={stored} dead={dead_now}",
                    queued.join(" ")
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Roughly how many events a consumer holds right now: answered 200 (`accepted`) but
    /// neither stored nor waiting in `{P}.events`. Logged before a kill, to show it strikes a
    /// consumer with deliveries in hand.
    pub(crate) async fn in_hand(&self, accepted: u64) -> anyhow::Result<u64> {
        let mut connection = self.database().await?;
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&mut connection)
            .await
            .context("counting events")?;
        let waiting = self.broker.depth(".events").await.unwrap_or_default();
        let stored = u64::try_from(stored).unwrap_or_default();
        Ok(accepted.saturating_sub(stored + u64::from(waiting)))
    }

    /// Every row of `events`.
    pub(crate) async fn rows(&self) -> anyhow::Result<Vec<Row>> {
        let mut connection = self.database().await?;
        let rows: Vec<(String, String, u32)> =
            sqlx::query_as("SELECT delivery_id, body_sha256, duplicates FROM events ORDER BY id")
                .fetch_all(&mut connection)
                .await
                .context("reading events")?;
        Ok(rows
            .into_iter()
            .map(|(delivery_id, body_sha256, duplicates)| Row {
                delivery_id,
                body_sha256,
                duplicates: u64::from(duplicates),
            })
            .collect())
    }

    /// Takes every dead letter out of `{P}.dead` (the queue is deleted with the scenario) and
    /// returns their delivery ids with their `error` header, which also go to the log.
    pub(crate) async fn dead_letters(&self) -> Vec<(String, String)> {
        let taken = self.broker.take_all(".dead").await;
        taken
            .iter()
            .map(|letter| {
                let id = letter
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.as_str().to_owned())
                    .unwrap_or_default();
                let error = letter
                    .properties
                    .headers()
                    .as_ref()
                    .and_then(|headers| {
                        webhook_core::envelope::header_text(headers, webhook_core::envelope::header::ERROR)
                    })
                    .unwrap_or_default();
                self.log.note(&format!("dead letter {id:?}: {error}"));
                (id, error)
            })
            .collect()
    }

    /// The database's `max_allowed_packet`.
    pub(crate) async fn max_allowed_packet(&self) -> anyhow::Result<u64> {
        let mut connection = self.database().await?;
        sqlx::query_scalar("SELECT @@max_allowed_packet")
            .fetch_one(&mut connection)
            .await
            .context("reading max_allowed_packet")
    }

    /// The ledger summed over every source and day, once the last batch's ledger rows are in:
    /// (accepted, difference, unexplained). Waits up to `deadline` for the difference to
    /// reach 0 (the ledger row is written just before a batch's ack, after its events).
    pub(crate) async fn ledger(&self, deadline: Duration) -> anyhow::Result<(i64, i64, i64)> {
        let until = Instant::now() + deadline;
        loop {
            let mut connection = self.database().await?;
            let sums: (Option<i64>, Option<i64>, Option<i64>) = sqlx::query_as(
                "SELECT CAST(SUM(accepted) AS SIGNED), CAST(SUM(difference) AS SIGNED), \
                 CAST(SUM(unexplained) AS SIGNED) FROM ledger",
            )
            .fetch_one(&mut connection)
            .await
            .context("reading the ledger")?;
            let sums = (sums.0.unwrap_or(0), sums.1.unwrap_or(0), sums.2.unwrap_or(0));
            if sums.1 == 0 || Instant::now() >= until {
                return Ok(sums);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many rows `events` holds.
    pub(crate) async fn stored(&self) -> anyhow::Result<u64> {
        let mut connection = self.database().await?;
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&mut connection)
            .await
            .context("counting events")?;
        Ok(u64::try_from(stored).unwrap_or_default())
    }

    /// Publishes events with a full envelope straight to the exchange `{P}` (confirmed), one of
    /// each of `sizes` bytes of body. Returns their delivery ids.
    pub(crate) async fn publish_large(&self, tag: &str, sizes: &[usize]) -> anyhow::Result<Vec<String>> {
        let messages = sizes.iter().enumerate().map(|(n, &size)| {
            let id = format!("{tag}-large-{n}");
            let body = serde_json::json!({"id": id, "pad": "x".repeat(size)}).to_string();
            (id.clone(), envelope(&id, "order.note").properties(), body.into_bytes())
        });
        let ids = self.publish_straight("default.order.note", messages.collect()).await?;
        self.log
            .note(&format!("published {} large event(s): {sizes:?} bytes", ids.len()));
        Ok(ids)
    }
}

/// The envelope of an event of source `default` published straight to `{P}`, received now.
fn envelope(delivery_id: &str, event_type: &str) -> Envelope {
    Envelope {
        source: "default".to_owned(),
        delivery_id: delivery_id.to_owned(),
        event_type: event_type.to_owned(),
        received_at: chrono::Utc::now(),
        retry_count: 0,
        body_format: webhook_core::payload::BodyFormat::Json,
    }
}

/// The log file of scenario `name` in round `round`.
pub(crate) fn log_file(paths: &Paths, round: u32, name: &str) -> PathBuf {
    paths.logs.join(format!("{round}-{name}.log"))
}

/// `host:port` of a URL such as `scheme://user:password@host:port/path`.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// A loopback address with a port that was free a moment ago.
fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    listener.local_addr().context("reading the free port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_is_read_from_broker_and_database_urls() {
        assert_eq!(host_port("amqp://guest:guest@127.0.0.1:5672/%2f"), "127.0.0.1:5672");
        assert_eq!(host_port("mysql://root@127.0.0.1:3306"), "127.0.0.1:3306");
        assert_eq!(host_port("mysql://db:3307/x"), "db:3307");
    }
}
