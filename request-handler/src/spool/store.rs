//! The spool's file, `SPOOL_DIR/spool.redb`, and the one thread that reads and writes it.
//!
//! The file is a [redb] database: one table of records by sequence number (the order they were
//! spooled in), one of totals. Every write transaction is committed with redb's default
//! durability (`Immediate`: written with checksums, then `fsync`, before `commit` returns),
//! and after a crash redb opens the last commit whose checksums hold: a commit cut short by a
//! SIGKILL or a power cut is dropped whole, and nothing in it had been answered 200, since an
//! append is answered only once its commit has returned.
//!
//! Group commit: requests hand their records to this thread; while one commit runs, the next
//! ones queue up and all of them go into the following transaction, so a burst pays one
//! `fsync` per batch rather than one per request. Removals of forwarded messages ride in the
//! same transactions.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::sync::{Notify, mpsc, oneshot};

use super::record;

const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
const TOTALS: TableDefinition<&str, u64> = TableDefinition::new("totals");
/// The key in `TOTALS` of the sum of the records' sizes.
const BYTES: &str = "bytes";
/// The file in `SPOOL_DIR`.
pub(crate) const FILE_NAME: &str = "spool.redb";

/// At most this many commands go into one transaction.
const MAX_BATCH: usize = 1024;
/// And at most about this many bytes of records.
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// A read hands back at most about this many bytes of records.
const MAX_READ_BYTES: usize = 8 * 1024 * 1024;
/// Commands waiting for the thread; past it, appends wait for room.
const QUEUE: usize = 4096;
/// redb's page cache: records are written once and read once, so a small one does.
const CACHE_BYTES: usize = 32 * 1024 * 1024;
/// An empty spool whose file is larger than this is compacted (the file shrinks again).
const COMPACT_ABOVE_BYTES: u64 = 16 * 1024 * 1024;

/// What the spool holds now, kept up to date by the thread after every commit.
#[derive(Debug, Default)]
pub(crate) struct Depth {
    messages: AtomicU64,
    bytes: AtomicU64,
    /// When the oldest message was spooled (µs since the epoch); 0 when there is none.
    oldest_micros: AtomicI64,
}

impl Depth {
    /// Messages in the spool.
    pub(crate) fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    /// The sum of their records' sizes.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// When the oldest was spooled.
    pub(crate) fn oldest(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.oldest_micros.load(Ordering::Relaxed) {
            0 => None,
            micros => chrono::DateTime::from_timestamp_micros(micros),
        }
    }

    fn set(&self, messages: u64, bytes: u64, oldest: Option<chrono::DateTime<chrono::Utc>>) {
        self.messages.store(messages, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        self.oldest_micros
            .store(oldest.map_or(0, |at| at.timestamp_micros()), Ordering::Relaxed);
    }
}

/// What the thread counts, for the handler's metrics.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoreCounters {
    /// Write transactions committed (each one `fsync`).
    pub(crate) commits: Counter,
    /// From an append's arrival at the thread to its commit.
    pub(crate) append_seconds: Option<Histogram>,
}

/// Why a message was neither confirmed by the broker nor written to the spool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// It does not fit under `SPOOL_MAX_BYTES`.
    #[error("the spool is full ({free} of SPOOL_MAX_BYTES free, {needed} needed)")]
    Full {
        /// Bytes still free.
        free: u64,
        /// The record's size.
        needed: u64,
    },
    /// The file could not be written (or the spool is closed).
    #[error("the spool could not be written: {0}")]
    Failed(String),
}

/// Why the spool's file could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// Another process has it open.
    #[error("another process has {0} open (another request-handler with the same SPOOL_DIR?)")]
    InUse(PathBuf),
    /// Anything else: the directory, permissions, a file that is not a spool.
    #[error("{path}: {error}")]
    Other {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        error: String,
    },
}

type Reply<T> = oneshot::Sender<Result<T, String>>;

