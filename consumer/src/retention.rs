//! Retention of bodies (`RETENTION_DAYS`): the body of an event received more than that many
//! days ago is cleared and the row marked `purged_at`; the row itself, its unique key, its
//! `body_sha256` and its sale stay, so a late retry is still a duplicate and the sales view
//! keeps its numbers.
//!
//! The purge runs inside the consumer ([`Purger`]: shortly after start, then every
//! [`Retention::every`]) and by hand (`consumer purge`). Each pass clears batches of
//! [`Retention::batch`] rows, oldest first, each batch a short statement of its own, one after
//! the other until nothing is left or the pass's deadline is reached (the next pass goes on).
//! The loop is written against [`PurgeStore`], so it is unit-tested with a fake.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::mysql::MySqlPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::{self, StoreError};

/// The variable that turns the purge on.
pub const VARIABLE: &str = "RETENTION_DAYS";
/// The longest `RETENTION_DAYS` (100 years).
pub const MAX_DAYS: u64 = 36_500;

/// How long bodies are kept, and how the purge goes about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// `RETENTION_DAYS`: bodies of events received longer ago than this are cleared.
    pub days: u32,
    /// How long after the consumer starts the first pass runs (a minute).
    pub first_after: Duration,
    /// How often a pass runs after that (an hour).
    pub every: Duration,
    /// Rows per statement (1,000).
    pub batch: u32,
    /// How long one scheduled pass may go on (5 minutes); whatever is left waits for the next.
    pub pass_deadline: Duration,
}

impl Retention {
    /// The retention of `days` days with the default schedule.
    pub fn days(days: u32) -> Self {
        Self {
            days,
            first_after: Duration::from_secs(60),
            every: Duration::from_secs(3600),
            batch: 1000,
            pass_deadline: Duration::from_secs(300),
        }
    }

    /// Bodies of events received before this are purged.
    pub fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - chrono::Duration::days(i64::from(self.days))
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Bodies cleared.
    pub purged: u64,
    /// Statements run.
    pub batches: u64,
    /// Whether it stopped at its deadline with rows left to purge.
    pub cut_short: bool,
}

/// Where the purge clears bodies.
pub trait PurgeStore: Sync {
    /// Clears at most `limit` bodies of events received before `cutoff`; returns how many.
    fn purge(&self, cutoff: DateTime<Utc>, limit: u32) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

impl PurgeStore for MySqlPool {
    async fn purge(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        store::purge_bodies(self, cutoff, limit).await
    }
}

/// The ledger's settled rows as a [`PurgeStore`]: "purging" deletes rows whose outcome is final
/// (`stored`, `duplicate`) and whose message was received and last seen before the cutoff.
#[derive(Debug)]
pub struct SettledLedger<'a>(pub &'a MySqlPool);

impl PurgeStore for SettledLedger<'_> {
    async fn purge(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        store::prune_ledger(self.0, cutoff, limit).await
    }
}

/// How long the ledger keeps a settled message's row after it was last seen: far longer than a
/// broker keeps a delivery unacknowledged, so every redelivery still finds its row (and moves
/// no count); the counts themselves stay in `ledger_counts`. Rows of dead letters and of
/// messages in a retry queue are kept: a replay or a return must find them.
pub const LEDGER: Retention = Retention {
    days: 1,
    first_after: Duration::from_secs(60),
    every: Duration::from_secs(300),
    batch: 1000,
    pass_deadline: Duration::from_secs(240),
};

/// One pass: batch after batch until a batch clears fewer than `retention.batch` rows, or
/// `deadline` (if any) has passed. `purged` is told each batch's count as it commits (the
/// metric), so an error later in the pass loses nothing of what was done.
pub async fn pass<S: PurgeStore>(
    store: &S,
    retention: &Retention,
    cutoff: DateTime<Utc>,
    deadline: Option<Instant>,
    mut purged: impl FnMut(u64),
) -> Result<Pass, StoreError> {
    let mut pass = Pass::default();
    loop {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            pass.cut_short = true;
            return Ok(pass);
        }
        let cleared = store.purge(cutoff, retention.batch).await?;
        pass.batches += 1;
        pass.purged += cleared;
        purged(cleared);
        if cleared < u64::from(retention.batch) {
            return Ok(pass);
        }
    }
}

/// What a [`Purger`] clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purged {
    /// Event bodies (`RETENTION_DAYS`).
    Bodies,
    /// The ledger's settled rows ([`LEDGER`]).
    SettledLedger,
}

impl Purged {
    fn what(self) -> &'static str {
        match self {
            Purged::Bodies => "bodies of events",
            Purged::SettledLedger => "settled ledger rows of messages",
        }
    }
}

/// A scheduled purge inside the running consumer.
pub(crate) struct Purger {
    pub(crate) pool: MySqlPool,
    pub(crate) retention: Retention,
    pub(crate) purged: Purged,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) shutdown: CancellationToken,
}

