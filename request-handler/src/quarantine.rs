//! The quarantine: for sources with `quarantine` in the sources file, a request whose
//! signature is well formed but matches none of the source's secrets, and that passes every
//! other check, is kept on this handler's disk (`SPOOL_DIR/quarantine/{source}/`), bounded per
//! source in count and age. After a secret mistake (a vendor's secret rotated without telling
//! us), an operator corrects the secrets and runs `request-handler quarantine readmit`, which
//! checks each kept request again, with the secrets as now configured and the time it was
//! received, and publishes the ones that now pass. A kept request is never published, stored
//! or forwarded unless it verifies; it was answered 401 like any other.
//!
//! Keeping is best effort and off the request path: the request is answered 401 at once and
//! handed to a thread of its own; when that thread is behind, or the source's quarantine is
//! full, the request is not kept (counted). The files are written without `fsync` (nothing in
//! them was answered 200), each with a SHA-256 of its content, so a file cut short by a crash
//! is reported as unreadable rather than read as another request.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use actix_web::web::Bytes;
use anyhow::Context;
use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use webhook_core::broker::{Outgoing, Publisher};
use webhook_core::config::ConfigError;
use webhook_core::envelope::{Envelope, format_time};
use webhook_core::service::Selection;
use webhook_core::signature::{Headers, Rejection};

use crate::error::IngestError;
use crate::routes::ingest::{Checked, Signing, check, examine};
use crate::settings::Settings;
use crate::sources::{Source, Sources};

/// The directory under `SPOOL_DIR`.
pub const DIR_NAME: &str = "quarantine";
/// Requests waiting for the keeping thread; past it, requests are not kept.
const QUEUE: usize = 256;
/// How often expired requests are removed when nothing else happens.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// The first bytes of a kept request's file.
const MAGIC: &[u8; 4] = b"WIQ1";
/// A kept request's file name ends so.
const EXTENSION: &str = "request";

/// Labels of the quarantine's counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeptLabels {
    source: String,
}

/// Labels of requests that were not kept.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotKeptLabels {
    source: String,
    /// `full`, `busy`, `other_checks` (fails more than the signature) or `write_failed`.
    reason: &'static str,
}

#[derive(Debug, Clone, Default)]
struct QuarantineMetrics {
    kept: Family<KeptLabels, Counter>,
    not_kept: Family<NotKeptLabels, Counter>,
}

impl QuarantineMetrics {
    fn not_kept(&self, source: &str, reason: &'static str) {
        self.not_kept
            .get_or_create(&NotKeptLabels {
                source: source.to_owned(),
                reason,
            })
            .inc();
    }
}

/// A request to keep, as the keeping thread gets it.
struct Offered {
    source: Arc<Source>,
    received_at: DateTime<Utc>,
    headers: Vec<(String, Vec<u8>)>,
    body: Bytes,
}

/// The handler's side: takes requests to keep. Cheap to share.
#[derive(Debug)]
pub struct Quarantine {
    offers: SyncSender<Offered>,
    metrics: QuarantineMetrics,
}

impl Quarantine {
    /// Starts keeping requests in `SPOOL_DIR/quarantine` for the sources that quarantine.
    /// `None` when none does.
    pub fn start(spool_dir: &Path, sources: &Sources) -> Result<Option<Self>, ConfigError> {
        let quarantined: Vec<Arc<Source>> = sources
            .iter()
            .filter(|source| source.quarantine.is_some())
            .cloned()
            .collect();
        if quarantined.is_empty() {
            return Ok(None);
        }
        let root = spool_dir.join(DIR_NAME);
        for source in &quarantined {
            private_dir(&root.join(source.name.as_str())).map_err(|error| {
                ConfigError::invalid(
                    "SPOOL_DIR",
                    Some(&spool_dir.display().to_string()),
                    format!("a directory the handler can write, for the quarantine: {error}"),
                )
            })?;
        }
        let metrics = QuarantineMetrics::default();
        let (offers, receiver) = std::sync::mpsc::sync_channel(QUEUE);
        let keeper = Keeper {
            root,
            counts: HashMap::new(),
            metrics: metrics.clone(),
        };
        std::thread::Builder::new()
            .name("quarantine".to_owned())
            .spawn(move || keeper.serve(&receiver, &quarantined))
            .map_err(|error| ConfigError::invalid("SPOOL_DIR", None, format!("a quarantine thread: {error}")))?;
        Ok(Some(Self { offers, metrics }))
    }