enum Command {
    Append {
        record: Vec<u8>,
        arrived: Instant,
        reply: oneshot::Sender<Result<u64, AppendError>>,
    },
    Remove {
        sequences: Vec<u64>,
        reply: Reply<()>,
    },
    Read {
        after: Option<u64>,
        limit: usize,
        reply: Reply<Vec<(u64, Vec<u8>)>>,
    },
    Close,
}

/// A handle to the spool's thread; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    commands: mpsc::Sender<Command>,
    depth: Arc<Depth>,
    /// Notified after every commit that appended something.
    appended: Arc<Notify>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Append { .. } => "Append",
            Self::Remove { .. } => "Remove",
            Self::Read { .. } => "Read",
            Self::Close => "Close",
        })
    }
}

fn closed() -> String {
    "the spool is closed".to_owned()
}

impl Store {
    /// Opens (or creates) the spool in `dir` and starts its thread. Returns the thread's handle
    /// too: it ends after [`Store::close`], having closed the file.
    pub(crate) fn open(
        dir: &Path,
        max_bytes: u64,
        counters: StoreCounters,
    ) -> Result<(Self, std::thread::JoinHandle<()>), OpenError> {
        let other = |path: &Path, error: &dyn std::fmt::Display| OpenError::Other {
            path: path.to_owned(),
            error: error.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|error| other(dir, &error))?;
        let path = dir.join(FILE_NAME);
        let mut builder = redb::Builder::new();
        builder.set_cache_size(CACHE_BYTES);
        let warned = AtomicBool::new(false);
        let shown = path.display().to_string();
        builder.set_repair_callback(move |session| {
            if !warned.swap(true, Ordering::Relaxed) {
                log::warn!(
                    "spool: {shown} was not closed cleanly (a crash or SIGKILL); checking it and dropping a commit cut short ({:.0} % done)",
                    session.progress() * 100.0
                );
            }
        });
        let database = builder.create(&path).map_err(|error| match error {
            redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse(path.clone()),
            error => other(&path, &error),
        })?;
        let state = State::load(&database, max_bytes).map_err(|error| other(&path, &error))?;
        let depth = Arc::new(Depth::default());
        depth.set(state.messages, state.bytes, state.oldest);
        let (commands, receiver) = mpsc::channel(QUEUE);
        let appended = Arc::new(Notify::new());
        let thread = Thread {
            database,
            path,
            state,
            depth: Arc::clone(&depth),
            appended: Arc::clone(&appended),
            counters,
        };
        let handle = std::thread::Builder::new()
            .name("spool".to_owned())
            .spawn(move || thread.serve(receiver))
            .map_err(|error| other(dir, &error))?;
        Ok((
            Self {
                commands,
                depth,
                appended,
            },
            handle,
        ))
    }

    /// What the spool holds.
    pub(crate) fn depth(&self) -> &Depth {
        &self.depth
    }

    /// The same, to keep (for the metrics).
    pub(crate) fn shared_depth(&self) -> Arc<Depth> {
        Arc::clone(&self.depth)
    }

    /// Notified after each commit that appended a record.
    pub(crate) fn appended(&self) -> &Notify {
        &self.appended
    }

