use std::time::Duration;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use consumer::{Application, Settings};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use testkit::{Env, TestBroker, TestDatabase, eventually};
use tokio_util::sync::CancellationToken;
use webhook_core::config::Vars;
use webhook_core::envelope::Envelope;

/// How long anything that should happen "soon" may take on a loaded 2-core machine.
pub(crate) const SOON: Duration = Duration::from_secs(30);

/// A broker prefix and a database of the test's own.
pub(crate) struct Services {
    pub(crate) broker: TestBroker,
    pub(crate) database: TestDatabase,
}

impl Services {
    pub(crate) fn new() -> Self {
        Self {
            broker: TestBroker::new(),
            database: TestDatabase::new(),
        }
    }

    /// Settings for a consumer on these services, on a free port, with short retry delays.
    pub(crate) fn env(&self) -> Env {
        Env::new()
            .with("AMQP_URL", testkit::amqp_url())
            .with("AMQP_PREFIX", self.broker.prefix())
            .with("DATABASE_URL", self.database.url())
            .with("CONSUMER_ADDR", "127.0.0.1:0")
            .with("RETRY_DELAYS", "100ms")
            .with("SHUTDOWN_GRACE_MS", 5000)
    }

    /// A publisher standing in for the request handler.
    pub(crate) async fn sender(&self) -> Sender {
        Sender::new(&self.broker).await
    }

    /// Every row of `events`, ordered by (source, delivery id).
    pub(crate) async fn rows(&self) -> Vec<EventRow> {
        let mut connection = self.database.connect().await;
        sqlx::query_as(
            "SELECT source, delivery_id, event_type, body, body_sha256, received_at, stored_at, retry_count, duplicates \
             FROM events ORDER BY source, delivery_id",
        )
        .fetch_all(&mut connection)
        .await
        .unwrap()
    }

    /// Waits until `events` holds exactly `count` rows, and returns them.
    pub(crate) async fn rows_when(&self, count: usize) -> Vec<EventRow> {
        eventually(&format!("{count} rows in events"), SOON, || async {
            let rows = self.rows().await;
            assert!(rows.len() <= count, "more rows than expected: {}", rows.len());
            (rows.len() == count).then_some(rows)
        })
        .await
    }

    /// Waits until `ledger_messages` holds `count` messages with an outcome (the last write
    /// before a batch is acked).
    pub(crate) async fn ledger_recorded(&self, count: i64) {
        eventually(&format!("{count} settled messages in the ledger"), SOON, || async {
            let mut connection = self.database.connect().await;
            let settled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_messages WHERE outcome IS NOT NULL")
                .fetch_one(&mut connection)
                .await
                .unwrap();
            (settled == count).then_some(())
        })
        .await;
    }

    /// Runs a statement on the test database (which must exist).
    pub(crate) async fn execute(&self, statement: &'static str) {
        let mut connection = self.database.connect().await;
        sqlx::query(statement).execute(&mut connection).await.unwrap();
    }
}

pub(crate) use testkit::SourcesFile;

impl Services {
    /// Every row of `sales`, ordered by (source, order id).
    pub(crate) async fn sales(&self) -> Vec<SaleRow> {
        let mut connection = self.database.connect().await;
        sqlx::query_as(
            "SELECT source, order_id, currency, amount_minor, sold_at, sale_event_id, refunded_minor, refunded_at, \
             refund_event_id FROM sales ORDER BY source, order_id",
        )
        .fetch_all(&mut connection)
        .await
        .unwrap()
    }

    /// Every row of the `sales_per_month` view, ordered by (source, month, currency).
    pub(crate) async fn sales_per_month(&self) -> Vec<MonthRow> {
        let mut connection = self.database.connect().await;
        sqlx::query_as(
            "SELECT source, month, currency, CAST(orders AS SIGNED) AS orders, CAST(gross_minor AS SIGNED) AS gross_minor, \
             CAST(refunded_minor AS SIGNED) AS refunded_minor, CAST(net_minor AS SIGNED) AS net_minor \
             FROM sales_per_month ORDER BY source, month, currency",
        )
        .fetch_all(&mut connection)
        .await
        .unwrap()
    }

    /// (source, delivery id, status, processed_at is set) of every event.
    pub(crate) async fn statuses(&self) -> Vec<(String, String, String, bool)> {
        let mut connection = self.database.connect().await;
        sqlx::query_as(
            "SELECT source, delivery_id, status, processed_at IS NOT NULL FROM events ORDER BY source, delivery_id",
        )
        .fetch_all(&mut connection)
        .await
        .unwrap()
    }

    /// Every row of `dead_letters`, oldest first.
    pub(crate) async fn dead_letter_rows(&self) -> Vec<DeadLetterRow> {
        let mut connection = self.database.connect().await;
        sqlx::query_as(
            "SELECT source, delivery_id, event_type, reason, error, retry_count, dead_lettered_at FROM dead_letters ORDER BY id",
        )
        .fetch_all(&mut connection)
        .await
        .unwrap()
    }
}

