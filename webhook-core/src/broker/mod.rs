//! Connecting to RabbitMQ and publishing with publisher confirms.
//!
//! [`Publisher`] owns one long-lived connection with confirm-mode channels and a supervisor
//! task that reconnects (with capped, jittered backoff that never gives up) whenever the
//! connection or a channel dies. It is used by the request handler for every request and by the
//! consumer for retries and dead letters. Every publish is `mandatory` and waits for the
//! broker's confirm under a deadline: only a plain ack counts as success.
//!
//! lapin's own auto-recovery is not used: it does not cover the first connection, and after a
//! recovery the delivery tags of a consuming channel start again, which breaks `multiple` acks
//! of a batch taken before the failure.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Notify, watch};

mod local;

pub use local::LocalPublisher;

pub use crate::addresses::Addresses;
use crate::config::{ConfigError, Url, Vars};
use crate::tls::{self, Failure};
use crate::topology::{QueueType, Topology, is_valid_prefix};

/// Default broker URL.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Default topology prefix.
pub const DEFAULT_PREFIX: &str = "webhooks";
/// Default retry delays.
pub const DEFAULT_RETRY_DELAYS: &str = "1s,5s,30s,2m,10m";

/// How long connecting to one address (TCP and the AMQP handshake) may take before the next
/// address is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the supervisor looks at the connection when nothing has reported a failure.
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Where the broker is and how the topology is named.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// `AMQP_URL` (one node, or the nodes of a cluster), each with the TLS settings
    /// (`AMQP_CA_FILE`, `AMQP_CLIENT_CERT`, `AMQP_CLIENT_KEY`) that go with `amqps://`.
    pub addresses: Addresses,
    /// From `AMQP_PREFIX`, `QUEUE_TYPE` and `RETRY_DELAYS`.
    pub topology: Topology,
}

impl BrokerSettings {
    /// Reads `AMQP_URL`, `AMQP_CA_FILE`, `AMQP_CLIENT_CERT`, `AMQP_CLIENT_KEY`, `AMQP_PREFIX`,
    /// `QUEUE_TYPE` and `RETRY_DELAYS`.
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let text = vars.string("AMQP_URL", DEFAULT_AMQP_URL);
        let urls = Addresses::parse_list(&text, &["amqp", "amqps"]).map_err(|why| {
            ConfigError::invalid(
                "AMQP_URL",
                Some(&Addresses::redact_list(&text)),
                format!(
                    "a URL of the form amqp://… or amqps://… such as {DEFAULT_AMQP_URL}, or several separated \
                     by commas (the nodes of a cluster): {why}"
                ),
            )
        })?;
        let tls = Arc::new(BrokerTls::from_vars(vars)?);
        let urls = urls
            .into_iter()
            .map(|url| BrokerUrl::new(url, Arc::clone(&tls)))
            .collect::<Result<Vec<_>, _>>()?;
        let prefix = vars.string("AMQP_PREFIX", DEFAULT_PREFIX);
        if !is_valid_prefix(&prefix) {
            return Err(ConfigError::invalid(
                "AMQP_PREFIX",
                Some(&prefix),
                "1 to 100 characters from a-z, A-Z, 0-9, '.', '_' and '-'",
            ));
        }
        let queue_type: QueueType = vars.parse("QUEUE_TYPE", QueueType::Quorum, "quorum or classic")?;
        let retry_delays = vars.durations("RETRY_DELAYS", DEFAULT_RETRY_DELAYS)?;
        Ok(Self {
            addresses: Addresses::new(urls),
            topology: Topology::new(prefix, queue_type, retry_delays),
        })
    }
}

/// The TLS settings for `amqps://` connections, read (and checked) once at start.
///
/// Certificates are verified against the system's CA certificates and, when `AMQP_CA_FILE` is
/// set, the CAs in that file as well. `AMQP_CLIENT_CERT` and `AMQP_CLIENT_KEY` (both or
/// neither) present a client certificate, for brokers that ask for one (with
/// `?auth_mechanism=external` in the URL the certificate is also the login).
#[derive(Clone, Default)]
pub struct BrokerTls {
    config: OwnedTLSConfig,
    ca_file: Option<String>,
    client_cert: Option<String>,
}

impl std::fmt::Debug for BrokerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerTls")
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .finish_non_exhaustive()
    }
}

