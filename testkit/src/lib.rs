//! Test support for webhook-inbox, always against the real RabbitMQ and MySQL/MariaDB.
//!
//! Every test isolates itself: [`TestDatabase`] creates `test_<random>` and drops it when it
//! goes out of scope, [`TestBroker`] hands out a unique `AMQP_PREFIX` and deletes that prefix's
//! queues and exchanges at the end. [`TcpProxy`] sits between a service and the broker or
//! database so a test can cut the connection and restore it. [`eventually`] polls with a
//! deadline instead of sleeping. [`private`] starts RabbitMQ and MariaDB servers of a test's
//! own, with TLS and certificates made for the test.
//!
//! The services are found through `TEST_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`)
//! and `TEST_DATABASE_URL` (default `mysql://root@127.0.0.1:3306`, a server URL without a
//! database name).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod private;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use sqlx::{Connection as _, Executor as _, MySqlConnection};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The broker the tests use.
pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The database server the tests use, without a database name.
pub fn database_server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// A short random suffix for names.
pub fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// Configuration for a service under test: a map that `webhook_core::config::Vars` reads.
#[derive(Debug, Clone, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`.
    #[must_use]
    pub fn with(mut self, name: &str, value: impl ToString) -> Self {
        self.0.insert(name.to_owned(), value.to_string());
        self
    }

    /// Sets `name` to `value` in place.
    pub fn set(&mut self, name: &str, value: impl ToString) {
        self.0.insert(name.to_owned(), value.to_string());
    }

    /// The lookup function for `Vars::new`.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |name| self.0.get(name).cloned()
    }
}

/// Polls `check` every 25 ms until it returns `Some`, or panics naming `what` after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs `cleanup` to completion on a fresh runtime in its own thread: usable from `Drop`,
/// inside or outside a Tokio runtime.
fn run_detached<F>(cleanup: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = ()>,
{
    let joined = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(cleanup());
    })
    .join();
    if joined.is_err() {
        eprintln!("test cleanup panicked");
    }
}

/// A database of its own for one test, dropped when this value is.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    server: String,
}

impl TestDatabase {
    /// A name and URL for a database that does not exist yet (the consumer creates it and
    /// applies the migrations). It is dropped at the end either way.
    pub fn new() -> Self {
        Self {
            name: format!("test_{}", unique_suffix()),
            server: database_server_url(),
        }
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `mysql://…/test_<random>`.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    /// Same database reached through `proxy` (for outage tests).
    pub fn url_through(&self, proxy: &TcpProxy) -> String {
        let server = self.server.trim_start_matches("mysql://");
        let credentials = server
            .rsplit_once('@')
            .map(|(user, _)| format!("{user}@"))
            .unwrap_or_default();
        format!("mysql://{credentials}{}/{}", proxy.addr(), self.name)
    }

    /// A fresh connection to this database (which must exist by now).
    pub async fn connect(&self) -> MySqlConnection {
        MySqlConnection::connect(&self.url()).await.unwrap()
    }

    /// Creates the database, empty (for tests that need it before any consumer runs).
    pub async fn create(&self) {
        let mut server = MySqlConnection::connect(&self.server).await.unwrap();
        let statement = format!(
            "CREATE DATABASE `{}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            self.name
        );
        server.execute(sqlx::AssertSqlSafe(statement)).await.unwrap();
    }
}

impl Default for TestDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        run_detached(move || async move {
            if let Ok(mut connection) = MySqlConnection::connect(&server).await {
                let statement = format!("DROP DATABASE IF EXISTS `{name}`");
                if let Err(error) = connection.execute(sqlx::AssertSqlSafe(statement)).await {
                    eprintln!("could not drop test database {name}: {error}");
                }
            }
        });
    }
}

/// A topology prefix of its own for one test; its queues and exchanges are deleted when this
/// value is dropped.
#[derive(Debug)]
pub struct TestBroker {
    prefix: String,
    /// The broker's URLs (a cluster's nodes), tried in turn; the test broker's alone by default.
    urls: Vec<String>,
}