/// A row of `sales`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct SaleRow {
    pub(crate) source: String,
    pub(crate) order_id: String,
    pub(crate) currency: String,
    pub(crate) amount_minor: i64,
    pub(crate) sold_at: Option<NaiveDateTime>,
    pub(crate) sale_event_id: Option<String>,
    pub(crate) refunded_minor: i64,
    pub(crate) refunded_at: Option<NaiveDateTime>,
    pub(crate) refund_event_id: Option<String>,
}

/// A row of `sales_per_month`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct MonthRow {
    pub(crate) source: String,
    pub(crate) month: String,
    pub(crate) currency: String,
    pub(crate) orders: i64,
    pub(crate) gross_minor: i64,
    pub(crate) refunded_minor: i64,
    pub(crate) net_minor: i64,
}

/// A row of `dead_letters`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct DeadLetterRow {
    pub(crate) source: String,
    pub(crate) delivery_id: String,
    pub(crate) event_type: String,
    pub(crate) reason: String,
    pub(crate) error: String,
    pub(crate) retry_count: u32,
    pub(crate) dead_lettered_at: NaiveDateTime,
}

/// A row of `events`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct EventRow {
    pub(crate) source: String,
    pub(crate) delivery_id: String,
    pub(crate) event_type: String,
    pub(crate) body: String,
    pub(crate) body_sha256: String,
    pub(crate) received_at: NaiveDateTime,
    pub(crate) stored_at: NaiveDateTime,
    pub(crate) retry_count: u32,
    pub(crate) duplicates: u32,
}

/// A consumer running in-process.
pub(crate) struct TestApp {
    base: String,
    client: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Builds and runs a consumer with `env`, and waits until it is ready.
    pub(crate) async fn spawn(env: &Env) -> Self {
        let app = Self::spawn_unready(env).await;
        app.wait_ready().await;
        app
    }

    /// Builds and runs a consumer with `env` without waiting for it to be ready.
    pub(crate) async fn spawn_unready(env: &Env) -> Self {
        // RUST_LOG=consumer=debug shows what the consumer does.
        let _ = env_logger::builder().is_test(true).try_init();
        let lookup = env.lookup();
        let settings = Settings::from_vars(&Vars::new(&lookup)).unwrap();
        let app = Application::build(settings).await.unwrap();
        let base = format!("http://{}", app.addr());
        let shutdown = app.shutdown_token();
        let task = tokio::spawn(app.run());
        Self {
            base,
            client: reqwest::Client::new(),
            shutdown,
            task: Some(task),
        }
    }

    pub(crate) async fn wait_ready(&self) {
        self.wait_status("/readyz", 200).await;
    }

    /// Waits until `GET path` answers `status`.
    pub(crate) async fn wait_status(&self, path: &str, status: u16) {
        eventually(&format!("{path} to answer {status}"), SOON, || async {
            (self.get(path).await.status() == status).then_some(())
        })
        .await;
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// The URL of `path` on the consumer's HTTP server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The value of one sample of `/metrics`, e.g. `webhook_consumer_duplicates_total` or
    /// `webhook_consumer_dead_lettered_total{reason="poison"}`; 0 when absent.
    pub(crate) async fn metric(&self, sample: &str) -> f64 {
        let text = self.get("/metrics").await.text().await.unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |value| value.trim().parse().unwrap())
    }

    /// Waits until the counter `sample` reads `expected`, failing at once if it goes past it. A
    /// worker counts a batch just after the commit that makes its rows visible, so a test that
    /// has just seen the rows may still read the count one batch short.
    pub(crate) async fn metric_reaches(&self, sample: &str, expected: f64) {
        eventually(&format!("{sample} to reach {expected}"), SOON, || async {
            let value = self.metric(sample).await;
            assert!(value <= expected, "{sample} is {value}, past {expected}");
            (value == expected).then_some(())
        })
        .await;
    }

    /// Stops the consumer gracefully and waits until it has (it must end cleanly).
    pub(crate) async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(SOON, task)
                .await
                .expect("the consumer did not stop in time")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Publishes to the exchange `{P}` the way the request handler does: persistent, mandatory,
/// confirmed.
pub(crate) struct Sender {
    connection: Connection,
    channel: Channel,
    exchange: String,
}

impl Sender {
    async fn new(broker: &TestBroker) -> Self {
        let connection = broker.connect().await;
        let channel = connection.create_channel().await.unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        Self {
            connection,
            channel,
            exchange: broker.prefix().to_owned(),
        }
    }

    /// Publishes an event with its envelope.
    pub(crate) async fn event(&self, envelope: &Envelope, body: &[u8]) {
        self.raw(&envelope.routing_key(), envelope.properties(), body).await;
    }