impl BrokerTls {
    /// Reads `AMQP_CA_FILE`, `AMQP_CLIENT_CERT` and `AMQP_CLIENT_KEY`; each file must be a
    /// readable PEM file of the right kind.
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let ca_file = vars.get("AMQP_CA_FILE");
        let cert_chain = ca_file
            .as_deref()
            .map(|path| tls::certificates_in("AMQP_CA_FILE", path))
            .transpose()?;
        let client_cert = vars.get("AMQP_CLIENT_CERT");
        let identity = match (&client_cert, vars.get("AMQP_CLIENT_KEY")) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
                pem: tls::certificates_in("AMQP_CLIENT_CERT", cert)?.into_bytes(),
                key: tls::private_key_in("AMQP_CLIENT_KEY", &key)?.into_bytes(),
            }),
            (Some(cert), None) => {
                return Err(ConfigError::invalid(
                    "AMQP_CLIENT_CERT",
                    Some(cert),
                    "AMQP_CLIENT_KEY to be set as well (the client certificate's private key)",
                ));
            }
            (None, Some(key)) => {
                return Err(ConfigError::invalid(
                    "AMQP_CLIENT_KEY",
                    Some(&key),
                    "AMQP_CLIENT_CERT to be set as well (the certificate that goes with the key)",
                ));
            }
        };
        Ok(Self {
            config: OwnedTLSConfig { identity, cert_chain },
            ca_file,
            client_cert,
        })
    }
}

/// One broker to connect to: its URL and the TLS settings for it. `Debug` and
/// [`BrokerUrl::redacted`] hide the password.
#[derive(Debug, Clone)]
pub struct BrokerUrl {
    url: Url,
    tls: Arc<BrokerTls>,
}

impl BrokerUrl {
    /// Checks that lapin accepts `url` and that TLS settings come only with `amqps://`.
    pub fn new(url: Url, tls: Arc<BrokerTls>) -> Result<Self, ConfigError> {
        let parsed = AMQPUri::from_str(url.expose()).map_err(|why| {
            ConfigError::invalid(
                "AMQP_URL",
                Some(&url.redacted()),
                format!("an AMQP URL such as {DEFAULT_AMQP_URL} or amqps://user:password@host:5671/%2f ({why})"),
            )
        })?;
        let tls_setting = (tls.ca_file.as_ref().map(|path| ("AMQP_CA_FILE", path)))
            .or_else(|| tls.client_cert.as_ref().map(|path| ("AMQP_CLIENT_CERT", path)));
        if parsed.scheme == AMQPScheme::AMQP
            && let Some((variable, value)) = tls_setting
        {
            return Err(ConfigError::invalid(
                variable,
                Some(value),
                format!(
                    "an amqps:// AMQP_URL: it is only used for TLS, and AMQP_URL={} is amqp://",
                    url.redacted()
                ),
            ));
        }
        Ok(Self { url, tls })
    }

    /// The full URL, password included, for connecting.
    pub fn expose(&self) -> &str {
        self.url.expose()
    }

    /// The URL with any password replaced by `***`, for logs.
    pub fn redacted(&self) -> String {
        self.url.redacted()
    }

    /// Whether connections use TLS (`amqps://`).
    pub fn is_tls(&self) -> bool {
        self.url.expose().starts_with("amqps://")
    }
}

/// Why a connection could not be opened. `Display` is one line that names the setting to look
/// at.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The broker did not complete the handshake in time.
    #[error("no answer from the broker within {0:?}")]
    Timeout(Duration),
    /// The TLS handshake failed.
    #[error("{0}")]
    Tls(String),
    /// The broker refused the login.
    #[error("{0}")]
    AccessRefused(String),
    /// The broker refused or the connection failed.
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    /// The address cannot be connected to as written.
    #[error("{0}")]
    Address(String),
    /// Every address of a list failed; why, for each.
    #[error("no broker address answered: {0}")]
    Every(String),
}

impl ConnectError {
    fn explain(error: lapin::Error, url: &BrokerUrl) -> Self {
        if let ErrorKind::IOError(io) = error.kind()
            && let Some(failure) = tls::handshake_failure(io.as_ref())
        {
            return Self::Tls(describe_tls(&failure, url));
        }
        // With TLS 1.3 the broker checks the client's certificate after the client has finished
        // its side of the handshake; it then sends an alert and closes, and the client often
        // sees only the reset.
        if let ErrorKind::IOError(io) = error.kind()
            && url.is_tls()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::BrokenPipe
            )
        {
            let redacted = url.redacted();
            return Self::Tls(match &url.tls.client_cert {
                Some(path) => format!(
                    "AMQP_CLIENT_CERT={path:?}: the broker at {redacted} closed the connection right after the TLS handshake: it may have refused the client certificate ({io})"
                ),
                None => format!(
                    "AMQP_CLIENT_CERT: the broker at {redacted} closed the connection right after the TLS handshake: if it asks for client certificates, set AMQP_CLIENT_CERT and AMQP_CLIENT_KEY ({io})"
                ),
            });
        }
        if let ErrorKind::ProtocolError(amqp) = error.kind()
            && amqp.get_id() == 403
        {
            return Self::AccessRefused(format!(
                "AMQP_URL={}: the broker refused the user name or password ({amqp})",
                url.redacted()
            ));
        }
        Self::Broker(error)
    }
}