    /// Registers its metrics.
    pub(crate) fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "quarantine_kept",
            "Requests whose signature matched no secret, kept for `quarantine readmit`, by source",
            self.metrics.kept.clone(),
        );
        registry.register(
            "quarantine_not_kept",
            "Requests whose signature matched no secret that were not kept, by source and reason",
            self.metrics.not_kept.clone(),
        );
    }

    /// Offers a request refused for its signature: kept if its source quarantines and the
    /// signature was well formed but matched no secret. Never waits.
    pub(crate) fn offer(
        &self,
        source: &Arc<Source>,
        rejection: Rejection,
        headers: &HeaderMap,
        body: &Bytes,
        received_at: DateTime<Utc>,
    ) {
        if rejection != Rejection::Mismatch || source.quarantine.is_none() {
            return;
        }
        let offered = Offered {
            source: Arc::clone(source),
            received_at,
            headers: headers
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
                .collect(),
            body: body.clone(),
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.offers.try_send(offered) {
            self.metrics.not_kept(source.name.as_str(), "busy");
        }
    }
}

/// Creates `dir` (and its parents) readable by this user only: kept requests carry the
/// headers their source's checks read, a credential among them for some schemes (Postmark's
/// Basic credentials).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// The keeping thread.
struct Keeper {
    root: PathBuf,
    /// Kept requests per source, as last counted.
    counts: HashMap<String, usize>,
    metrics: QuarantineMetrics,
}

impl Keeper {
    fn serve(mut self, offers: &Receiver<Offered>, sources: &[Arc<Source>]) {
        for source in sources {
            self.prune(source);
        }
        loop {
            match offers.recv_timeout(PRUNE_EVERY) {
                Ok(offered) => self.keep(&offered),
                Err(RecvTimeoutError::Timeout) => {
                    for source in sources {
                        self.prune(source);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    fn keep(&mut self, offered: &Offered) {
        let source = &offered.source;
        let name = source.name.as_str();
        let Some(limits) = source.quarantine else {
            return;
        };
        let headers = Recording::new(&offered.headers);
        // Only a request that fails nothing but its signature is worth a later look.
        let delivery_id = match examine(source, &headers, &offered.body, None) {
            Ok(Checked::Event(identity)) => identity.delivery_id.to_string(),
            Ok(Checked::Handshake(..)) | Err(_) => {
                self.metrics.not_kept(name, "other_checks");
                return;
            }
        };
        if self.counts.get(name).copied().unwrap_or(0) >= limits.max_requests {
            // Recount: `quarantine readmit` may have removed some since.
            self.prune(source);
            if self.counts.get(name).copied().unwrap_or(0) >= limits.max_requests {
                self.metrics.not_kept(name, "full");
                return;
            }
        }
        // Run the signature check as a recheck will, for the headers it reads: only those are
        // written to disk, not the request's other headers (cookies, other credentials).
        let url = recheck_url(source);
        let signing = recheck_signing(url.as_deref());
        let _refused_again = check(
            source,
            &headers,
            &offered.body,
            &signing,
            offered.received_at.timestamp(),
        );
        let kept = KeptRequest {
            source: name.to_owned(),
            received_at: offered.received_at,
            delivery_id,
            headers: headers.read(),
            body: offered.body.to_vec(),
        };
        match kept.write(&self.root.join(name)) {
            Ok(path) => {
                *self.counts.entry(name.to_owned()).or_default() += 1;
                self.metrics
                    .kept
                    .get_or_create(&KeptLabels {
                        source: name.to_owned(),
                    })
                    .inc();
                log::info!(
                    "quarantine: kept a request whose signature matched no secret: source={name} delivery_id={:?} file={}",
                    kept.delivery_id,
                    path.display()
                );
            }
            Err(error) => {
                self.metrics.not_kept(name, "write_failed");
                log::warn!("quarantine: could not keep a request of source {name}: {error}");
            }
        }
    }

    /// Removes `source`'s kept requests older than its `max_age` and counts the rest.
    fn prune(&mut self, source: &Source) {
        let Some(limits) = source.quarantine else {
            return;
        };
        let dir = self.root.join(source.name.as_str());
        let oldest = Utc::now() - chrono::Duration::from_std(limits.max_age).unwrap_or(chrono::Duration::MAX);
        let mut count = 0;
        for (path, received_at) in kept_files(&dir) {
            if received_at < oldest {
                if std::fs::remove_file(&path).is_ok() {
                    log::info!("quarantine: removed {} (older than max_age_hours)", path.display());
                }
            } else {
                count += 1;
            }
        }
        self.counts.insert(source.name.as_str().to_owned(), count);
    }
}

/// The kept requests' files in `dir`, with the time each was received (from its name),
/// oldest first.
fn kept_files(dir: &Path) -> Vec<(PathBuf, DateTime<Utc>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(PathBuf, DateTime<Utc>)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path();
            let name = path.file_name()?.to_str()?;
            let stem = name.strip_suffix(&format!(".{EXTENSION}"))?;
            let micros: i64 = stem.split('-').next()?.parse().ok()?;
            Some((path.clone(), DateTime::from_timestamp_micros(micros)?))
        })
        .collect();
    files.sort();
    files
}

/// Headers as they were kept: names in lower case, as actix-web gives them.
struct KeptHeaders<'a>(&'a [(String, Vec<u8>)]);

impl Headers for KeptHeaders<'_> {
    fn raw(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(kept, _)| kept.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }
}

/// The URL a kept request is checked against. The query string is not kept: a scheme that
/// signs the URL is checked against the source's `url` alone, so a request that was sent with
/// a query fails again and stays (it is never admitted unverified).
fn recheck_url(source: &Source) -> Option<String> {
    source.signed_url("")
}

/// How a kept request is checked: only POST reaches a source.
fn recheck_signing(url: Option<&str>) -> Signing<'_> {
    Signing { method: "POST", url }
}