    /// Appends `record`; returns its sequence number once it is durable.
    pub(crate) async fn append(&self, record: Vec<u8>) -> Result<u64, AppendError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Append {
            record,
            arrived: Instant::now(),
            reply,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| AppendError::Failed(closed()))?;
        answer.await.map_err(|_| AppendError::Failed(closed()))?
    }

    /// Removes the records of these sequence numbers (those already gone are ignored).
    pub(crate) async fn remove(&self, sequences: Vec<u64>) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Remove { sequences, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Up to `limit` records (and about 8 MiB), oldest first, after sequence number `after`.
    pub(crate) async fn read(&self, after: Option<u64>, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Read { after, limit, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Asks the thread to finish what is queued before this, close the file and end.
    pub(crate) async fn close(&self) {
        let _ = self.commands.send(Command::Close).await;
    }
}

/// The totals as of the last commit.
#[derive(Debug)]
struct State {
    max_bytes: u64,
    next: u64,
    messages: u64,
    bytes: u64,
    oldest: Option<chrono::DateTime<chrono::Utc>>,
}

impl State {
    /// Reads the totals, creating the tables in a new file.
    fn load(database: &Database, max_bytes: u64) -> Result<Self, redb::Error> {
        let transaction = database.begin_write()?;
        let state = {
            let table = transaction.open_table(MESSAGES)?;
            let mut totals = transaction.open_table(TOTALS)?;
            let bytes = match totals.get(BYTES)? {
                Some(bytes) => bytes.value(),
                None => {
                    let mut sum = 0u64;
                    for entry in table.iter()? {
                        sum += entry?.1.value().len() as u64;
                    }
                    sum
                }
            };
            totals.insert(BYTES, bytes)?;
            Self {
                max_bytes,
                next: table.last()?.map_or(1, |(sequence, _)| sequence.value() + 1),
                messages: table.len()?,
                bytes,
                oldest: table
                    .first()?
                    .and_then(|(_, record)| record::spooled_at(record.value())),
            }
        };
        transaction.commit()?;
        Ok(state)
    }
}

/// What a write transaction came to, applied to [`State`] once it is committed.
struct Written {
    appended: Vec<Result<u64, AppendError>>,
    next: u64,
    messages: u64,
    bytes: u64,
    oldest: Option<chrono::DateTime<chrono::Utc>>,
    changed: bool,
}

struct Thread {
    database: Database,
    path: PathBuf,
    state: State,
    depth: Arc<Depth>,
    appended: Arc<Notify>,
    counters: StoreCounters,
}

impl Thread {
    fn serve(mut self, mut commands: mpsc::Receiver<Command>) {
        while let Some(first) = commands.blocking_recv() {
            let mut batch = vec![first];
            let mut bytes = 0;
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match commands.try_recv() {
                    Ok(command) => {
                        if let Command::Append { record, .. } = &command {
                            bytes += record.len();
                        }
                        batch.push(command);
                    }
                    Err(_) => break,
                }
            }
            let closing = batch.iter().any(|command| matches!(command, Command::Close));
            let (reads, writes): (Vec<Command>, Vec<Command>) = batch
                .into_iter()
                .filter(|command| !matches!(command, Command::Close))
                .partition(|command| matches!(command, Command::Read { .. }));
            if !writes.is_empty() {
                self.write(writes);
            }
            for read in reads {
                if let Command::Read { after, limit, reply } = read {
                    let _ = reply.send(self.read(after, limit).map_err(|error| error.to_string()));
                }
            }
            if closing {
                break;
            }
        }
        log::debug!("spool: {} closed", self.path.display());
    }

    fn write(&mut self, writes: Vec<Command>) {
        let written = self.transact(&writes);
        match written {
            Ok(written) => {
                if written.changed {
                    self.counters.commits.inc();
                }
                let was_empty = self.state.messages == 0;
                self.state.next = written.next;
                self.state.messages = written.messages;
                self.state.bytes = written.bytes;
                self.state.oldest = written.oldest;
                self.depth.set(written.messages, written.bytes, written.oldest);
                let mut appended = written.appended.into_iter();
                let mut any_appended = false;
                for command in writes {
                    match command {
                        Command::Append { arrived, reply, .. } => {
                            let result = appended
                                .next()
                                .unwrap_or_else(|| Err(AppendError::Failed("lost in the batch".to_owned())));
                            if result.is_ok() {
                                any_appended = true;
                                if let Some(histogram) = &self.counters.append_seconds {
                                    histogram.observe(arrived.elapsed().as_secs_f64());
                                }
                            }
                            let _ = reply.send(result);
                        }
                        Command::Remove { reply, .. } => {
                            let _ = reply.send(Ok(()));
                        }
                        Command::Read { .. } | Command::Close => {}
                    }
                }
                if any_appended {
                    if was_empty {
                        log::warn!(
                            "spool: holding messages the broker did not confirm; they are forwarded once it confirms again"
                        );
                    }
                    self.appended.notify_one();
                }
                if written.messages == 0 && !was_empty {
                    self.compact_if_large();
                }
            }
            Err(error) => {
                log::error!("spool: writing {} failed: {error}", self.path.display());
                let why = error.to_string();
                for command in writes {
                    match command {
                        Command::Append { reply, .. } => {
                            let _ = reply.send(Err(AppendError::Failed(why.clone())));
                        }
                        Command::Remove { reply, .. } => {
                            let _ = reply.send(Err(why.clone()));
                        }
                        Command::Read { .. } | Command::Close => {}
                    }
                }
            }
        }
    }

    /// One write transaction for every append and removal of the batch, committed (durable)
    /// before this returns.
    fn transact(&self, writes: &[Command]) -> Result<Written, redb::Error> {
        let transaction = self.database.begin_write()?;
        let mut written = Written {
            appended: Vec::new(),
            next: self.state.next,
            messages: self.state.messages,
            bytes: self.state.bytes,
            oldest: self.state.oldest,
            changed: false,
        };
        {
            let mut table = transaction.open_table(MESSAGES)?;
            for command in writes {
                match command {
                    Command::Append { record, .. } => {
                        let needed = record.len() as u64;
                        if written.bytes + needed > self.state.max_bytes {
                            written.appended.push(Err(AppendError::Full {
                                free: self.state.max_bytes.saturating_sub(written.bytes),
                                needed,
                            }));
                            continue;
                        }
                        table.insert(written.next, record.as_slice())?;
                        written.appended.push(Ok(written.next));
                        written.next += 1;
                        written.messages += 1;
                        written.bytes += needed;
                        written.changed = true;
                    }
                    Command::Remove { sequences, .. } => {
                        for &sequence in sequences {
                            let removed = table.remove(sequence)?.map(|record| record.value().len() as u64);
                            if let Some(size) = removed {
                                written.messages -= 1;
                                written.bytes = written.bytes.saturating_sub(size);
                                written.changed = true;
                            }
                        }
                    }
                    Command::Read { .. } | Command::Close => {}
                }
            }
            written.oldest = table
                .first()?
                .and_then(|(_, record)| record::spooled_at(record.value()));
            transaction.open_table(TOTALS)?.insert(BYTES, written.bytes)?;
        }
        if written.changed {
            transaction.commit()?;
        } else {
            transaction.abort()?;
        }
        Ok(written)
    }

    fn read(&self, after: Option<u64>, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, redb::Error> {
        let transaction = self.database.begin_read()?;
        let table = transaction.open_table(MESSAGES)?;
        let start = after.map_or(0, |after| after.saturating_add(1));
        let mut records = Vec::new();
        let mut bytes = 0;
        for entry in table.range(start..)? {
            let (sequence, record) = entry?;
            bytes += record.value().len();
            records.push((sequence.value(), record.value().to_vec()));
            if records.len() >= limit || bytes >= MAX_READ_BYTES {
                break;
            }
        }
        Ok(records)
    }

    /// Gives the disk back once the spool has drained: redb reuses freed pages but does not
    /// shrink its file by itself.
    fn compact_if_large(&mut self) {
        let size = std::fs::metadata(&self.path).map_or(0, |metadata| metadata.len());
        if size <= COMPACT_ABOVE_BYTES {
            return;
        }
        let started = Instant::now();
        match self.database.compact() {
            Ok(_) => {
                let after = std::fs::metadata(&self.path).map_or(0, |metadata| metadata.len());
                log::info!(
                    "spool: empty again; {} compacted from {size} to {after} bytes in {} ms",
                    self.path.display(),
                    started.elapsed().as_millis()
                );
            }
            Err(error) => log::warn!("spool: compacting {} failed: {error}", self.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, max_bytes: u64) -> (Store, std::thread::JoinHandle<()>, StoreCounters) {
        let counters = StoreCounters::default();
        let (store, thread) = Store::open(dir, max_bytes, counters.clone()).unwrap();
        (store, thread, counters)
    }

    async fn close(store: Store, thread: std::thread::JoinHandle<()>) {
        store.close().await;
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }

    fn record(n: u8, size: usize) -> Vec<u8> {
        vec![n; size]
    }

    #[tokio::test]
    async fn records_come_back_oldest_first_and_survive_a_reopen_until_removed() {
        let dir = testkit::private::TempDir::new("spool-store");
        let (store, thread, _) = open(dir.path(), 1 << 20);
        let first = store.append(record(1, 10)).await.unwrap();
        let second = store.append(record(2, 20)).await.unwrap();
        let third = store.append(record(3, 30)).await.unwrap();
        assert!(first < second && second < third);
        assert_eq!((store.depth().messages(), store.depth().bytes()), (3, 60));
        let all = store.read(None, 10).await.unwrap();
        assert_eq!(
            all.iter().map(|(sequence, _)| *sequence).collect::<Vec<_>>(),
            [first, second, third]
        );
        assert_eq!(all[1].1, record(2, 20));
        assert_eq!(store.read(Some(first), 1).await.unwrap()[0].0, second);
        store.remove(vec![first, 999]).await.unwrap();
        assert_eq!((store.depth().messages(), store.depth().bytes()), (2, 50));
        close(store, thread).await;

        let (store, thread, _) = open(dir.path(), 1 << 20);
        assert_eq!((store.depth().messages(), store.depth().bytes()), (2, 50));
        let left: Vec<u64> = store.read(None, 10).await.unwrap().iter().map(|(s, _)| *s).collect();
        assert_eq!(left, [second, third]);
        let fourth = store.append(record(4, 1)).await.unwrap();
        assert!(fourth > third, "sequence numbers go on after a reopen");
        close(store, thread).await;
    }

    #[tokio::test]
    async fn a_record_that_does_not_fit_is_refused_and_nothing_else_is() {
        let dir = testkit::private::TempDir::new("spool-store");
        let (store, thread, _) = open(dir.path(), 100);
        store.append(record(1, 60)).await.unwrap();
        assert_eq!(
            store.append(record(2, 50)).await,
            Err(AppendError::Full { free: 40, needed: 50 })
        );
        store.append(record(3, 40)).await.unwrap();
        assert_eq!(store.depth().bytes(), 100);
        let first = store.read(None, 1).await.unwrap()[0].0;
        store.remove(vec![first]).await.unwrap();
        store.append(record(4, 50)).await.unwrap();
        close(store, thread).await;
    }

    #[tokio::test]
    async fn a_burst_of_appends_shares_commits() {
        let dir = testkit::private::TempDir::new("spool-store");
        let (store, thread, counters) = open(dir.path(), 1 << 24);
        let appends = (0..200u8).map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.append(record(n, 100)).await })
        });
        for append in futures_util::future::join_all(appends).await {
            append.unwrap().unwrap();
        }
        assert_eq!(store.depth().messages(), 200);
        let commits = counters.commits.get();
        assert!(commits <= 20, "{commits} commits for 200 appends");
        close(store, thread).await;
    }

    /// The variable that makes [`append_until_killed`] run: the spool's directory.
    const KILL_TEST_DIR: &str = "SPOOL_KILL_TEST_DIR";

    fn message_record(n: u64) -> Vec<u8> {
        use webhook_core::envelope::{DeliveryId, Envelope, EventType, SourceName};
        let envelope = Envelope::new(
            &SourceName::parse("github").unwrap(),
            &DeliveryId::parse(&format!("delivery-{n}")).unwrap(),
            &EventType::parse("push").unwrap(),
            chrono::Utc::now(),
            webhook_core::payload::BodyFormat::Json,
        );
        let body = format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(4096));
        record::encode(&envelope, chrono::Utc::now(), body.as_bytes())
    }

    /// The child of [`a_sigkill_mid_commit_loses_nothing_that_was_answered`]: appends in
    /// bursts until it is killed, writing `committed {sequence} {n}` once each append returned.
    #[tokio::test]
    #[ignore = "run by a_sigkill_mid_commit_loses_nothing_that_was_answered"]
    async fn append_until_killed() {
        use std::io::Write as _;
        let Some(dir) = std::env::var_os(KILL_TEST_DIR) else {
            return;
        };
        let (store, _thread, _) = open(Path::new(&dir), 1 << 34);
        for burst in 0u64.. {
            let appends = (0..16).map(|i| {
                let store = store.clone();
                let n = burst * 16 + i;
                tokio::spawn(async move { (n, store.append(message_record(n)).await) })
            });
            for append in futures_util::future::join_all(appends).await {
                let (n, sequence) = append.unwrap();
                let mut out = std::io::stdout().lock();
                writeln!(out, "committed {} {n}", sequence.unwrap()).unwrap();
                out.flush().unwrap();
            }
        }
    }

    /// A SIGKILL lands while the writer is busy (most likely inside a commit): after it, the
    /// spool opens, every append that had returned (been answered) is there and reads back
    /// whole, and a commit cut short is dropped, not read as a shorter record.
    #[tokio::test]
    async fn a_sigkill_mid_commit_loses_nothing_that_was_answered() {
        use std::io::BufRead as _;
        let dir = testkit::private::TempDir::new("spool-kill");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "spool::store::tests::append_until_killed",
                "--ignored",
                "--nocapture",
            ])
            .env(KILL_TEST_DIR, dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut committed = std::collections::HashMap::new();
        let read = |line: String, committed: &mut std::collections::HashMap<u64, u64>| {
            if let Some(rest) = line.strip_prefix("committed ") {
                let (sequence, n) = rest.split_once(' ').unwrap();
                committed.insert(sequence.parse::<u64>().unwrap(), n.parse::<u64>().unwrap());
            }
        };
        while committed.len() < 400 {
            let line = lines.next().expect("the child stopped before it was killed").unwrap();
            read(line, &mut committed);
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Whatever it wrote before the kill was committed too.
        for line in lines {
            read(line.unwrap(), &mut committed);
        }

        let (store, thread, _) = open(dir.path(), 1 << 34);
        let mut kept = std::collections::HashMap::new();
        let mut after = None;
        loop {
            let records = store.read(after, 1000).await.unwrap();
            let Some(&(last, _)) = records.last() else { break };
            after = Some(last);
            kept.extend(records);
        }
        assert!(
            kept.len() >= committed.len(),
            "{} kept, {} committed",
            kept.len(),
            committed.len()
        );
        assert_eq!(store.depth().messages(), kept.len() as u64);
        for (sequence, n) in &committed {
            let bytes = kept
                .get(sequence)
                .unwrap_or_else(|| panic!("committed record {sequence} is gone"));
            let message = record::decode(bytes.clone()).unwrap();
            assert_eq!(message.envelope.delivery_id, format!("delivery-{n}"));
        }
        for bytes in kept.values() {
            record::decode(bytes.clone()).unwrap();
        }
        close(store, thread).await;
    }

    #[tokio::test]
    async fn a_spool_in_use_cannot_be_opened_again_until_closed() {
        let dir = testkit::private::TempDir::new("spool-store");
        let (store, thread, _) = open(dir.path(), 1 << 20);
        let error = Store::open(dir.path(), 1 << 20, StoreCounters::default()).unwrap_err();
        assert!(matches!(error, OpenError::InUse(_)), "{error}");
        close(store, thread).await;
        let (store, thread, _) = open(dir.path(), 1 << 20);
        close(store, thread).await;
    }
}
