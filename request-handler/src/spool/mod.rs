//! The spool: for sources with `when_broker_down = "spool"`, a message the broker does not
//! confirm within `SPOOL_PUBLISH_TIMEOUT_MS` (or that finds no connection) is written to a
//! file on this handler's disk, made durable, and only then answered 200
//! `{"status":"spooled"}`; the forwarder sends it on once the broker confirms again.
//!
//! - [`record`]: a message (envelope and body) as one record; pure.
//! - [`store`]: the file (redb) and the thread that writes it, with group commit.
//! - [`forward`]: the task that drains it to the broker, oldest first.
//! - [`metrics`]: depth, age and what it did.
//!
//! A spool belongs to one handler process (the file is locked): it lives on that handler's
//! disk, so a handler that is gone for good takes its spool with it unless its volume is
//! attached to another handler.

mod forward;
mod metrics;
pub(crate) mod record;
mod store;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use webhook_core::broker::{LocalPublisher, Outgoing, PublishError, Publisher};
use webhook_core::config::{ConfigError, Vars};
use webhook_core::envelope::Envelope;
use webhook_core::spooling::WhenBrokerDown;

use self::metrics::{SourceLabels, SpoolMetrics};
pub use self::store::AppendError as SpoolError;
use self::store::{OpenError, Store};
use crate::error::IngestError;
use crate::sources::{Source, Sources};

/// `SPOOL_MAX_BYTES` unless set: 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
/// The largest `SPOOL_MAX_BYTES`: 1 TiB.
pub const LARGEST_MAX_BYTES: u64 = 1 << 40;
/// `SPOOL_PUBLISH_TIMEOUT_MS` unless set (or half of `ENQUEUE_TIMEOUT_MS`, if that is less).
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_millis(1000);

/// Where the spool is and how much it may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    /// `SPOOL_DIR`: the spool's file and the quarantine live here.
    pub dir: PathBuf,
    /// `SPOOL_MAX_BYTES`: the most the spooled messages may take (their records' sizes).
    pub max_bytes: u64,
    /// `SPOOL_PUBLISH_TIMEOUT_MS`: how long a spooling source's publish waits for the confirm
    /// before the message is spooled instead.
    pub publish_timeout: Duration,
}

impl SpoolSettings {
    /// Reads `SPOOL_DIR`, `SPOOL_MAX_BYTES` and `SPOOL_PUBLISH_TIMEOUT_MS`. `None` without
    /// `SPOOL_DIR`, which is an error when a source spools or quarantines. Every value that is
    /// set is checked, used or not.
    pub fn from_vars(
        vars: &Vars<'_>,
        sources: &Sources,
        enqueue_timeout: Duration,
        max_body_bytes: usize,
    ) -> Result<Option<Self>, ConfigError> {
        let smallest = (max_body_bytes + MARGIN) as u64;
        let max_bytes = vars.integer(
            "SPOOL_MAX_BYTES",
            DEFAULT_MAX_BYTES.max(smallest),
            smallest,
            LARGEST_MAX_BYTES,
            "bytes (at least MAX_BODY_BYTES plus 512, so that any request fits)",
        )?;
        let enqueue_ms = u64::try_from(enqueue_timeout.as_millis()).unwrap_or(u64::MAX);
        let below = enqueue_ms.saturating_sub(1).max(1);
        let default_ms = (DEFAULT_PUBLISH_TIMEOUT.as_millis() as u64).min(enqueue_ms / 2).max(1);
        let publish_ms = vars.integer(
            "SPOOL_PUBLISH_TIMEOUT_MS",
            default_ms,
            1,
            below,
            "milliseconds (below ENQUEUE_TIMEOUT_MS)",
        )?;
        let needs = sources.iter().find_map(|source| {
            if source.when_broker_down == WhenBrokerDown::Spool {
                Some(format!(
                    "source {:?} has when_broker_down = \"spool\"",
                    source.name.as_str()
                ))
            } else {
                source
                    .quarantine
                    .map(|_| format!("source {:?} has a quarantine", source.name.as_str()))
            }
        });
        let Some(dir) = vars.get("SPOOL_DIR") else {
            return match needs {
                Some(why) => Err(ConfigError::missing(
                    "SPOOL_DIR",
                    format!("a directory on this handler's disk for the spool and the quarantine: {why}"),
                )),
                None => Ok(None),
            };
        };
        Ok(Some(Self {
            dir: PathBuf::from(dir),
            max_bytes,
            publish_timeout: Duration::from_millis(publish_ms),
        }))
    }
}