/// A request's headers that note which of them the checks ask for.
struct Recording<'a> {
    headers: KeptHeaders<'a>,
    asked: std::cell::RefCell<Vec<String>>,
}

impl<'a> Recording<'a> {
    fn new(headers: &'a [(String, Vec<u8>)]) -> Self {
        Self {
            headers: KeptHeaders(headers),
            asked: std::cell::RefCell::default(),
        }
    }

    /// The headers present that were asked for, in the request's order.
    fn read(&self) -> Vec<(String, Vec<u8>)> {
        let asked = self.asked.borrow();
        self.headers
            .0
            .iter()
            .filter(|(name, _)| asked.iter().any(|wanted| wanted.eq_ignore_ascii_case(name)))
            .cloned()
            .collect()
    }
}

impl Headers for Recording<'_> {
    fn raw(&self, name: &str) -> Option<&[u8]> {
        self.asked.borrow_mut().push(name.to_owned());
        self.headers.raw(name)
    }
}

/// One kept request, as its file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeptRequest {
    source: String,
    received_at: DateTime<Utc>,
    /// The delivery id the request claimed when it was kept.
    delivery_id: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl KeptRequest {
    /// `MAGIC`, received at (i64 µs), the source, the claimed delivery id, the headers (count,
    /// then each name and value), the body, each field length-prefixed (u32, big-endian), then
    /// the SHA-256 of all that.
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.body.len() + 1024);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.received_at.timestamp_micros().to_be_bytes());
        let field = |bytes: &mut Vec<u8>, value: &[u8]| {
            bytes.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
            bytes.extend_from_slice(value);
        };
        field(&mut bytes, self.source.as_bytes());
        field(&mut bytes, self.delivery_id.as_bytes());
        bytes.extend_from_slice(&u32::try_from(self.headers.len()).unwrap_or(u32::MAX).to_be_bytes());
        for (name, value) in &self.headers {
            field(&mut bytes, name.as_bytes());
            field(&mut bytes, value);
        }
        field(&mut bytes, &self.body);
        let digest = Sha256::digest(&bytes);
        bytes.extend_from_slice(&digest);
        bytes
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let (content, digest) = bytes
            .split_at_checked(bytes.len().saturating_sub(32))
            .ok_or("shorter than its checksum")?;
        if digest.len() != 32 || Sha256::digest(content).as_slice() != digest {
            return Err("its checksum does not match (cut short or altered)".to_owned());
        }
        let mut reader = Cursor { bytes: content, at: 0 };
        if reader.take(4)? != MAGIC {
            return Err("not a kept request".to_owned());
        }
        let micros = i64::from_be_bytes(reader.array()?);
        let received_at = DateTime::from_timestamp_micros(micros).ok_or("a time out of range")?;
        let source = reader.text()?;
        let delivery_id = reader.text()?;
        let count = u32::from_be_bytes(reader.array()?);
        let mut headers = Vec::new();
        for _ in 0..count {
            headers.push((reader.text()?, reader.field()?.to_vec()));
        }
        let body = reader.field()?.to_vec();
        Ok(Self {
            source,
            received_at,
            delivery_id,
            headers,
            body,
        })
    }

    /// Writes the file into `dir` (under a temporary name, then renamed, so that a reader never
    /// sees half of it); returns its path.
    fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let id = format!(
            "{}-{}",
            self.received_at.timestamp_micros(),
            uuid::Uuid::new_v4().simple()
        );
        let temporary = dir.join(format!(".{id}.tmp"));
        let path = dir.join(format!("{id}.{EXTENSION}"));
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&self.encode())?;
        drop(file);
        std::fs::rename(&temporary, &path)?;
        Ok(path)
    }
}