fn describe_tls(failure: &tls::HandshakeFailure, url: &BrokerUrl) -> String {
    let ca = match &url.tls.ca_file {
        Some(path) => format!("AMQP_CA_FILE={path:?} or the system's CA certificates"),
        None => "the system's CA certificates (AMQP_CA_FILE is not set)".to_owned(),
    };
    let redacted = url.redacted();
    match failure.failure {
        Failure::UntrustedCertificate => {
            format!("AMQP_CA_FILE: the broker's TLS certificate at {redacted} is signed by no CA in {ca} ({failure})")
        }
        Failure::Expired => format!("AMQP_URL={redacted}: the broker's TLS certificate has expired ({failure})"),
        Failure::NotValidYet => {
            format!("AMQP_URL={redacted}: the broker's TLS certificate is not valid yet ({failure})")
        }
        Failure::WrongHost => format!(
            "AMQP_URL={redacted}: the broker's TLS certificate is not issued for the host in AMQP_URL ({failure})"
        ),
        Failure::ClientCertificateRefused => match &url.tls.client_cert {
            Some(path) => format!("AMQP_CLIENT_CERT={path:?}: the broker refused the client certificate ({failure})"),
            None => format!(
                "AMQP_CLIENT_CERT: the broker at {redacted} wants a client certificate; set AMQP_CLIENT_CERT and AMQP_CLIENT_KEY ({failure})"
            ),
        },
        Failure::NotTls => format!(
            "AMQP_URL={redacted}: what answers there does not speak TLS (amqps:// is usually port 5671) ({failure})"
        ),
        Failure::Other => format!("AMQP_URL={redacted}: the TLS handshake failed ({failure})"),
    }
}

/// How long closing a channel or connection cleanly may take.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to the broker that can always be ended.
///
/// [`BrokerConnection::close`] closes it cleanly and, when the broker does not finish the close
/// in time, cuts its socket. RabbitMQ 3.10 can leave a channel of a quorum queue stuck after a
/// lost majority, still holding its unacknowledged deliveries, so that the clean close never
/// completes; a cut socket ends the connection on the broker's side and every delivery it held
/// goes back to the queue. Dropping it cuts the socket too. It derefs to [`lapin::Connection`].
pub struct BrokerConnection {
    connection: Connection,
    /// A duplicate of the connection's socket, to shut it down.
    socket: std::net::TcpStream,
}

impl std::fmt::Debug for BrokerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConnection")
            .field("peer", &self.socket.peer_addr().ok())
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for BrokerConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.connection
    }
}

impl BrokerConnection {
    /// Closes the connection cleanly within [`CLOSE_TIMEOUT`], then cuts its socket whatever
    /// came of that.
    pub async fn close(&self) {
        if self.connection.status().connected() {
            match tokio::time::timeout(CLOSE_TIMEOUT, self.connection.close(200, "OK".into())).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => log::debug!("closing a broker connection: {error}"),
                Err(_) => log::warn!(
                    "a broker connection did not close within {CLOSE_TIMEOUT:?}; cutting its socket so the broker \
                     gives back what it held"
                ),
            }
        }
        self.cut();
    }

    /// Shuts the socket down at once: the broker sees the connection end.
    pub fn cut(&self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

impl Drop for BrokerConnection {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Opens a connection named `name` (shown in the management UI) to the first of `addresses`
/// that answers, trying each within [`CONNECT_TIMEOUT`]. Returns it with the index of the
/// address it reached.
pub async fn connect_to(addresses: &Addresses, name: &str) -> Result<(BrokerConnection, usize), ConnectError> {
    let order = addresses.attempt_order();
    let mut failures = Vec::new();
    let mut last = None;
    for index in order {
        match connect_one(addresses, index, name).await {
            Ok(connection) => {
                addresses.succeeded(index);
                return Ok((connection, index));
            }
            Err(error) => {
                addresses.failed(index);
                if let Some(url) = addresses.get(index) {
                    failures.push(format!("{}: {error}", url.redacted()));
                }
                last = Some(error);
            }
        }
    }
    match last {
        Some(error) if failures.len() <= 1 => Err(error),
        _ => Err(ConnectError::Every(failures.join("; "))),
    }
}

/// [`connect_to`], for callers that need not know which address answered.
pub async fn connect(addresses: &Addresses, name: &str) -> Result<BrokerConnection, ConnectError> {
    connect_to(addresses, name).await.map(|(connection, _)| connection)
}

async fn connect_one(addresses: &Addresses, index: usize, name: &str) -> Result<BrokerConnection, ConnectError> {
    let url = addresses
        .get(index)
        .ok_or_else(|| ConnectError::Address(format!("no broker address {index}")))?;
    let uri = addresses.uri(index).map_err(ConnectError::Address)?;
    let tls = url.tls.config.clone();
    let name = format!("{name} host={}", crate::service::hostname());
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    // The client opens the socket itself (as lapin's own connector does), keeping a duplicate
    // of it: see BrokerConnection.
    let socket: Arc<std::sync::Mutex<Option<std::net::TcpStream>>> = Arc::default();
    let kept = Arc::clone(&socket);
    let runtime = lapin::runtime::default_runtime()?;
    let connecting = Connection::connector(
        uri,
        runtime,
        async move |uri: AMQPUri, _runtime| {
            let stream = tokio::net::TcpStream::connect((uri.authority.host.as_str(), uri.authority.port)).await?;
            stream.set_nodelay(true)?;
            let stream = stream.into_std()?;
            let duplicate = stream.try_clone()?;
            *kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(duplicate);
            let stream = tokio::net::TcpStream::from_std(stream)?;
            let stream = lapin::tcp::AsyncTcpStream::Plain(async_compat::Compat::new(stream));
            Ok(match uri.scheme {
                AMQPScheme::AMQP => stream,
                AMQPScheme::AMQPS => stream.into_tls(&uri.authority.host, tls.as_ref()).await?,
            })
        },
        properties,
    );
    let connection = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => return Err(ConnectError::explain(error, url)),
        Err(_) => return Err(ConnectError::Timeout(CONNECT_TIMEOUT)),
    };
    let socket = socket.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    match socket {
        Some(socket) => Ok(BrokerConnection { connection, socket }),
        None => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.close(200, "OK".into())).await;
            Err(ConnectError::Address("the connection has no socket".to_owned()))
        }
    }
}