/// The handler's spool: its file, its writer thread and its forwarder.
#[derive(Debug)]
pub struct Spool {
    store: Store,
    settings: SpoolSettings,
    metrics: SpoolMetrics,
    /// Whether any source spools, so that `/readyz` stays ready while it does.
    any_source_spools: bool,
    /// The largest record a request can make: while less is free, the spool counts as full.
    largest_record: u64,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    forwarder: Mutex<Option<(CancellationToken, tokio::task::JoinHandle<()>)>>,
}

/// What the smallest `SPOOL_MAX_BYTES` adds to `MAX_BODY_BYTES`: more than a record adds to
/// its body ([`record::MAX_OVERHEAD`]).
const MARGIN: usize = 512;
const _: () = assert!(record::MAX_OVERHEAD <= MARGIN);

impl SpoolError {
    /// A short label for metrics and logs: `spool_full` or `spool_failed`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Full { .. } => "spool_full",
            Self::Failed(_) => "spool_failed",
        }
    }
}

impl Spool {
    /// Opens (or creates) the spool in `settings.dir`. A directory that cannot be written, a
    /// file that is not a spool or one another process has open is a configuration error
    /// naming `SPOOL_DIR`.
    pub fn open(settings: &SpoolSettings, sources: &Sources, max_body_bytes: usize) -> Result<Self, ConfigError> {
        let metrics = SpoolMetrics::default();
        let (store, thread) =
            Store::open(&settings.dir, settings.max_bytes, metrics.store.clone()).map_err(|error| {
                let shown = settings.dir.display().to_string();
                match error {
                    OpenError::InUse(_) => ConfigError::invalid(
                        "SPOOL_DIR",
                        Some(&shown),
                        format!("a spool no other process has open: {error}"),
                    ),
                    OpenError::Other { .. } => ConfigError::invalid(
                        "SPOOL_DIR",
                        Some(&shown),
                        format!("a directory the handler can create and write, holding its spool: {error}"),
                    ),
                }
            })?;
        let depth = store.depth();
        log::info!(
            "spool: {} holds {} message(s), {} bytes (SPOOL_MAX_BYTES={})",
            settings.dir.join(store::FILE_NAME).display(),
            depth.messages(),
            depth.bytes(),
            settings.max_bytes
        );
        Ok(Self {
            store,
            settings: settings.clone(),
            metrics,
            any_source_spools: sources
                .iter()
                .any(|source| source.when_broker_down == WhenBrokerDown::Spool),
            largest_record: (max_body_bytes + record::MAX_OVERHEAD) as u64,
            thread: Mutex::new(Some(thread)),
            forwarder: Mutex::new(None),
        })
    }

    /// Registers the spool's metrics.
    pub(crate) fn register_metrics(&self, registry: &mut Registry) {
        self.metrics.register(registry, self.store.shared_depth());
    }

    /// Messages waiting in the spool.
    pub fn messages(&self) -> u64 {
        self.store.depth().messages()
    }

    /// Whether every request, however large, still fits.
    pub fn accepts(&self) -> bool {
        self.store.depth().bytes() + self.largest_record <= self.settings.max_bytes
    }

    /// Whether a source spools, so that the handler still takes requests without a broker.
    pub fn any_source_spools(&self) -> bool {
        self.any_source_spools
    }

    /// Writes `envelope` and `body` to the spool; returns once they are durable.
    pub(crate) async fn append(&self, envelope: &Envelope, body: &[u8]) -> Result<(), SpoolError> {
        let record = record::encode(envelope, chrono::Utc::now(), body);
        self.store.append(record).await?;
        self.metrics
            .spooled
            .get_or_create(&SourceLabels {
                source: envelope.source.clone(),
            })
            .inc();
        Ok(())
    }