/// Reads a kept request's fields in order.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(count).ok_or("a length out of range")?;
        let taken = self.bytes.get(self.at..end).ok_or("it ends early")?;
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        self.take(N)?.try_into().map_err(|_| "it ends early".to_owned())
    }

    fn field(&mut self) -> Result<&'a [u8], String> {
        let length = u32::from_be_bytes(self.array()?);
        self.take(usize::try_from(length).map_err(|_| "a length out of range")?)
    }

    fn text(&mut self) -> Result<String, String> {
        String::from_utf8(self.field()?.to_vec()).map_err(|_| "a name is not UTF-8".to_owned())
    }
}

/// What checking a kept request again, with the secrets as configured now, says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It verifies and is an event: `readmit` publishes it.
    Passes,
    /// It still fails: the reason, as the handler's metrics name it (`signature_mismatch`, …).
    Fails(&'static str),
    /// It verifies but is a vendor's handshake, not an event: nothing to admit.
    Handshake,
    /// Its source is no longer configured, or no longer quarantines.
    UnknownSource,
    /// Its file cannot be read.
    Unreadable(String),
}

impl Verdict {
    /// How `quarantine list` says it.
    pub fn describe(&self) -> String {
        match self {
            Self::Passes => "passes now".to_owned(),
            Self::Fails(reason) => format!("still fails: {reason}"),
            Self::Handshake => "a handshake, nothing to admit".to_owned(),
            Self::UnknownSource => "source not configured".to_owned(),
            Self::Unreadable(why) => format!("unreadable: {why}"),
        }
    }
}

/// A kept request as `quarantine list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its id (its file's name without the extension), for `readmit --id`.
    pub id: String,
    /// The source it was sent to.
    pub source: String,
    /// When the handler received it.
    pub received_at: Option<DateTime<Utc>>,
    /// The delivery id it claimed.
    pub delivery_id: String,
    /// The size of its body.
    pub body_bytes: usize,
    /// What checking it now says.
    pub verdict: Verdict,
}

/// A kept request checked again, with what `readmit` would publish.
struct Rechecked {
    path: PathBuf,
    listed: Listed,
    message: Option<(Envelope, Vec<u8>)>,
}

/// Every kept request of every source, oldest first within each source, each checked again
/// with `settings`' sources and secrets as of the time it was received.
fn recheck_all(settings: &Settings) -> anyhow::Result<Vec<Rechecked>> {
    let spool = settings
        .spool
        .as_ref()
        .context("SPOOL_DIR is not set: the quarantine is kept in SPOOL_DIR/quarantine")?;
    let root = spool.dir.join(DIR_NAME);
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_dir())
            .collect(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(error).with_context(|| format!("reading {}", root.display())),
    };
    dirs.sort();
    let mut checked = Vec::new();
    for dir in dirs {
        let dir_source = dir
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_owned();
        for (path, received_at) in kept_files(&dir) {
            let id = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .unwrap_or_default()
                .to_owned();
            let read = std::fs::read(&path)
                .map_err(|error| error.to_string())
                .and_then(|bytes| KeptRequest::decode(&bytes));
            let kept = match read {
                Ok(kept) => kept,
                Err(why) => {
                    checked.push(Rechecked {
                        path,
                        listed: Listed {
                            id,
                            source: dir_source.clone(),
                            received_at: Some(received_at),
                            delivery_id: String::new(),
                            body_bytes: 0,
                            verdict: Verdict::Unreadable(why),
                        },
                        message: None,
                    });
                    continue;
                }
            };
            let (verdict, message) = recheck(&settings.sources, &kept);
            checked.push(Rechecked {
                path,
                listed: Listed {
                    id,
                    source: kept.source.clone(),
                    received_at: Some(kept.received_at),
                    delivery_id: kept.delivery_id.clone(),
                    body_bytes: kept.body.len(),
                    verdict,
                },
                message,
            });
        }
    }
    Ok(checked)
}

