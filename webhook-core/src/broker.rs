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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind};
use tokio::sync::{Notify, watch};

use crate::config::{ConfigError, Url, Vars};
use crate::tls::{self, Failure};
use crate::topology::{QueueType, Topology, is_valid_prefix};

/// Default broker URL.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Default topology prefix.
pub const DEFAULT_PREFIX: &str = "webhooks";
/// Default retry delays.
pub const DEFAULT_RETRY_DELAYS: &str = "1s,5s,30s,2m,10m";

/// How long opening a connection (TCP, TLS, AMQP handshake, channels, topology) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the supervisor looks at the connection when nothing has reported a failure.
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Where the broker is and how the topology is named.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// `AMQP_URL`, with the TLS settings (`AMQP_CA_FILE`, `AMQP_CLIENT_CERT`, `AMQP_CLIENT_KEY`)
    /// that go with an `amqps://` URL.
    pub url: BrokerUrl,
    /// From `AMQP_PREFIX`, `QUEUE_TYPE` and `RETRY_DELAYS`.
    pub topology: Topology,
}

impl BrokerSettings {
    /// Reads `AMQP_URL`, `AMQP_CA_FILE`, `AMQP_CLIENT_CERT`, `AMQP_CLIENT_KEY`, `AMQP_PREFIX`,
    /// `QUEUE_TYPE` and `RETRY_DELAYS`.
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let url = vars.url("AMQP_URL", DEFAULT_AMQP_URL, &["amqp", "amqps"])?;
        let tls = BrokerTls::from_vars(vars)?;
        let url = BrokerUrl::new(url, tls)?;
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
            url,
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
    pub fn new(url: Url, tls: BrokerTls) -> Result<Self, ConfigError> {
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
        Ok(Self {
            url,
            tls: Arc::new(tls),
        })
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

/// Opens a connection to `url` named `name` (shown in the management UI, followed by this
/// host's name), bounded by a deadline. One call is one attempt at one broker.
pub async fn connect(url: &BrokerUrl, name: &str) -> Result<Connection, ConnectError> {
    let name = format!("{name} host={}", crate::service::hostname());
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let connecting = Connection::connect_with_config(
        url.expose(),
        properties,
        url.tls.config.clone(),
        lapin::runtime::default_runtime()?,
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(ConnectError::explain(error, url)),
        Err(_) => Err(ConnectError::Timeout(CONNECT_TIMEOUT)),
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
            Self::Broker(_) => "broker_error",
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

struct Link {
    connection: Connection,
    channels: Vec<Channel>,
}

impl Link {
    fn usable(&self) -> bool {
        let status = self.connection.status();
        status.connected() && self.channels.iter().all(|channel| channel.status().connected())
    }

    fn ready(&self) -> bool {
        self.usable() && !self.connection.status().blocked()
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
        });
        tokio::spawn(supervise(Arc::clone(&inner)));
        Self { inner }
    }

    /// True when the connection and every channel are open and the broker is not blocking
    /// publishers (resource alarm).
    pub fn is_ready(&self) -> bool {
        self.current_link().is_some_and(|link| link.ready())
    }

    /// True when the connection is blocked by a broker resource alarm.
    pub fn is_blocked(&self) -> bool {
        self.current_link()
            .is_some_and(|link| link.connection.status().blocked())
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
    pub async fn publish(&self, message: Outgoing<'_>, properties: BasicProperties) -> Result<(), PublishError> {
        let Some(link) = self.current_link().filter(|link| link.usable()) else {
            self.inner.check.notify_one();
            return Err(PublishError::NotConnected);
        };
        let index = self.inner.next_channel.fetch_add(1, Ordering::Relaxed) % link.channels.len();
        let channel = link.channels[index].clone();
        drop(link);

        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirmed = tokio::time::timeout(self.inner.confirm_timeout, async {
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
            Ok(Ok(Confirmation::Ack(None))) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(_)))) => Err(PublishError::Unroutable),
            Ok(Ok(Confirmation::Nack(_))) => Err(PublishError::Nacked),
            Ok(Ok(Confirmation::NotRequested)) => Err(PublishError::NotConfirmed),
            Ok(Err(error)) => {
                self.inner.check.notify_one();
                Err(PublishError::Broker(error))
            }
            Err(_) => {
                self.inner.check.notify_one();
                Err(PublishError::Timeout(self.inner.confirm_timeout))
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

async fn close_link(link: &Link) {
    if link.connection.status().connected() {
        let closed = tokio::time::timeout(Duration::from_secs(2), link.connection.close(200, "OK".into())).await;
        if let Ok(Err(error)) = closed {
            log::debug!("closing the broker connection: {error}");
        }
    }
}

async fn open_link(inner: &Inner) -> Result<Link, ConnectError> {
    let connection = connect(&inner.settings.url, &inner.name).await?;
    let mut channels = Vec::with_capacity(inner.channel_count);
    for _ in 0..inner.channel_count {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        channels.push(channel);
    }
    inner.settings.topology.declare(&channels[0]).await?;
    Ok(Link { connection, channels })
}

/// While reconnecting, how soon after a failed attempt a publish may ask for the next one.
const EARLY_RETRY_AFTER: Duration = Duration::from_secs(1);

async fn supervise(inner: Arc<Inner>) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    while !inner.closing.load(Ordering::SeqCst) {
        let link = match tokio::time::timeout(CONNECT_TIMEOUT * 2, open_link(&inner)).await {
            Ok(Ok(link)) => Arc::new(link),
            failed => {
                let error = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no answer within {:?}", CONNECT_TIMEOUT * 2),
                };
                let delay = backoff.next_delay();
                log::warn!(
                    "broker connect failed: connection={} url={} attempt={} error=\"{error}\" retry_in_ms={}",
                    inner.name,
                    inner.settings.url.redacted(),
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
        log::info!(
            "broker connected: connection={} url={} after_attempts={}",
            inner.name,
            inner.settings.url.redacted(),
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
    use std::collections::HashMap;

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
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        let lookup = move |name: &str| map.get(name).cloned();
        BrokerSettings::from_vars(&Vars::new(&lookup))
    }

    #[test]
    fn defaults_follow_the_design() {
        let settings = settings(&[]).unwrap();
        assert_eq!(settings.url.expose(), DEFAULT_AMQP_URL);
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
        assert!(tls.url.is_tls());
        assert!(!format!("{:?}", tls.url).contains("pw@"));

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