/// Capped exponential backoff with jitter, for reconnecting and retrying.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
    attempts: u32,
}

impl Backoff {
    /// Starts at `initial`, doubles on every attempt, never above `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            current: initial,
            attempts: 0,
        }
    }

    /// The delay before the next attempt: the current step plus up to 20 % jitter, so that
    /// many processes do not retry in lockstep.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        self.attempts += 1;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|now| now.subsec_nanos())
            .unwrap_or_default();
        let jitter = base.mul_f64(f64::from(nanos % 1000) / 5000.0);
        (base + jitter).min(self.max)
    }

    /// How many delays have been handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Back to the first step after a success.
    pub fn reset(&mut self) {
        self.current = self.initial;
        self.attempts = 0;
    }
}

/// Why a publish was not confirmed. Every variant means "not stored by the broker".
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No usable connection right now (the supervisor is reconnecting).
    #[error("not connected to the broker")]
    NotConnected,
    /// No confirm within the deadline.
    #[error("no confirm from the broker within {0:?}")]
    Timeout(Duration),
    /// The broker nacked the message.
    #[error("the broker nacked the message")]
    Nacked,
    /// The message matched no queue (returned as unroutable).
    #[error("the message was unroutable")]
    Unroutable,
    /// The channel was not in confirm mode.
    #[error("the channel is not in confirm mode")]
    NotConfirmed,
    /// The channel or connection failed.
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    /// The connection ended before the broker confirmed.
    #[error("the connection to the broker was lost before the confirm")]
    Lost,
}

impl PublishError {
    /// A short, bounded label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotConnected => "not_connected",
            Self::Timeout(_) => "timeout",
            Self::Nacked => "nacked",
            Self::Unroutable => "unroutable",
            Self::NotConfirmed => "not_confirmed",
            Self::Broker(_) | Self::Lost => "broker_error",
        }
    }
}

/// A message to publish.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// Exchange name (`""` for the default exchange, which routes by queue name).
    pub exchange: &'a str,
    /// Routing key.
    pub routing_key: &'a str,
    /// The body, byte for byte.
    pub body: &'a [u8],
}

/// `worker_nack_counted_ms` before any nack was counted.
const NEVER: u64 = u64::MAX;

/// How many publishes in a row may fail before the publisher calls itself not ready.
pub const FAILURES_BEFORE_NOT_READY: u32 = 3;
/// How long "not ready" lasts after the last failed publish when nothing succeeds meanwhile:
/// then the publisher reports ready again, so a balancer that stopped sending gives it another
/// try instead of leaving it out for good.
pub const NOT_READY_FOR: Duration = Duration::from_secs(5);
/// A channel the broker nacks is replaced at most this often.
const REPLACE_CHANNEL_AT_MOST_EVERY: Duration = Duration::from_secs(1);
/// Channel replacements without an ack in between after which the connection itself is
/// replaced (and the next broker address tried).
const REPLACEMENTS_BEFORE_RECONNECT: u32 = 3;