    /// Publishes anything, confirmed.
    pub(crate) async fn raw(&self, routing_key: &str, properties: BasicProperties, body: &[u8]) {
        self.publish(&self.exchange, routing_key, properties, body).await;
    }

    /// Publishes `body` straight into the queue named `queue`, confirmed.
    pub(crate) async fn to_queue(&self, queue: &str, body: &[u8]) {
        self.publish("", queue, BasicProperties::default(), body).await;
    }

    async fn publish(&self, exchange: &str, routing_key: &str, properties: BasicProperties, body: &[u8]) {
        let confirmation = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(
            matches!(confirmation, Confirmation::Ack(None)),
            "not confirmed: {confirmation:?}"
        );
    }

    pub(crate) async fn close(self) {
        let _ = self.connection.close(200, "OK".into()).await;
    }
}

/// An envelope as the handler would make it, received now (to the microsecond, as the header
/// carries it).
pub(crate) fn envelope(source: &str, delivery_id: &str, event_type: &str) -> Envelope {
    Envelope {
        source: source.to_owned(),
        delivery_id: delivery_id.to_owned(),
        event_type: event_type.to_owned(),
        received_at: Utc::now().trunc_subsecs(6),
        retry_count: 0,
        body_format: webhook_core::payload::BodyFormat::Json,
    }
}

/// The hex SHA-256 of `body`.
pub(crate) fn sha256(body: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(body))
}

/// A header of a message as text.
pub(crate) fn header(properties: &BasicProperties, name: &str) -> Option<String> {
    webhook_core::envelope::header_text(properties.headers().as_ref()?, name)
}

/// What a run of the consumer binary printed, and how it ended.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Services {
    /// Runs the real `consumer` binary with `args` against these services (and `vars`), with
    /// no `.env`, and waits for it to end (within [`SOON`]).
    pub(crate) async fn consumer(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let dir = std::env::temp_dir().join(format!("consumer-run-{}", testkit::unique_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_consumer"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", self.database.url())
            .env("AMQP_URL", testkit::amqp_url())
            .env("AMQP_PREFIX", self.broker.prefix())
            .env("RUST_LOG", "warn")
            .current_dir(&dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let (status, stdout, stderr) = tokio::task::spawn_blocking(move || {
            // Read both pipes while it runs, so a full pipe cannot block it.
            let mut out = child.stdout.take().unwrap();
            let mut err = child.stderr.take().unwrap();
            let reader = std::thread::spawn(move || {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut out, &mut text).unwrap();
                text
            });
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut err, &mut stderr).unwrap();
            let started = std::time::Instant::now();
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if started.elapsed() > SOON {
                    let _ = child.kill();
                    panic!("consumer did not end within {SOON:?}: {stderr}");
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            (status, reader.join().unwrap(), stderr)
        })
        .await
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        Run {
            success: status.success(),
            stdout,
            stderr,
        }
    }

    /// (delivery id, body, purged_at is set, status, duplicates) of every event of `source`.
    pub(crate) async fn kept(&self, source: &str) -> Vec<Kept> {
        let mut connection = self.database.connect().await;
        sqlx::query_as(
            "SELECT delivery_id, body, purged_at IS NOT NULL AS purged, status, duplicates FROM events \
             WHERE source = ? ORDER BY delivery_id",
        )
        .bind(source)
        .fetch_all(&mut connection)
        .await
        .unwrap()
    }
}

/// What `events` keeps of an event.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Kept {
    pub(crate) delivery_id: String,
    pub(crate) body: Option<String>,
    pub(crate) purged: bool,
    pub(crate) status: String,
    pub(crate) duplicates: u32,
}

impl TestApp {
    /// Builds and runs a consumer with `settings` as given (tests change what no variable
    /// sets, such as the purge's schedule), and waits until it is ready.
    pub(crate) async fn spawn_with(settings: Settings) -> Self {
        let _ = env_logger::builder().is_test(true).try_init();
        let app = Application::build(settings).await.unwrap();
        let base = format!("http://{}", app.addr());
        let shutdown = app.shutdown_token();
        let task = tokio::spawn(app.run());
        let app = Self {
            base,
            client: reqwest::Client::new(),
            shutdown,
            task: Some(task),
        };
        app.wait_ready().await;
        app
    }
}

/// `env` read as the consumer reads it.
pub(crate) fn settings(env: &Env) -> Settings {
    let lookup = env.lookup();
    Settings::from_vars(&Vars::new(&lookup)).unwrap()
}

/// A canonical sale or refund body, with the customer it is for.
pub(crate) fn canonical_sale(event_type: &str, order_id: &str, amount: i64, at: &str, customer: &str) -> String {
    serde_json::json!({
        "type": event_type, "occurred_at": at,
        "data": {"order_id": order_id, "amount": amount, "currency": "EUR", "customer": {"id": customer}}
    })
    .to_string()
}