/// Checks `kept` as the handler would have when it arrived, with the secrets as now
/// configured.
fn recheck(sources: &Sources, kept: &KeptRequest) -> (Verdict, Option<(Envelope, Vec<u8>)>) {
    let Some(source) = sources.get(&kept.source).filter(|source| source.quarantine.is_some()) else {
        return (Verdict::UnknownSource, None);
    };
    let headers = KeptHeaders(&kept.headers);
    let url = recheck_url(source);
    let signing = recheck_signing(url.as_deref());
    match check(source, &headers, &kept.body, &signing, kept.received_at.timestamp()) {
        Ok((_, Checked::Event(identity))) => {
            let envelope = Envelope::new(
                &source.name,
                &identity.delivery_id,
                &identity.event_type,
                kept.received_at,
                source.body_format,
            );
            (Verdict::Passes, Some((envelope, kept.body.clone())))
        }
        Ok((_, Checked::Handshake(..))) => (Verdict::Handshake, None),
        Err(error) => (Verdict::Fails(IngestError::reason(&error)), None),
    }
}

/// `request-handler quarantine list`: every kept request, checked again with the secrets as
/// configured now. Publishes nothing.
pub fn list(settings: &Settings) -> anyhow::Result<Vec<Listed>> {
    Ok(recheck_all(settings)?
        .into_iter()
        .map(|checked| checked.listed)
        .collect())
}

/// What `readmit` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadmitReport {
    /// Delivery ids published (confirmed by the broker) and removed from the quarantine.
    pub admitted: Vec<String>,
    /// Selected ones that do not pass now, with why: they stay until they expire.
    pub refused: Vec<(String, String)>,
    /// Ones that passed but whose publish the broker did not confirm: they stay.
    pub failed: Vec<(String, String)>,
    /// Ids asked for that are not in the quarantine.
    pub not_found: Vec<String>,
}

impl ReadmitReport {
    /// Whether every request that passed was admitted.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty() && self.not_found.is_empty()
    }
}

/// How long readmit's publisher may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// `request-handler quarantine readmit`: checks the selected kept requests again and
/// publishes those that pass (confirmed, with the time they were received), removing each
/// once the broker has confirmed it. Those that still fail stay.
pub async fn readmit(settings: &Settings, selection: &Selection) -> anyhow::Result<ReadmitReport> {
    let mut checked = recheck_all(settings)?;
    let mut report = ReadmitReport {
        not_found: selection.not_found(|id| checked.iter().any(|one| one.listed.id == id)),
        ..ReadmitReport::default()
    };
    checked.retain(|one| selection.takes(&one.listed.id));
    let mut admissible = Vec::new();
    for one in checked {
        match one.message {
            Some(message) => admissible.push((one.path, one.listed, message)),
            None => report.refused.push((one.listed.id, one.listed.verdict.describe())),
        }
    }
    if admissible.is_empty() {
        return Ok(report);
    }
    let publisher = Publisher::start(
        settings.broker.clone(),
        &format!("request-handler quarantine readmit pid={}", std::process::id()),
        1,
        settings.enqueue_timeout,
    );
    if !publisher.wait_connected(CONNECT_TIMEOUT).await {
        publisher.close().await;
        anyhow::bail!(
            "no broker answered at AMQP_URL={} within {CONNECT_TIMEOUT:?}",
            settings.broker.addresses.redacted()
        );
    }
    let exchange = settings.broker.topology.exchange();
    for (path, listed, (envelope, body)) in admissible {
        let routing_key = envelope.routing_key();
        let message = Outgoing {
            exchange: &exchange,
            routing_key: &routing_key,
            body: &body,
        };
        match publisher.publish(message, envelope.properties()).await {
            Ok(()) => {
                if let Err(error) = std::fs::remove_file(&path) {
                    log::warn!(
                        "quarantine: {} was admitted but could not be removed ({error}); admitting it again stores it once",
                        path.display()
                    );
                }
                log::info!(
                    "quarantine: admitted source={} delivery_id={:?} received_at={}",
                    envelope.source,
                    envelope.delivery_id,
                    format_time(envelope.received_at)
                );
                report.admitted.push(envelope.delivery_id);
            }
            Err(error) => report.failed.push((listed.id, error.to_string())),
        }
    }
    publisher.close().await;
    Ok(report)
}