/// Counters of what the publisher had to do, for the services' metrics.
#[derive(Debug, Clone, Default)]
pub struct PublisherCounters {
    /// Publishes the broker nacked.
    pub nacks: Counter,
    /// Channels replaced after nacks.
    pub channels_replaced: Counter,
    /// Connections opened after the first (reconnects after a loss or a replacement).
    pub reconnects: Counter,
    /// HTTP workers' own connections now up ([`LocalPublisher`]).
    pub worker_connections: Gauge,
    /// Publishes sent on HTTP workers' own connections, whatever came of them.
    pub worker_publishes: Counter,
    /// Returned (unroutable) messages that lapin handed to the confirm of another publish on
    /// the same channel: the publish it belonged to may have been taken as confirmed.
    pub returns_misattributed: Counter,
}

/// One confirm-mode channel of a connection, replaceable while publishes use the others.
struct Slot {
    channel: RwLock<Channel>,
    /// Serialises replacements, and remembers when the last one was.
    replaced_at: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

struct Link {
    connection: BrokerConnection,
    /// The index of the broker address it reached.
    address: usize,
    slots: Vec<Slot>,
    /// Replacements since the last ack on any channel.
    futile_replacements: AtomicU32,
    /// Set when the channels are replaced in vain (the supervisor then opens a new connection),
    /// and when the supervisor gives the connection up.
    condemned: AtomicBool,
    /// When a nack on a worker's own connection last counted toward `futile_replacements`
    /// (milliseconds of [`Inner::millis`]; see [`LocalPublisher`]).
    worker_nack_counted_ms: AtomicU64,
}

impl Link {
    fn channel(&self, index: usize) -> Channel {
        self.slots[index]
            .channel
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn usable(&self) -> bool {
        let status = self.connection.status();
        status.connected()
            && !self.condemned.load(Ordering::SeqCst)
            && (0..self.slots.len()).all(|index| self.channel(index).status().connected())
    }
}

struct Inner {
    settings: BrokerSettings,
    name: String,
    channel_count: usize,
    confirm_timeout: Duration,
    link: RwLock<Option<Arc<Link>>>,
    next_channel: AtomicUsize,
    check: Notify,
    closing: AtomicBool,
    connected: watch::Sender<bool>,
    /// Publishes in a row that were not confirmed.
    failures_in_a_row: AtomicU32,
    /// When the last publish failed, as milliseconds since `epoch`.
    last_failure_ms: AtomicU64,
    epoch: tokio::time::Instant,
    counters: PublisherCounters,
}

impl Inner {
    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn publish_failed(&self) {
        self.failures_in_a_row.fetch_add(1, Ordering::SeqCst);
        self.last_failure_ms.store(self.millis(), Ordering::SeqCst);
    }

    /// Whether recent publishes keep failing: [`FAILURES_BEFORE_NOT_READY`] in a row, the last
    /// less than [`NOT_READY_FOR`] ago.
    fn failing(&self) -> bool {
        self.failures_in_a_row.load(Ordering::SeqCst) >= FAILURES_BEFORE_NOT_READY
            && self
                .millis()
                .saturating_sub(self.last_failure_ms.load(Ordering::SeqCst))
                < NOT_READY_FOR.as_millis() as u64
    }
}

/// A reconnecting, confirming publisher; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("name", &self.inner.name)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

/// Why the publisher is not ready, for `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// No usable connection.
    Disconnected,
    /// The broker blocks publishers (a resource alarm).
    Blocked,
    /// Connected, but the last publishes were not confirmed (nacked, timed out).
    Failing,
}

impl NotReady {
    /// A short label: `disconnected`, `blocked` or `failing`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Blocked => "blocked",
            Self::Failing => "failing",
        }
    }
}