impl Purger {
    /// Runs a pass after `first_after`, then every `every`, until shutdown. A failed pass (the
    /// database away) is logged and the next one tries again.
    pub(crate) async fn run(self) {
        let mut wait = self.retention.first_after;
        let what = self.purged.what();
        log::info!(
            "retention: {what} older than {} days are purged, first pass in {}s, then every {}s",
            self.retention.days,
            wait.as_secs(),
            self.retention.every.as_secs()
        );
        let counter = match self.purged {
            Purged::Bodies => &self.metrics.bodies_purged,
            Purged::SettledLedger => &self.metrics.ledger_rows_pruned,
        };
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.shutdown.cancelled() => return,
            }
            wait = self.retention.every;
            let started = Instant::now();
            let cutoff = self.retention.cutoff(Utc::now());
            let deadline = Some(started + self.retention.pass_deadline);
            let count = |cleared| {
                counter.inc_by(cleared);
            };
            let passed = tokio::select! {
                passed = async {
                    match self.purged {
                        Purged::Bodies => pass(&self.pool, &self.retention, cutoff, deadline, count).await,
                        Purged::SettledLedger => {
                            pass(&SettledLedger(&self.pool), &self.retention, cutoff, deadline, count).await
                        }
                    }
                } => passed,
                () = self.shutdown.cancelled() => return,
            };
            match passed {
                Ok(done) if done.purged == 0 => {
                    log::debug!("retention: no {what} to purge before {}", cutoff.to_rfc3339());
                }
                Ok(done) => log::info!(
                    "retention: purged {} {what} received before {} in {} batches, {}ms{}",
                    done.purged,
                    cutoff.to_rfc3339(),
                    done.batches,
                    started.elapsed().as_millis(),
                    if done.cut_short {
                        "; stopped at the pass deadline, the next pass goes on"
                    } else {
                        ""
                    }
                ),
                Err(error) => log::warn!(
                    "retention: purge of {what} failed, the next pass tries again: error={:?}",
                    error.to_string()
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Rows to purge, counting the statements.
    struct Fake {
        left: Mutex<u64>,
        calls: Mutex<u64>,
        fail_on: Option<u64>,
    }

    impl Fake {
        fn new(left: u64) -> Self {
            Self {
                left: Mutex::new(left),
                calls: Mutex::new(0),
                fail_on: None,
            }
        }
    }

    impl PurgeStore for Fake {
        async fn purge(&self, _cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
            let call = {
                let mut calls = self.calls.lock().unwrap();
                *calls += 1;
                *calls
            };
            if self.fail_on == Some(call) {
                return Err(StoreError::Timeout(Duration::from_secs(1)));
            }
            let mut left = self.left.lock().unwrap();
            let cleared = (*left).min(u64::from(limit));
            *left -= cleared;
            Ok(cleared)
        }
    }

    fn retention(batch: u32) -> Retention {
        Retention {
            batch,
            ..Retention::days(30)
        }
    }

    #[test]
    fn the_cutoff_is_that_many_days_before_now() {
        let now: DateTime<Utc> = "2026-12-02T06:00:00Z".parse().unwrap();
        assert_eq!(
            retention(10).cutoff(now),
            "2026-11-02T06:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[tokio::test]
    async fn a_pass_clears_batch_after_batch_until_a_short_one() {
        let fake = Fake::new(2500);
        let mut told = Vec::new();
        let done = pass(&fake, &retention(1000), Utc::now(), None, |n| told.push(n))
            .await
            .unwrap();
        assert_eq!(
            done,
            Pass {
                purged: 2500,
                batches: 3,
                cut_short: false
            }
        );
        assert_eq!(told, [1000, 1000, 500]);
        // Exactly a multiple of the batch: one more, empty statement says it is done.
        let fake = Fake::new(2000);
        let done = pass(&fake, &retention(1000), Utc::now(), None, |_| {}).await.unwrap();
        assert_eq!((done.purged, done.batches), (2000, 3));
        // Nothing to do: one statement.
        let fake = Fake::new(0);
        let done = pass(&fake, &retention(1000), Utc::now(), None, |_| {}).await.unwrap();
        assert_eq!((done.purged, done.batches), (0, 1));
    }

    #[tokio::test]
    async fn a_pass_past_its_deadline_stops_and_says_so() {
        let fake = Fake::new(10_000);
        let done = pass(&fake, &retention(100), Utc::now(), Some(Instant::now()), |_| {})
            .await
            .unwrap();
        assert_eq!(
            done,
            Pass {
                purged: 0,
                batches: 0,
                cut_short: true
            }
        );
        assert_eq!(*fake.left.lock().unwrap(), 10_000);
    }

    #[tokio::test]
    async fn a_failed_batch_ends_the_pass_with_what_was_done_already_told() {
        let fake = Fake {
            fail_on: Some(2),
            ..Fake::new(5000)
        };
        let mut told = 0;
        let error = pass(&fake, &retention(1000), Utc::now(), None, |n| told += n).await;
        assert!(matches!(error, Err(StoreError::Timeout(_))), "{error:?}");
        assert_eq!(told, 1000);
    }
}