    /// Starts forwarding to the broker through `publisher`, to `exchange`.
    pub fn start_forwarder(&self, publisher: Publisher, exchange: String) {
        let stop = CancellationToken::new();
        let task = tokio::spawn(forward::run(
            self.store.clone(),
            publisher,
            exchange,
            self.metrics.clone(),
            stop.clone(),
        ));
        *self.forwarder.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((stop, task));
    }

    /// Stops the forwarder, then lets the writer finish what it has and close the file.
    pub async fn close(&self) {
        let forwarder = self
            .forwarder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((stop, task)) = forwarder {
            stop.cancel();
            let _ = task.await;
        }
        self.store.close().await;
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// How an accepted request's message went.
#[derive(Debug)]
pub(crate) enum Delivered {
    /// The broker confirmed it.
    Queued,
    /// It is in the spool, durable; why the broker did not take it.
    Spooled(PublishError),
}

/// Publishes `message` for `source`: confirmed within `ENQUEUE_TIMEOUT_MS`, or, for a source
/// that spools, within `SPOOL_PUBLISH_TIMEOUT_MS` and else written to the spool.
///
/// A publish that timed out may still have reached the broker; spooling it too can only make
/// a duplicate, which the consumer stores once.
pub(crate) async fn deliver(
    publisher: &LocalPublisher,
    spool: Option<&Spool>,
    source: &Source,
    message: Outgoing<'_>,
    envelope: &Envelope,
) -> Result<Delivered, IngestError> {
    let Some(spool) = spool.filter(|_| source.when_broker_down == WhenBrokerDown::Spool) else {
        publisher.publish(message, envelope.properties()).await?;
        return Ok(Delivered::Queued);
    };
    match publisher
        .publish_within(message, envelope.properties(), spool.settings.publish_timeout)
        .await
    {
        Ok(()) => Ok(Delivered::Queued),
        Err(cause) => match spool.append(envelope, message.body).await {
            Ok(()) => Ok(Delivered::Spooled(cause)),
            Err(why) => Err(IngestError::NotSpooled(cause, why)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)], sources: &Sources) -> Result<Option<SpoolSettings>, ConfigError> {
        Vars::with_pairs(pairs, |vars| {
            SpoolSettings::from_vars(vars, sources, Duration::from_secs(5), 1 << 20)
        })
    }

    fn spooling_sources() -> Sources {
        let file = webhook_core::sources::SourcesFile::parse(
            "[[source]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [\"s\"]\nwhen_broker_down = \"spool\"\n",
        )
        .unwrap();
        Sources::from_sources(&file, &|_| None, &|_| Err(std::io::ErrorKind::NotFound.into())).unwrap()
    }

    #[test]
    fn without_spool_dir_there_is_no_spool_unless_a_source_needs_one() {
        assert_eq!(read(&[], &Sources::default()), Ok(None));
        let error = read(&[], &spooling_sources()).unwrap_err().to_string();
        assert_eq!(
            error,
            "invalid configuration: SPOOL_DIR is not set: expected a directory on this handler's disk for the spool \
             and the quarantine: source \"gh\" has when_broker_down = \"spool\""
        );
    }

    #[test]
    fn defaults_and_bad_values_name_their_variable() {
        let settings = read(&[("SPOOL_DIR", "/var/spool/x")], &spooling_sources())
            .unwrap()
            .unwrap();
        assert_eq!(settings.max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(settings.publish_timeout, DEFAULT_PUBLISH_TIMEOUT);
        let cases = [
            (
                "SPOOL_MAX_BYTES",
                "1000",
                "invalid configuration: SPOOL_MAX_BYTES=\"1000\": expected an integer number of bytes (at least \
                 MAX_BODY_BYTES plus 512, so that any request fits) from 1049088 to 1099511627776",
            ),
            (
                "SPOOL_PUBLISH_TIMEOUT_MS",
                "5000",
                "invalid configuration: SPOOL_PUBLISH_TIMEOUT_MS=\"5000\": expected an integer number of \
                 milliseconds (below ENQUEUE_TIMEOUT_MS) from 1 to 4999",
            ),
        ];
        for (variable, value, expected) in cases {
            // Checked even when nothing spools.
            let error = read(&[(variable, value)], &Sources::default()).unwrap_err();
            assert_eq!(error.to_string(), expected);
        }
    }
}