/// The table `quarantine list` prints.
pub fn format_table(listed: &[Listed]) -> String {
    let mut text = format!(
        "{:<40} {:<16} {:<27} {:>8}  {:<40} {}\n",
        "id", "source", "received at", "bytes", "delivery id", "now"
    );
    for one in listed {
        text.push_str(&format!(
            "{:<40} {:<16} {:<27} {:>8}  {:<40} {}\n",
            one.id,
            one.source,
            one.received_at.map(format_time).unwrap_or_default(),
            one.body_bytes,
            format!("{:?}", one.delivery_id),
            one.verdict.describe()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> KeptRequest {
        KeptRequest {
            source: "github".to_owned(),
            received_at: DateTime::from_timestamp_micros(1_790_000_000_654_321).unwrap(),
            delivery_id: "d-1".to_owned(),
            headers: vec![
                ("x-hub-signature-256".to_owned(), b"sha256=00".to_vec()),
                ("x-github-delivery".to_owned(), b"d-1".to_vec()),
            ],
            body: b"{\"zen\":\"\xc3\xa9\"}".to_vec(),
        }
    }

    #[test]
    fn a_kept_request_reads_back_as_it_was_and_a_cut_one_does_not() {
        let bytes = kept().encode();
        assert_eq!(KeptRequest::decode(&bytes), Ok(kept()));
        for length in 0..bytes.len() {
            assert!(KeptRequest::decode(&bytes[..length]).is_err(), "cut at {length}");
        }
        let mut altered = bytes;
        altered[20] ^= 1;
        assert_eq!(
            KeptRequest::decode(&altered),
            Err("its checksum does not match (cut short or altered)".to_owned())
        );
    }

    #[test]
    fn only_the_headers_asked_for_are_kept() {
        let headers = vec![
            ("x-hub-signature-256".to_owned(), b"sha256=00".to_vec()),
            ("cookie".to_owned(), b"session=secret".to_vec()),
            ("x-github-delivery".to_owned(), b"d-1".to_vec()),
        ];
        let recording = Recording::new(&headers);
        assert_eq!(recording.get("X-GitHub-Delivery"), Some("d-1"));
        assert_eq!(recording.get("X-Hub-Signature-256"), Some("sha256=00"));
        assert_eq!(recording.get("X-Absent"), None);
        assert_eq!(
            recording.read(),
            [
                ("x-hub-signature-256".to_owned(), b"sha256=00".to_vec()),
                ("x-github-delivery".to_owned(), b"d-1".to_vec()),
            ]
        );
    }

    #[test]
    fn kept_headers_are_found_whatever_the_case() {
        let request = kept();
        let headers = KeptHeaders(&request.headers);
        assert_eq!(headers.get("X-GitHub-Delivery"), Some("d-1"));
        assert_eq!(headers.get("X-Missing"), None);
    }

    #[test]
    fn files_are_listed_oldest_first_by_the_time_in_their_name() {
        let dir = testkit::private::TempDir::new("quarantine");
        let mut older = kept();
        older.received_at -= chrono::Duration::hours(1);
        let newer_path = kept().write(dir.path()).unwrap();
        let older_path = older.write(dir.path()).unwrap();
        std::fs::write(dir.path().join(".half.tmp"), b"x").unwrap();
        let files = kept_files(dir.path());
        assert_eq!(
            files.iter().map(|(path, _)| path.clone()).collect::<Vec<_>>(),
            [older_path, newer_path]
        );
        assert_eq!(files[0].1, older.received_at);
    }
}