impl Publisher {
    /// Starts the supervisor, which connects in the background: the publisher exists (and
    /// fails fast with [`PublishError::NotConnected`]) even while the broker is down.
    ///
    /// Each connection declares the topology before it is used.
    pub fn start(settings: BrokerSettings, name: &str, channels: usize, confirm_timeout: Duration) -> Self {
        let (connected, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            settings,
            name: name.to_owned(),
            channel_count: channels.max(1),
            confirm_timeout,
            link: RwLock::new(None),
            next_channel: AtomicUsize::new(0),
            check: Notify::new(),
            closing: AtomicBool::new(false),
            connected,
            failures_in_a_row: AtomicU32::new(0),
            last_failure_ms: AtomicU64::new(0),
            epoch: tokio::time::Instant::now(),
            counters: PublisherCounters::default(),
        });
        tokio::spawn(supervise(Arc::clone(&inner)));
        Self { inner }
    }

    /// What it counts (nacks, replaced channels, reconnects), to register with a service's
    /// metrics.
    pub fn counters(&self) -> &PublisherCounters {
        &self.inner.counters
    }

    /// Ready when connected with every channel open, not blocked by a broker resource alarm,
    /// and not failing (see [`Publisher::not_ready`]).
    pub fn is_ready(&self) -> bool {
        self.not_ready().is_none()
    }

    /// Why it is not ready, if it is not: no usable connection; the broker blocks publishers;
    /// or [`FAILURES_BEFORE_NOT_READY`] publishes in a row were not confirmed, the last less
    /// than [`NOT_READY_FOR`] ago (the next confirm makes it ready at once).
    pub fn not_ready(&self) -> Option<NotReady> {
        let Some(link) = self.current_link().filter(|link| link.usable()) else {
            return Some(NotReady::Disconnected);
        };
        if link.connection.status().blocked() {
            Some(NotReady::Blocked)
        } else if self.inner.failing() {
            Some(NotReady::Failing)
        } else {
            None
        }
    }

    /// The broker address (redacted) of the current connection, if there is one.
    pub fn connected_to(&self) -> Option<String> {
        let link = self.current_link()?;
        self.inner.settings.addresses.get(link.address).map(BrokerUrl::redacted)
    }

    /// Waits until connected (or until `deadline` passes); returns whether it is connected.
    pub async fn wait_connected(&self, deadline: Duration) -> bool {
        let mut connected = self.inner.connected.subscribe();
        tokio::time::timeout(deadline, connected.wait_for(|up| *up))
            .await
            .is_ok()
    }

    /// Publishes `message` (mandatory) and waits for the broker's confirm, all within the
    /// confirm timeout. `Ok` only for a plain ack.
    ///
    /// A nack replaces the channel it came on (at most once a second per channel; see
    /// [`PublisherCounters`]): a RabbitMQ 3.10 channel can nack every publish after the node of
    /// a quorum queue's leader is lost, while a fresh channel works. Replacements that do not
    /// help replace the connection.
    pub async fn publish(&self, message: Outgoing<'_>, properties: BasicProperties) -> Result<(), PublishError> {
        self.publish_within(message, properties, self.inner.confirm_timeout)
            .await
    }

    /// [`Publisher::publish`] with a deadline of its own instead of the confirm timeout (the
    /// request handler's spool gives the broker less time before it writes a message to disk).
    pub async fn publish_within(
        &self,
        message: Outgoing<'_>,
        properties: BasicProperties,
        deadline: Duration,
    ) -> Result<(), PublishError> {
        let result = self.try_publish(message, properties, deadline).await;
        self.record(&result);
        result
    }

    /// Counts a publish's outcome toward [`NotReady::Failing`].
    fn record(&self, result: &Result<(), PublishError>) {
        match result {
            // Read first: every request lands here, from every worker, and a store would
            // bounce the line between their cores even when nothing changes.
            Ok(()) => {
                if self.inner.failures_in_a_row.load(Ordering::Relaxed) != 0 {
                    self.inner.failures_in_a_row.store(0, Ordering::SeqCst);
                }
            }
            Err(_) => self.inner.publish_failed(),
        }
    }

    async fn try_publish(
        &self,
        message: Outgoing<'_>,
        properties: BasicProperties,
        deadline: Duration,
    ) -> Result<(), PublishError> {
        let Some(link) = self.current_link().filter(|link| link.usable()) else {
            self.inner.check.notify_one();
            return Err(PublishError::NotConnected);
        };
        let index = self.inner.next_channel.fetch_add(1, Ordering::Relaxed) % link.slots.len();
        let channel = link.channel(index);

        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let message_id = properties.message_id().clone();
        let confirmed = tokio::time::timeout(deadline, async {
            channel
                .basic_publish(
                    message.exchange.into(),
                    message.routing_key.into(),
                    options,
                    message.body,
                    properties,
                )
                .await?
                .await
        })
        .await;
        match confirmed {
            Ok(Ok(Confirmation::Ack(None))) => {
                link.futile_replacements.store(0, Ordering::SeqCst);
                Ok(())
            }
            Ok(Ok(Confirmation::Ack(Some(returned)))) => {
                // lapin gives a returned message to whichever confirm of the channel completes
                // next, not always to its own publish's.
                if returned.properties.message_id() != &message_id {
                    // Its own message may well have been routed: not confirmed, not unroutable.
                    self.inner.counters.returns_misattributed.inc();
                    log::error!(
                        "the broker returned message_id={:?} as unroutable, but lapin gave the return to the \
                         confirm of message_id={message_id:?}: the first may have been answered as confirmed \
                         and is not in any queue; the second is answered as not confirmed",
                        returned.properties.message_id()
                    );
                    return Err(PublishError::NotConfirmed);
                }
                Err(PublishError::Unroutable)
            }
            Ok(Ok(Confirmation::Nack(_))) => {
                self.inner.counters.nacks.inc();
                tokio::spawn(replace_channel(Arc::clone(&self.inner), link, index, channel));
                Err(PublishError::Nacked)
            }
            Ok(Ok(Confirmation::NotRequested)) => Err(PublishError::NotConfirmed),
            Ok(Err(error)) => {
                self.inner.check.notify_one();
                Err(PublishError::Broker(error))
            }
            Err(_) => {
                self.inner.check.notify_one();
                Err(PublishError::Timeout(deadline))
            }
        }
    }

    /// Stops reconnecting and closes the connection cleanly. Publishes still in flight fail.
    pub async fn close(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        self.inner.check.notify_one();
        let link = self
            .inner
            .link
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(link) = link {
            close_link(&link).await;
        }
    }

    fn current_link(&self) -> Option<Arc<Link>> {
        self.inner
            .link
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Replaces channel `index` of `link` after `nacked` was nacked, unless it was replaced less
/// than a second ago; after [`REPLACEMENTS_BEFORE_RECONNECT`] replacements without an ack in
/// between, condemns the connection instead.
async fn replace_channel(inner: Arc<Inner>, link: Arc<Link>, index: usize, nacked: Channel) {
    let slot = &link.slots[index];
    let Ok(mut replaced_at) = slot.replaced_at.try_lock() else {
        return; // Another nack on this channel is replacing it.
    };
    if replaced_at.is_some_and(|at| at.elapsed() < REPLACE_CHANNEL_AT_MOST_EVERY) {
        return;
    }
    if link.channel(index).id() != nacked.id() || !link.connection.status().connected() {
        return; // Replaced already, or the connection is going anyway.
    }
    *replaced_at = Some(tokio::time::Instant::now());
    let futile = link.futile_replacements.fetch_add(1, Ordering::SeqCst) + 1;
    if futile > REPLACEMENTS_BEFORE_RECONNECT {
        log::warn!(
            "broker keeps nacking on fresh channels: connection={} replacements={}; reconnecting",
            inner.name,
            futile - 1
        );
        link.condemned.store(true, Ordering::SeqCst);
        inner.check.notify_one();
        return;
    }
    let opened = tokio::time::timeout(CLOSE_TIMEOUT, async {
        let channel = link.connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok::<_, lapin::Error>(channel)
    })
    .await;
    match opened {
        Ok(Ok(channel)) => {
            *slot.channel.write().unwrap_or_else(std::sync::PoisonError::into_inner) = channel;
            inner.counters.channels_replaced.inc();
            log::warn!(
                "broker nacked a publish: connection={} channel={} replaced by a fresh channel",
                inner.name,
                nacked.id()
            );
            // Publishes still waiting on the old channel get their confirms before it closes.
            let _ = tokio::time::timeout(inner.confirm_timeout, nacked.close(200, "OK".into())).await;
        }
        failed => {
            log::warn!(
                "broker nacked a publish and no fresh channel could be opened: connection={} error={failed:?}; reconnecting",
                inner.name
            );
            link.condemned.store(true, Ordering::SeqCst);
            inner.check.notify_one();
        }
    }
}

async fn close_link(link: &Link) {
    link.connection.close().await;
}

async fn open_link(inner: &Inner) -> Result<Link, ConnectError> {
    let (connection, address) = connect_to(&inner.settings.addresses, &inner.name).await?;
    let opened = async {
        let mut slots = Vec::with_capacity(inner.channel_count);
        for _ in 0..inner.channel_count {
            let channel = connection.create_channel().await?;
            channel.confirm_select(ConfirmSelectOptions::default()).await?;
            slots.push(Slot {
                channel: RwLock::new(channel),
                replaced_at: tokio::sync::Mutex::new(None),
            });
        }
        let first = slots[0]
            .channel
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        inner.settings.topology.declare(&first).await?;
        Ok::<_, lapin::Error>(slots)
    }
    .await;
    match opened {
        Ok(slots) => Ok(Link {
            connection,
            address,
            slots,
            futile_replacements: AtomicU32::new(0),
            condemned: AtomicBool::new(false),
            worker_nack_counted_ms: AtomicU64::new(NEVER),
        }),
        Err(error) => {
            connection.close().await;
            Err(error.into())
        }
    }
}

/// While reconnecting, how soon after a failed attempt a publish may ask for the next one.
const EARLY_RETRY_AFTER: Duration = Duration::from_secs(1);

async fn supervise(inner: Arc<Inner>) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut connections = 0u64;
    // Connecting to each address, then channels and the topology.
    let open_timeout = CONNECT_TIMEOUT * (u32::try_from(inner.settings.addresses.len()).unwrap_or(u32::MAX) + 1);
    while !inner.closing.load(Ordering::SeqCst) {
        let link = match tokio::time::timeout(open_timeout, open_link(&inner)).await {
            Ok(Ok(link)) => Arc::new(link),
            failed => {
                let error = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no answer within {open_timeout:?}"),
                };
                let delay = backoff.next_delay();
                log::warn!(
                    "broker connect failed: connection={} url={} attempt={} error=\"{error}\" retry_in_ms={}",
                    inner.name,
                    inner.settings.addresses.redacted(),
                    backoff.attempts(),
                    delay.as_millis()
                );
                // Publishes that find no connection notify `check`; under load that is every
                // request. They may cut a long backoff short, but not retry sooner than
                // EARLY_RETRY_AFTER after the last attempt: at most one attempt a second.
                let failed_at = tokio::time::Instant::now();
                let wake_at = failed_at + delay;
                let earliest = failed_at + delay.min(EARLY_RETRY_AFTER);
                loop {
                    tokio::select! {
                        () = tokio::time::sleep_until(wake_at) => break,
                        () = inner.check.notified() => {
                            if inner.closing.load(Ordering::SeqCst) || tokio::time::Instant::now() >= earliest {
                                break;
                            }
                        }
                    }
                }
                continue;
            }
        };
        if inner.closing.load(Ordering::SeqCst) {
            close_link(&link).await;
            break;
        }
        connections += 1;
        if connections > 1 {
            inner.counters.reconnects.inc();
        }
        log::info!(
            "broker connected: connection={} url={} after_attempts={}",
            inner.name,
            inner
                .settings
                .addresses
                .get(link.address)
                .map(BrokerUrl::redacted)
                .unwrap_or_default(),
            backoff.attempts()
        );
        backoff.reset();
        *inner.link.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::clone(&link));
        inner.connected.send_replace(true);

        while link.usable() && !inner.closing.load(Ordering::SeqCst) {
            tokio::select! {
                () = tokio::time::sleep(HEALTH_CHECK_INTERVAL) => {}
                () = inner.check.notified() => {}
            }
        }
        inner.connected.send_replace(false);
        // Workers' own connections that followed this one follow the next (LocalPublisher).
        link.condemned.store(true, Ordering::SeqCst);
        {
            let mut current = inner.link.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            if current.as_ref().is_some_and(|current| Arc::ptr_eq(current, &link)) {
                *current = None;
            }
        }
        if !inner.closing.load(Ordering::SeqCst) {
            log::warn!("broker connection lost: connection={}; reconnecting", inner.name);
            close_link(&link).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let delays: Vec<Duration> = (0..5).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] <= Duration::from_millis(120));
        assert!(delays[1] >= Duration::from_millis(200) && delays[1] <= Duration::from_millis(240));
        assert_eq!(delays[4], Duration::from_millis(500));
        assert_eq!(backoff.attempts(), 5);
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(120));
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<BrokerSettings, ConfigError> {
        Vars::with_pairs(pairs, BrokerSettings::from_vars)
    }

    #[test]
    fn defaults_follow_the_design() {
        let settings = settings(&[]).unwrap();
        assert_eq!(settings.addresses.redacted(), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert_eq!(settings.topology.prefix(), "webhooks");
        assert_eq!(settings.topology.retry_delays().len(), 5);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let error = settings(&[("AMQP_URL", "http://localhost")]).unwrap_err();
        assert_eq!(error.variable(), "AMQP_URL");
        let error = settings(&[("AMQP_URL", "amqp://guest:hunter2@host:notaport/")]).unwrap_err();
        assert_eq!(error.variable(), "AMQP_URL");
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let error = settings(&[("AMQP_PREFIX", "no spaces")]).unwrap_err();
        assert_eq!(error.variable(), "AMQP_PREFIX");
        let error = settings(&[("QUEUE_TYPE", "stream")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration: QUEUE_TYPE=\"stream\": expected quorum or classic"
        );
        let error = settings(&[("RETRY_DELAYS", "1s,soon")]).unwrap_err();
        assert_eq!(error.variable(), "RETRY_DELAYS");
    }

    #[test]
    fn amqps_urls_are_accepted_and_tls_files_need_one() {
        let tls = settings(&[("AMQP_URL", "amqps://user:pw@broker.example:5671/%2f")]).unwrap();
        assert!(tls.addresses.get(0).unwrap().is_tls());
        assert!(!format!("{:?}", tls.addresses).contains("pw@"));

        let error = settings(&[("AMQP_CA_FILE", "/etc/ssl/certs/ca-certificates.crt")]).unwrap_err();
        assert_eq!(error.variable(), "AMQP_CA_FILE");
        assert!(error.to_string().contains("expected an amqps:// AMQP_URL"), "{error}");

        let amqps = ("AMQP_URL", "amqps://broker/%2f");
        let error = settings(&[amqps, ("AMQP_CA_FILE", "/nonexistent/ca.pem")]).unwrap_err();
        assert_eq!(error.variable(), "AMQP_CA_FILE");
        let error = settings(&[amqps, ("AMQP_CLIENT_CERT", "/nonexistent/client.pem")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration: AMQP_CLIENT_CERT=\"/nonexistent/client.pem\": expected AMQP_CLIENT_KEY to be set as well (the client certificate's private key)"
        );
        let error = settings(&[amqps, ("AMQP_CLIENT_KEY", "/nonexistent/client.key")]).unwrap_err();
        assert_eq!(error.variable(), "AMQP_CLIENT_KEY");
    }
}