/// A message read from a queue by [`TestBroker::take_all`].
#[derive(Debug)]
pub struct Taken {
    /// Properties and headers.
    pub properties: BasicProperties,
    /// The body.
    pub body: Vec<u8>,
}

impl TestBroker {
    /// A fresh prefix `test_<random>`.
    pub fn new() -> Self {
        Self::on(&[amqp_url()])
    }

    /// A fresh prefix on another broker, such as the nodes of a cluster: `urls` are tried in
    /// turn whenever a connection is needed.
    pub fn on(urls: &[String]) -> Self {
        Self {
            prefix: format!("test_{}", unique_suffix()),
            urls: urls.to_vec(),
        }
    }

    /// The `AMQP_PREFIX` for services under this test.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A connection for the test's own inspection, to the first of its URLs that answers.
    pub async fn connect(&self) -> Connection {
        connect_any(&self.urls).await.unwrap()
    }

    /// The number of ready messages in `{prefix}{suffix}` (e.g. `.events`), or `None` when the
    /// queue does not exist yet.
    pub async fn depth(&self, suffix: &str) -> Option<u32> {
        let connection = self.connect().await;
        let channel = connection.create_channel().await.unwrap();
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let queue = format!("{}{suffix}", self.prefix);
        let depth = channel
            .queue_declare(queue.as_str().into(), options, FieldTable::default())
            .await
            .ok()
            .map(|queue| queue.message_count());
        let _ = connection.close(200, "OK".into()).await;
        depth
    }

    /// Takes (and acks) every message now ready in `{prefix}{suffix}`.
    pub async fn take_all(&self, suffix: &str) -> Vec<Taken> {
        let connection = self.connect().await;
        let channel = connection.create_channel().await.unwrap();
        let queue = format!("{}{suffix}", self.prefix);
        let mut taken = Vec::new();
        while let Some(message) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            taken.push(Taken {
                properties: message.delivery.properties.clone(),
                body: message.delivery.data.clone(),
            });
        }
        let _ = connection.close(200, "OK".into()).await;
        taken
    }
}

/// A connection to the first of `urls` that answers, or the last error.
async fn connect_any(urls: &[String]) -> Result<Connection, lapin::Error> {
    let mut last = None;
    for url in urls {
        match Connection::connect(url, ConnectionProperties::default()).await {
            Ok(connection) => return Ok(connection),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| {
        lapin::Error::from(lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed))
    }))
}

impl Default for TestBroker {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        let urls = std::mem::take(&mut self.urls);
        run_detached(move || async move {
            let Ok(connection) = connect_any(&urls).await else {
                return;
            };
            let mut queues = vec![
                format!("{prefix}.events"),
                format!("{prefix}.dead"),
                format!("{prefix}.rejected"),
            ];
            queues.extend((1..=10).map(|n| format!("{prefix}.retry.{n}")));
            for queue in queues {
                // A channel per delete: deleting a queue that does not exist is fine, but other
                // errors close the channel.
                if let Ok(channel) = connection.create_channel().await {
                    let _ = channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
            }
            for exchange in [prefix.clone(), format!("{prefix}.dlx")] {
                if let Ok(channel) = connection.create_channel().await {
                    let _ = channel
                        .exchange_delete(exchange.as_str().into(), Default::default())
                        .await;
                }
            }
            let _ = connection.close(200, "OK".into()).await;
        });
    }
}

/// A TCP proxy a test can cut (every open connection is closed and new ones are refused
/// until it is restored) or stall (connections stay open but no byte gets through until it is
/// restored: a peer that has gone silent).
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
    flowing: watch::Sender<bool>,
    stopped: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `target` (`host:port`).
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = watch::channel(true);
        let (flowing, _) = watch::channel(true);
        let flow = flowing.clone();
        let stopped = Arc::new(AtomicBool::new(false));
        let target = target.to_owned();
        let state = up.clone();
        let stop = Arc::clone(&stopped);
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                count.fetch_add(1, Ordering::SeqCst);
                if !*state.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut cut = state.subscribe();
                let (to_target, to_client) = (flow.subscribe(), flow.subscribe());
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (from_client, into_client) = inbound.into_split();
                    let (from_target, into_target) = outbound.into_split();
                    tokio::select! {
                        _ = async {
                            tokio::join!(
                                forward(from_client, into_target, to_target),
                                forward(from_target, into_client, to_client)
                            )
                        } => {}
                        _ = cut.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self {
            addr,
            up,
            flowing,
            stopped,
            accepted,
        }
    }

    /// Keeps every connection open but lets no byte through, either way, until restored.
    pub fn stall(&self) {
        self.flowing.send_replace(false);
    }

    /// Connections accepted so far, including those refused while cut.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An `amqp://` URL through this proxy with the test broker's credentials.
    pub fn amqp_url(&self) -> String {
        let url = amqp_url();
        let (scheme_and_credentials, rest) = url.rsplit_once('@').unwrap_or(("amqp://", &url));
        let vhost = rest.split_once('/').map(|(_, vhost)| vhost).unwrap_or("%2f");
        format!("{scheme_and_credentials}@{}/{vhost}", self.addr)
    }

    /// Closes every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Lets connections and their bytes through again.
    pub fn restore(&self) {
        self.up.send_replace(true);
        self.flowing.send_replace(true);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.up.send_replace(false);
    }
}

/// Copies `from` into `to` while `flowing` says so; a stalled proxy holds what it has read.
async fn forward(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    mut flowing: watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if flowing.wait_for(|flowing| *flowing).await.is_err() || to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// The `X-Hub-Signature-256` value for `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    webhook_core::signature::sign_github(secret.as_bytes(), body)
}

impl TestDatabase {
    /// Creates the database and applies the workspace's migrations (for tests of readers such
    /// as the dashboard, which never migrate).
    pub async fn create_migrated(&self) {
        self.create().await;
        let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let migrator = sqlx::migrate::Migrator::new(migrations).await.unwrap();
        let mut connection = self.connect().await;
        migrator.run(&mut connection).await.unwrap();
    }
}

/// A `SOURCES_FILE` in a directory of its own, removed when dropped.
#[derive(Debug)]
pub struct SourcesFile {
    dir: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl SourcesFile {
    /// Writes `text` to a new `sources.toml`.
    pub fn new(text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("webhook-inbox-sources-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sources.toml");
        std::fs::write(&path, text).unwrap();
        Self { dir, path }
    }

    /// The file's path, for `SOURCES_FILE`.
    pub fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for SourcesFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How a service process ended when started with a configuration that must stop it.
#[derive(Debug)]
pub struct Refused {
    /// The exit code.
    pub code: Option<i32>,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// Runs `program` with `args` and only `vars` (plus `PATH`) in its environment, in an empty
/// working directory (so no `.env` is read), and returns how it ended. Panics if it is still
/// running after 20 s: a configuration that must be refused was accepted.
pub fn run_misconfigured(program: &str, args: &[&str], vars: &[(&str, &str)]) -> Refused {
    let dir = std::env::temp_dir().join(format!("webhook-inbox-config-{}", unique_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = std::process::Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
            panic!("{program} is still running with {vars:?}: the configuration was accepted");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Refused {
        code: status.code(),
        stderr,
    }
}

/// Asserts that `refused` is the one-line configuration error for `variable`: exit code 2,
/// a single line `invalid configuration: {variable}…` containing `expected`.
pub fn assert_config_error(refused: &Refused, variable: &str, expected: &str) {
    assert_eq!(refused.code, Some(2), "{variable}: {}", refused.stderr);
    let lines: Vec<&str> = refused.stderr.lines().filter(|line| !line.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{variable}: not one line: {}", refused.stderr);
    let message = lines[0];
    assert!(
        message.contains(&format!("invalid configuration: {variable}")),
        "{variable} not named: {message}"
    );
    assert!(
        message.contains(expected),
        "{variable}: {expected:?} missing from {message}"
    );
}
