//! Carrying out a [`Plan`]: insert its rows (splitting out the rows the database refuses,
//! holding the batch while the database is unavailable), republish its retries and dead letters
//! (each confirmed), record the dead letters, then ack the whole batch.
//!
//! An outage and a failure of one message are told apart by what the database says (a data
//! error is about the rows, "read-only" or "access denied" about the database) and, when the
//! connection merely broke under the rows, by whether a trivial query on a new connection still
//! works: if it does, the batch is split until the row the server dropped the connection over
//! stands alone, and that row goes down its own path while the rest commit. Nothing is acked unless
//! all of that succeeded, except the record of the dead letters (best effort: the messages are
//! safe in `{P}.dead`).
//!
//! The database and the broker are behind two small traits, [`Store`] and [`Broker`]; the
//! service uses [`crate::store::Database`] and the worker's batch, the tests in-memory fakes.

use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use webhook_core::broker::{Backoff, PublishError};
use webhook_core::consume::AckError;

use crate::health::Health;
use crate::message::Message;
use crate::metrics::{AttemptLabels, Metrics, OutcomeLabels, ReasonLabels, SourceLabels};
use crate::plan::{Plan, Refusal};
use crate::retry::Decision;
use crate::store::{DeadLetterRow, EventRow, Inserted, LedgerFate, LedgerRow, StoreError};

/// How long one insert transaction may take before the database counts as unavailable. If the
/// commit did land after all, the retry finds the rows stored and counts them as duplicates.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// While holding a batch, how often the channel is checked to be still open.
const HOLD_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// How long recording a batch's dead letters in `dead_letters` may take. It is tried once: the
/// messages are safe in `{P}.dead` already, and the ack must not wait on a database outage.
const DEAD_LETTER_RECORD_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a batch's events are stored.
pub(crate) trait Store: Sync {
    /// Inserts `rows` (sorted by source) with the sales they carry in one transaction, and
    /// commits; a row already stored only has its `duplicates` raised.
    fn insert<'a>(&self, rows: &[EventRow<'a>]) -> impl Future<Output = Result<Inserted<'a>, StoreError>> + Send;

    /// Whether the database answers at all: a trivial query on a new connection (not one that
    /// may be stuck with the failure being explained).
    fn probe(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records dead letters in `dead_letters`.
    fn record_dead_letters(&self, rows: &[DeadLetterRow<'_>]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records accepted messages and their outcomes for the ledger (`ledger_messages`).
    fn record_ledger(&self, rows: &[LedgerRow<'_>]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where a batch came from and where its retries and dead letters go.
pub(crate) trait Broker: Sync {
    /// Publishes `message` to its retry queue or the dead-letter exchange, as `decision` says,
    /// and waits for the broker's confirm.
    fn republish(
        &self,
        message: &Message,
        decision: &Decision,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;

    /// Acks every delivery of the batch at once.
    fn ack(&self) -> impl Future<Output = Result<(), AckError>> + Send;

    /// Whether the channel the batch came on is still open (if not, the broker redelivers it).
    fn channel_open(&self) -> bool;
}

/// The batch in hand was not settled (nothing acked); the broker will redeliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Abandoned(pub(crate) String);

/// What a batch came to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) stored: u64,
    pub(crate) duplicates: u64,
    /// Deliveries with the source and delivery id of a stored event but another body.
    pub(crate) conflicts: u64,
    pub(crate) processed: u64,
    pub(crate) ignored: u64,
    pub(crate) failed: u64,
    pub(crate) retried: u64,
    pub(crate) dead_lettered: u64,
}

/// Carries out plans with one store and one batch's broker.
pub(crate) struct Settle<'a, S, B> {
    pub(crate) store: &'a S,
    pub(crate) broker: &'a B,
    pub(crate) metrics: &'a Metrics,
    pub(crate) health: &'a Health,
    /// `{P}.dead`, for the log.
    pub(crate) dead_queue: &'a str,
    /// Cancelled when the shutdown grace is over: give the batch up unsettled.
    pub(crate) grace_over: &'a CancellationToken,
    /// How long after it is sent to retry queue `n` (index `n - 1`; past the last, the last) a
    /// message is due back, grace included: the ledger counts it in flight until then.
    pub(crate) due_back: &'a [Duration],
}

impl<S: Store, B: Broker> Settle<'_, S, B> {
    /// Stores `plan`'s rows, republishes what it (and the database) decided against, records the
    /// dead letters, then acks the batch.
    pub(crate) async fn run(&self, messages: &[Message], mut plan: Plan) -> Result<Tally, Abandoned> {
        let mut tally = Tally {
            failed: plan.refused_by_processor,
            ..Tally::default()
        };
        self.metrics
            .processed
            .get_or_create(&OutcomeLabels { outcome: "failed" })
            .inc_by(plan.refused_by_processor);
        for (row, refusal) in self.store(messages, &plan, &mut tally).await? {
            plan.refuse(row, &refusal);
        }
        // Every copy is acked with the delivery it copies, stored or not.
        let copies = plan.copies();
        self.metrics.duplicates.inc_by(copies);
        tally.duplicates += copies;

        let decisions: Vec<(usize, &Decision)> = plan.decisions().collect();
        for &(index, decision) in &decisions {
            self.republish(&messages[index], decision).await?;
            match decision {
                Decision::Retry { .. } => tally.retried += 1,
                Decision::DeadLetter { .. } => tally.dead_lettered += 1,
            }
        }
        self.record_dead_letters(messages, &decisions).await;
        self.record_ledger(messages, &decisions).await?;
        self.broker.ack().await.map_err(|error| Abandoned(error.to_string()))?;
        Ok(tally)
    }

    /// Inserts the plan's rows, holding on while the database is unavailable. Returns the rows
    /// (positions in `plan.rows`) the database refused, with its error; every other row is
    /// committed.
    ///
    /// A refusal splits the rows in halves until the refused rows stand alone, so every good
    /// row commits. Rows are committed at most once per call: a retry after an outage or a
    /// conflict covers only the rows not yet committed.
    async fn store(
        &self,
        messages: &[Message],
        plan: &Plan,
        tally: &mut Tally,
    ) -> Result<Vec<(usize, Refusal)>, Abandoned> {
        // The bodies of each row's conflicts, which its insert counts.
        let conflicts: Vec<Vec<&str>> = plan
            .rows
            .iter()
            .map(|row| {
                row.conflicts
                    .iter()
                    .filter_map(|&conflict| messages[conflict].event().map(|event| event.sha256.as_str()))
                    .collect()
            })
            .collect();
        // The rows to insert, and where each is in `plan.rows`.
        let (positions, all): (Vec<usize>, Vec<EventRow<'_>>) = plan
            .rows
            .iter()
            .zip(&conflicts)
            .enumerate()
            .filter_map(|(position, (row, conflicts))| {
                let event = messages[row.index].event()?;
                let row = EventRow {
                    copies: u32::try_from(row.copies.len() + row.conflicts.len()).unwrap_or(u32::MAX),
                    conflicts,
                    sale: row.sale.as_ref(),
                    ..EventRow::of(event)
                };
                Some((position, row))
            })
            .unzip();
        let mut refused = Vec::new();
        let mut pending: Vec<Range<usize>> = Vec::new();
        if !all.is_empty() {
            pending.push(0..all.len());
        }
        let mut outage = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut conflict = Backoff::new(Duration::from_millis(20), Duration::from_secs(1));
        while let Some(range) = pending.pop() {
            let rows = &all[range.clone()];
            let started = Instant::now();
            let result = tokio::select! {
                result = tokio::time::timeout(TRANSACTION_TIMEOUT, self.store.insert(rows)) => {
                    result.unwrap_or(Err(StoreError::Timeout(TRANSACTION_TIMEOUT)))
                }
                () = self.grace_over.cancelled() => {
                    return Err(Abandoned("the shutdown grace ran out before the batch was committed".to_owned()));
                }
            };
            match result {
                Ok(inserted) => {
                    self.database_answered(outage.attempts());
                    outage.reset();
                    conflict.reset();
                    self.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
                    for (source, new) in &inserted.new_by_source {
                        self.metrics
                            .events_stored
                            .get_or_create(&SourceLabels {
                                source: (*source).to_owned(),
                            })
                            .inc_by(*new);
                        tally.stored += new;
                    }
                    self.metrics.duplicates.inc_by(inserted.already_stored);
                    tally.duplicates += inserted.already_stored;
                    let now = Utc::now();
                    for (offset, row) in rows.iter().enumerate() {
                        let latency = (now - row.received_at).to_std().unwrap_or_default();
                        self.metrics.ingest_to_store_seconds.observe(latency.as_secs_f64());
                        let another = inserted.another_body.iter().find(|another| another.row == offset);
                        let (conflicts, kept) = match another {
                            Some(another) => (another.conflicts, another.stored_sha256.as_str()),
                            None => (u32::try_from(row.conflicts.len()).unwrap_or(u32::MAX), row.body_sha256),
                        };
                        if conflicts > 0 {
                            self.metrics.conflicting_duplicates.inc_by(u64::from(conflicts));
                            tally.conflicts += u64::from(conflicts);
                            log::warn!(
                                "conflicting duplicates: source={:?} delivery_id={:?} conflicts={conflicts} kept_sha256={kept}: the same delivery id with another body; the first stored is kept",
                                row.source,
                                row.delivery_id
                            );
                        }
                        // A row stored with another body keeps it, and its status: nothing ran.
                        // So does an erased event's row: a retry brings none of it back.
                        if another.is_some() || inserted.erased.contains(&offset) {
                            continue;
                        }
                        let outcome = row.status();
                        self.metrics.processed.get_or_create(&OutcomeLabels { outcome }).inc();
                        if row.sale.is_some() {
                            tally.processed += 1;
                        } else {
                            tally.ignored += 1;
                        }
                    }
                }
                Err(StoreError::Conflict(error)) => {
                    let delay = conflict.next_delay();
                    log::debug!(
                        "lock conflict, retrying: rows={} attempt={} error={:?} retry_in_ms={}",
                        range.len(),
                        conflict.attempts(),
                        error.to_string(),
                        delay.as_millis()
                    );
                    pending.push(range);
                    self.hold(delay).await?;
                }
                Err(error) => {
                    // About the rows, or about the database? A refusal is about the rows; so is
                    // a connection dropped under them while the database answers a new one.
                    let about_rows = match &error {
                        StoreError::Refused(_) => true,
                        StoreError::Lost(_) | StoreError::Timeout(_) => self.database_answers().await?,
                        StoreError::Unavailable(_) | StoreError::Conflict(_) => false,
                    };
                    if !about_rows {
                        // What the database says about itself is an outage. No connection in
                        // time (a busy pool, a slow server) is one only if a new connection
                        // gets no answer either: else the database is up, only slow.
                        let down = error.said_by_the_database() || !self.database_answers().await?;
                        let delay = outage.next_delay();
                        if down {
                            self.health.set_database_ok(false);
                        } else {
                            self.database_answered(outage.attempts());
                        }
                        log::warn!(
                            "database {}, holding the batch: rows={} attempt={} error={:?} retry_in_ms={}",
                            if down {
                                "unavailable"
                            } else {
                                "slow (it answers a new connection)"
                            },
                            range.len(),
                            outage.attempts(),
                            error.to_string(),
                            delay.as_millis()
                        );
                        pending.push(range);
                        self.hold(delay).await?;
                        continue;
                    }
                    self.database_answered(outage.attempts());
                    if range.len() > 1 {
                        log::debug!(
                            "batch refused, splitting: rows={} error={:?}",
                            range.len(),
                            error.to_string()
                        );
                        let middle = range.start + range.len() / 2;
                        // Popped first half first.
                        pending.push(middle..range.end);
                        pending.push(range.start..middle);
                        continue;
                    }
                    let refusal = match &error {
                        error if error.is_packet_too_large() => Refusal::TooLarge(error.to_string()),
                        StoreError::Refused(error) => Refusal::Data(error.to_string()),
                        error => Refusal::Data(format!(
                            "the database dropped the connection while storing this message alone, yet answers a new connection: {error}"
                        )),
                    };
                    refused.push((positions[range.start], refusal));
                }
            }
        }
        Ok(refused)
    }

    /// Whether the database answers a trivial query on a new connection: after a lost
    /// connection, this tells an outage from a row the server dropped the connection over.
    async fn database_answers(&self) -> Result<bool, Abandoned> {
        tokio::select! {
            probed = self.store.probe() => match probed {
                Ok(()) => Ok(true),
                Err(error) => {
                    log::debug!("probe: the database does not answer: error={:?}", error.to_string());
                    Ok(false)
                }
            },
            () = self.grace_over.cancelled() => {
                Err(Abandoned("the shutdown grace ran out before the batch was committed".to_owned()))
            }
        }
    }

    /// The database answered (even if it refused the data): it is up.
    fn database_answered(&self, failed_attempts: u32) {
        let was_ok = self.health.set_database_ok(true);
        if !was_ok {
            log::info!("database available again: after_attempts={failed_attempts}");
        }
    }

    /// Publishes a message to its retry queue or to the dead-letter exchange and waits for the
    /// confirm, trying again (with backoff) until it is confirmed.
    async fn republish(&self, message: &Message, decision: &Decision) -> Result<(), Abandoned> {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let published = tokio::select! {
                published = self.broker.republish(message, decision) => published,
                () = self.grace_over.cancelled() => {
                    return Err(Abandoned("the shutdown grace ran out while republishing".to_owned()));
                }
            };
            match published {
                Ok(()) => break,
                Err(error) => {
                    let delay = backoff.next_delay();
                    log::warn!(
                        "republish not confirmed, holding the batch: routing_key={:?} attempt={} error=\"{error}\" retry_in_ms={}",
                        message.routing_key,
                        backoff.attempts(),
                        delay.as_millis()
                    );
                    self.hold(delay).await?;
                }
            }
        }
        let (source, delivery_id, _) = message.identity();
        match decision {
            Decision::Retry { attempt, error } => {
                self.metrics
                    .retried
                    .get_or_create(&AttemptLabels { attempt: *attempt })
                    .inc();
                log::info!(
                    "event sent for retry: source={source:?} delivery_id={delivery_id:?} attempt={attempt} error={error:?}"
                );
            }
            Decision::DeadLetter { reason, error } => {
                self.metrics
                    .dead_lettered
                    .get_or_create(&ReasonLabels { reason: reason.label() })
                    .inc();
                log::warn!(
                    "message dead-lettered: reason={} source={source:?} delivery_id={delivery_id:?} routing_key={:?} error={error:?}",
                    reason.label(),
                    message.routing_key
                );
            }
        }
        Ok(())
    }

    /// Records the batch's dead letters in `dead_letters`, once they are confirmed in
    /// `{P}.dead`. One attempt, bounded: if it fails the batch is acked all the same (the
    /// messages are safe in `{P}.dead`), and the failure is logged and counted.
    async fn record_dead_letters(&self, messages: &[Message], decisions: &[(usize, &Decision)]) {
        let rows: Vec<DeadLetterRow<'_>> = decisions
            .iter()
            .filter_map(|&(index, decision)| match decision {
                Decision::DeadLetter { reason, error } => {
                    let message = &messages[index];
                    let (source, delivery_id, event_type) = message.identity();
                    Some(DeadLetterRow {
                        source,
                        delivery_id,
                        event_type,
                        reason: reason.label(),
                        error,
                        retry_count: message.retry_count(),
                    })
                }
                Decision::Retry { .. } => None,
            })
            .collect();
        if rows.is_empty() {
            return;
        }
        let result = tokio::select! {
            result = tokio::time::timeout(DEAD_LETTER_RECORD_TIMEOUT, self.store.record_dead_letters(&rows)) => {
                result.unwrap_or(Err(StoreError::Timeout(DEAD_LETTER_RECORD_TIMEOUT))).map_err(|error| error.to_string())
            }
            () = self.grace_over.cancelled() => Err("the shutdown grace ran out".to_owned()),
        };
        // Readiness is left to the event path, which keeps trying until the database answers.
        if let Err(error) = result {
            self.metrics.dead_letter_records_failed.inc_by(rows.len() as u64);
            log::error!(
                "dead letters not recorded in dead_letters (they are in {}): count={} error={error:?}",
                self.dead_queue,
                rows.len()
            );
        }
    }

    /// Records every event of the batch in the ledger, with its outcome (or as pending, when it
    /// went to a retry queue), before the batch is acked: so every message read is counted as
    /// accepted at least once, and a redelivery finds its row. Holds the batch while the
    /// database does not take it (the retries and dead letters are already confirmed, and
    /// carry the same identity).
    async fn record_ledger(&self, messages: &[Message], decisions: &[(usize, &Decision)]) -> Result<(), Abandoned> {
        let now = Utc::now();
        let rows: Vec<LedgerRow<'_>> = messages
            .iter()
            .enumerate()
            .filter_map(|(index, message)| {
                let envelope = &message.event()?.envelope;
                let fate = match decisions.iter().find(|&&(decided, _)| decided == index) {
                    None => LedgerFate::Settled,
                    Some((_, Decision::DeadLetter { .. })) => LedgerFate::DeadLettered,
                    Some((_, Decision::Retry { attempt, .. })) => {
                        let queue = usize::try_from(*attempt).unwrap_or(usize::MAX).max(1);
                        let delay = self
                            .due_back
                            .get(queue - 1)
                            .or(self.due_back.last())
                            .copied()
                            .unwrap_or_default();
                        LedgerFate::Pending {
                            due_at: now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
                        }
                    }
                };
                Some(LedgerRow {
                    source: &envelope.source,
                    delivery_id: &envelope.delivery_id,
                    received_at: envelope.received_at,
                    fate,
                })
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let result = tokio::select! {
                result = tokio::time::timeout(TRANSACTION_TIMEOUT, self.store.record_ledger(&rows)) => {
                    result.unwrap_or(Err(StoreError::Timeout(TRANSACTION_TIMEOUT)))
                }
                () = self.grace_over.cancelled() => {
                    return Err(Abandoned("the shutdown grace ran out before the ledger was recorded".to_owned()));
                }
            };
            match result {
                Ok(()) => {
                    self.database_answered(backoff.attempts());
                    return Ok(());
                }
                Err(error) => {
                    // As for the events' insert: an outage is told to readiness, so a database
                    // lost between a batch's commit and its ledger is reported like any other.
                    let down = !matches!(error, StoreError::Refused(_) | StoreError::Conflict(_))
                        && (error.said_by_the_database() || !self.database_answers().await?);
                    if down {
                        self.health.set_database_ok(false);
                    }
                    let delay = backoff.next_delay();
                    log::warn!(
                        "ledger not recorded, holding the batch: rows={} attempt={} error={:?} retry_in_ms={}",
                        rows.len(),
                        backoff.attempts(),
                        error.to_string(),
                        delay.as_millis()
                    );
                    self.hold(delay).await?;
                }
            }
        }
    }

    /// Waits `delay` before trying the batch in hand again; gives the batch up if its channel
    /// closes (the broker redelivers it) or the shutdown grace runs out.
    async fn hold(&self, delay: Duration) -> Result<(), Abandoned> {
        let until = Instant::now() + delay;
        loop {
            if !self.broker.channel_open() {
                return Err(Abandoned("the channel closed while the batch was held".to_owned()));
            }
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep((until - now).min(HOLD_CHECK_INTERVAL)) => {}
                () = self.grace_over.cancelled() => {
                    return Err(Abandoned("the shutdown grace ran out while the batch was held".to_owned()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;

    use super::*;
    use crate::plan;
    use crate::plan::tests::{BAD_SALE, RULES, big_body, check_plan, event, plain, poison, sale_body};
    use crate::processors::Mappings;
    use crate::retry::DeadReason;
    use crate::store::AnotherBody;

    /// A stored row of the fake database.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct FakeRow {
        body_sha256: String,
        duplicates: u32,
        conflicts: u32,
        sale: bool,
    }

    /// A database in memory: rows by (source, delivery id), with refusals and outages on demand.
    #[derive(Debug, Default)]
    struct FakeStore {
        rows: Mutex<BTreeMap<(String, String), FakeRow>>,
        /// Delivery ids whose row the database refuses.
        refuse: HashSet<String>,
        /// Delivery ids whose row makes the server drop the connection.
        drop_connection: HashSet<String>,
        /// Whether a new connection gets an answer (false: the server is down).
        probe_fails: AtomicBool,
        /// While set, the ledger's write fails as an unreachable database does.
        ledger_fails: AtomicBool,
        probes: AtomicU32,
        /// This many insert transactions fail as an outage before the database answers.
        unavailable_for: AtomicU32,
        /// Rows per insert transaction, in order.
        transactions: Mutex<Vec<usize>>,
        dead_letters: Mutex<Vec<(String, &'static str, String)>>,
        dead_letters_fail: bool,
        /// The delivery ids whose sale was applied, in order.
        sales: Mutex<Vec<String>>,
    }

    impl FakeStore {
        fn refusing(ids: &[&str]) -> Self {
            Self {
                refuse: ids.iter().map(|id| (*id).to_owned()).collect(),
                ..Self::default()
            }
        }

        fn stored(&self) -> Vec<(String, u32)> {
            let rows = self.rows.lock().unwrap();
            rows.iter().map(|((_, id), row)| (id.clone(), row.duplicates)).collect()
        }
    }

    impl Store for FakeStore {
        async fn insert<'a>(&self, rows: &[EventRow<'a>]) -> Result<Inserted<'a>, StoreError> {
            self.transactions.lock().unwrap().push(rows.len());
            if self
                .unavailable_for
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
                .is_ok()
            {
                return Err(refused_connection());
            }
            if rows.iter().any(|row| self.drop_connection.contains(row.delivery_id)) {
                return Err(StoreError::Lost(sqlx::Error::Io(
                    std::io::ErrorKind::ConnectionReset.into(),
                )));
            }
            if let Some(row) = rows.iter().find(|row| self.refuse.contains(row.delivery_id)) {
                return Err(StoreError::Refused(sqlx::Error::InvalidArgument(format!(
                    "CONSTRAINT failed for {}",
                    row.delivery_id
                ))));
            }
            let mut stored = self.rows.lock().unwrap();
            let mut inserted = Inserted::default();
            for (position, row) in rows.iter().enumerate() {
                let key = (row.source.to_owned(), row.delivery_id.to_owned());
                let new = match stored.get_mut(&key) {
                    Some(existing) => {
                        existing.duplicates += row.copies + 1;
                        inserted.already_stored += 1;
                        if existing.body_sha256 == row.body_sha256 {
                            existing.conflicts += u32::try_from(row.conflicts.len()).unwrap();
                            self.sales
                                .lock()
                                .unwrap()
                                .extend(row.sale.map(|_| row.delivery_id.to_owned()));
                        } else {
                            let same_as_row = 1 + row.copies - u32::try_from(row.conflicts.len()).unwrap();
                            let others = row.conflicts.iter().filter(|sha| **sha != existing.body_sha256).count();
                            let conflicts = same_as_row + u32::try_from(others).unwrap();
                            existing.conflicts += conflicts;
                            inserted.another_body.push(AnotherBody {
                                row: position,
                                stored_sha256: existing.body_sha256.clone(),
                                conflicts,
                            });
                        }
                        0
                    }
                    None => {
                        stored.insert(
                            key,
                            FakeRow {
                                body_sha256: row.body_sha256.to_owned(),
                                duplicates: row.copies,
                                conflicts: u32::try_from(row.conflicts.len()).unwrap(),
                                sale: row.sale.is_some(),
                            },
                        );
                        self.sales
                            .lock()
                            .unwrap()
                            .extend(row.sale.map(|_| row.delivery_id.to_owned()));
                        1
                    }
                };
                match inserted.new_by_source.last_mut() {
                    Some((source, count)) if *source == row.source => *count += new,
                    _ => inserted.new_by_source.push((row.source, new)),
                }
            }
            Ok(inserted)
        }

        async fn probe(&self) -> Result<(), StoreError> {
            self.probes.fetch_add(1, Ordering::SeqCst);
            if self.probe_fails.load(Ordering::SeqCst) {
                return Err(refused_connection());
            }
            Ok(())
        }

        async fn record_dead_letters(&self, rows: &[DeadLetterRow<'_>]) -> Result<(), StoreError> {
            if self.dead_letters_fail {
                return Err(refused_connection());
            }
            let mut recorded = self.dead_letters.lock().unwrap();
            recorded.extend(
                rows.iter()
                    .map(|row| (row.delivery_id.clone(), row.reason, row.error.to_owned())),
            );
            Ok(())
        }

        async fn record_ledger(&self, _rows: &[LedgerRow<'_>]) -> Result<(), StoreError> {
            if self.ledger_fails.load(Ordering::SeqCst) {
                return Err(refused_connection());
            }
            Ok(())
        }
    }

    /// What a database that cannot be reached says.
    fn refused_connection() -> StoreError {
        StoreError::Unavailable(sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()))
    }

    /// What the fake broker was asked to do, in order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Call {
        Retry { delivery_id: String, attempt: u32 },
        DeadLetter { delivery_id: String, reason: DeadReason },
        Ack,
    }

    #[derive(Debug)]
    struct FakeBroker {
        calls: Mutex<Vec<Call>>,
        /// This many publishes are not confirmed before the broker confirms again.
        unconfirmed_for: AtomicU32,
        open: AtomicBool,
    }

    impl Default for FakeBroker {
        fn default() -> Self {
            Self {
                calls: Mutex::new(Vec::new()),
                unconfirmed_for: AtomicU32::new(0),
                open: AtomicBool::new(true),
            }
        }
    }

    impl FakeBroker {
        fn calls(&self) -> Vec<Call> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl Broker for FakeBroker {
        async fn republish(&self, message: &Message, decision: &Decision) -> Result<(), PublishError> {
            if self
                .unconfirmed_for
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
                .is_ok()
            {
                return Err(PublishError::Nacked);
            }
            let delivery_id = message.identity().1;
            self.calls.lock().unwrap().push(match decision {
                Decision::Retry { attempt, .. } => Call::Retry {
                    delivery_id,
                    attempt: *attempt,
                },
                Decision::DeadLetter { reason, .. } => Call::DeadLetter {
                    delivery_id,
                    reason: *reason,
                },
            });
            Ok(())
        }

        async fn ack(&self) -> Result<(), AckError> {
            if !self.open.load(Ordering::SeqCst) {
                return Err(AckError::ChannelClosed);
            }
            self.calls.lock().unwrap().push(Call::Ack);
            Ok(())
        }

        fn channel_open(&self) -> bool {
            self.open.load(Ordering::SeqCst)
        }
    }

    /// What an executor reports to: metrics, health (the database up at first), the grace.
    struct Reports {
        metrics: Arc<Metrics>,
        health: Health,
        grace_over: CancellationToken,
    }

    impl Reports {
        fn new() -> Self {
            let metrics = Arc::new(Metrics::new());
            let health = Health::new(Arc::clone(&metrics), true, 1);
            Self {
                metrics,
                health,
                grace_over: CancellationToken::new(),
            }
        }

        fn settle<'a>(&'a self, store: &'a FakeStore, broker: &'a FakeBroker) -> Settle<'a, FakeStore, FakeBroker> {
            Settle {
                store,
                broker,
                metrics: &self.metrics,
                health: &self.health,
                dead_queue: "test.dead",
                grace_over: &self.grace_over,
                due_back: &[],
            }
        }
    }

    /// Plans `messages` and settles them with `store` and `broker`.
    async fn settle(
        store: &FakeStore,
        broker: &FakeBroker,
        messages: &[Message],
    ) -> (Result<Tally, Abandoned>, Metrics, bool) {
        let reports = Reports::new();
        let plan = plan::plan(messages, &Mappings::default(), RULES);
        let result = reports.settle(store, broker).run(messages, plan).await;
        let Reports { metrics, health, .. } = reports;
        let database_ok = health.database_ok();
        drop(health);
        (result, Arc::into_inner(metrics).unwrap(), database_ok)
    }

    fn retry(id: &str, attempt: u32) -> Call {
        Call::Retry {
            delivery_id: id.to_owned(),
            attempt,
        }
    }

    fn dead(id: &str, reason: DeadReason) -> Call {
        Call::DeadLetter {
            delivery_id: id.to_owned(),
            reason,
        }
    }

    fn ids(rows: &[(String, u32)]) -> Vec<&str> {
        rows.iter().map(|(id, _)| id.as_str()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_clean_batch_is_committed_in_one_transaction_then_acked_once() {
        let (store, broker) = (FakeStore::default(), FakeBroker::default());
        let messages = vec![plain("a", "1"), plain("a", "2"), plain("b", "1")];
        let (tally, metrics, _) = settle(&store, &broker, &messages).await;
        let tally = tally.unwrap();
        assert_eq!((tally.stored, tally.duplicates, tally.ignored), (3, 0, 3));
        assert_eq!(*store.transactions.lock().unwrap(), vec![3]);
        assert_eq!(broker.calls(), vec![Call::Ack]);
        assert_eq!(metrics.duplicates.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn duplicates_in_one_batch_and_of_a_stored_row_are_acked_and_counted_not_stored_again() {
        let (store, broker) = (FakeStore::default(), FakeBroker::default());
        settle(&store, &broker, &[plain("a", "stored")]).await.0.unwrap();
        let messages = vec![
            plain("a", "stored"),
            plain("a", "new"),
            plain("a", "new"),
            plain("a", "stored"),
        ];
        let (tally, metrics, _) = settle(&store, &broker, &messages).await;
        let tally = tally.unwrap();
        // "stored" arrives twice more (one row already stored, one copy); "new" once more.
        assert_eq!((tally.stored, tally.duplicates), (1, 3));
        assert_eq!(metrics.duplicates.get(), 3);
        assert_eq!(store.stored(), vec![("new".to_owned(), 1), ("stored".to_owned(), 2)]);
        assert_eq!(broker.calls(), vec![Call::Ack, Call::Ack]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_conflicting_duplicate_keeps_the_first_body_is_counted_and_its_sale_is_not_applied() {
        let (store, broker) = (FakeStore::default(), FakeBroker::default());
        let first = event("shop", "s", "sale.completed", 0, &sale_body("o", 100));
        settle(&store, &broker, &[first]).await.0.unwrap();
        let messages = vec![
            event("shop", "s", "sale.completed", 0, &sale_body("o", 999)),
            event("shop", "s", "sale.completed", 0, &sale_body("o", 999)),
            event("shop", "s", "sale.completed", 0, &sale_body("o", 100)),
            event("shop", "t", "push", 0, r#"{"v":1}"#),
            event("shop", "t", "push", 0, r#"{"v":2}"#),
        ];
        let (tally, metrics, _) = settle(&store, &broker, &messages).await;
        let tally = tally.unwrap();
        // "s": two deliveries with 999 against the stored 100, and one copy of the stored body;
        // "t": a new row with one conflict in its own batch.
        assert_eq!((tally.stored, tally.duplicates, tally.conflicts), (1, 4, 3));
        assert_eq!(metrics.conflicting_duplicates.get(), 3);
        assert_eq!(metrics.duplicates.get(), 4);
        let rows = store.rows.lock().unwrap().clone();
        let s = &rows[&("shop".to_owned(), "s".to_owned())];
        assert_eq!(
            (s.body_sha256.as_str(), s.duplicates, s.conflicts),
            (sha256(&sale_body("o", 100)).as_str(), 3, 2)
        );
        let t = &rows[&("shop".to_owned(), "t".to_owned())];
        assert_eq!(
            (t.body_sha256.as_str(), t.duplicates, t.conflicts),
            (sha256(r#"{"v":1}"#).as_str(), 1, 1)
        );
        // The sale of the stored body only, once.
        assert_eq!(*store.sales.lock().unwrap(), vec!["s".to_owned()]);
        assert_eq!(broker.calls(), vec![Call::Ack, Call::Ack]);
    }

    fn sha256(body: &str) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(body.as_bytes()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_row_the_database_refuses_is_split_out_and_retried_while_the_rest_commit() {
        let store = FakeStore::refusing(&["e3", "e7"]);
        let broker = FakeBroker::default();
        let messages: Vec<Message> = (0..10).map(|n| plain("shop", &format!("e{n}"))).collect();
        let (tally, metrics, database_ok) = settle(&store, &broker, &messages).await;
        let tally = tally.unwrap();
        assert_eq!((tally.stored, tally.retried), (8, 2));
        assert_eq!(ids(&store.stored()), ["e0", "e1", "e2", "e4", "e5", "e6", "e8", "e9"]);
        assert_eq!(broker.calls(), vec![retry("e3", 1), retry("e7", 1), Call::Ack]);
        assert_eq!(metrics.retried.get_or_create(&AttemptLabels { attempt: 1 }).get(), 2);
        // A refusal is an answer: the database is up.
        assert!(database_ok);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_row_with_its_retries_spent_is_dead_lettered_and_recorded() {
        let store = FakeStore::refusing(&["bad"]);
        let broker = FakeBroker::default();
        let messages = vec![
            event("shop", "bad", "push", RULES.max_retries, "{}"),
            plain("shop", "good"),
        ];
        let (tally, _, _) = settle(&store, &broker, &messages).await;
        assert_eq!(tally.unwrap().dead_lettered, 1);
        assert_eq!(
            broker.calls(),
            vec![dead("bad", DeadReason::RetriesExhausted), Call::Ack]
        );
        let recorded = store.dead_letters.lock().unwrap().clone();
        assert_eq!(
            recorded,
            vec![(
                "bad".to_owned(),
                "retries_exhausted",
                "retries exhausted after 3: CONSTRAINT failed for bad".to_owned()
            )]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn poison_and_processor_refusals_are_republished_in_delivery_order_before_the_ack() {
        let (store, broker) = (FakeStore::default(), FakeBroker::default());
        let messages = vec![
            event("shop", "bad-sale", "sale.completed", 0, BAD_SALE),
            poison(),
            event("shop", "sale", "sale.completed", 0, &sale_body("o", 5)),
        ];
        let (tally, metrics, _) = settle(&store, &broker, &messages).await;
        let tally = tally.unwrap();
        assert_eq!((tally.stored, tally.processed, tally.failed), (1, 1, 1));
        assert_eq!(
            broker.calls(),
            vec![retry("bad-sale", 1), dead("", DeadReason::Poison), Call::Ack]
        );
        assert_eq!(
            metrics
                .processed
                .get_or_create(&OutcomeLabels { outcome: "failed" })
                .get(),
            1
        );
        assert!(store.rows.lock().unwrap().values().all(|row| row.sale));
    }

    #[tokio::test(start_paused = true)]
    async fn while_the_database_is_unavailable_nothing_is_acked_no_retry_is_spent_and_it_is_stored_after() {
        let store = FakeStore {
            unavailable_for: AtomicU32::new(4),
            probe_fails: AtomicBool::new(true),
            ..FakeStore::default()
        };
        let broker = FakeBroker::default();
        let messages = vec![plain("a", "1"), plain("a", "2")];
        let (tally, metrics, database_ok) = settle(&store, &broker, &messages).await;
        assert_eq!(tally.unwrap().stored, 2);
        // The same two rows, tried again until the database answered: never split.
        assert_eq!(*store.transactions.lock().unwrap(), vec![2; 5]);
        assert_eq!(broker.calls(), vec![Call::Ack]);
        assert!(database_ok);
        assert_eq!(metrics.database_up.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_database_that_answers_a_new_connection_is_waited_for_without_saying_it_is_down() {
        // No connection from the pool in time, twice, while a new connection gets an answer.
        let store = FakeStore {
            unavailable_for: AtomicU32::new(2),
            ..FakeStore::default()
        };
        let broker = FakeBroker::default();
        let reports = Reports::new();
        let health = &reports.health;
        let messages = vec![plain("shop", "a"), plain("shop", "b")];
        let plan = plan::plan(&messages, &Mappings::default(), RULES);
        let settle = reports.settle(&store, &broker);
        let run = settle.run(&messages, plan);
        tokio::pin!(run);
        // Watched while it waits: the database never counts as down.
        let mut watched = 0;
        let tally = loop {
            tokio::select! {
                tally = &mut run => break tally.unwrap(),
                () = tokio::time::sleep(Duration::from_millis(10)) => {
                    assert!(health.database_ok(), "said down while it answers");
                    watched += 1;
                }
            }
        };
        assert!(watched > 0);
        assert_eq!(tally.stored, 2);
        // Held whole and tried again: never split.
        assert_eq!(*store.transactions.lock().unwrap(), vec![2; 3]);
        assert_eq!(store.probes.load(Ordering::SeqCst), 2);
        assert_eq!(broker.calls(), vec![Call::Ack]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_channel_lost_while_the_batch_is_held_gives_it_up_unacked() {
        let store = FakeStore {
            unavailable_for: AtomicU32::new(u32::MAX),
            probe_fails: AtomicBool::new(true),
            ..FakeStore::default()
        };
        let broker = FakeBroker::default();
        broker.open.store(false, Ordering::SeqCst);
        let (result, _, database_ok) = settle(&store, &broker, &[plain("a", "1")]).await;
        assert_eq!(
            result,
            Err(Abandoned("the channel closed while the batch was held".to_owned()))
        );
        assert!(!database_ok);
        assert!(broker.calls().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_republish_is_tried_again_until_confirmed_and_only_then_is_the_batch_acked() {
        let store = FakeStore::default();
        let broker = FakeBroker {
            unconfirmed_for: AtomicU32::new(3),
            ..FakeBroker::default()
        };
        let (result, metrics, _) = settle(&store, &broker, &[poison(), plain("a", "1")]).await;
        assert_eq!(result.unwrap().dead_lettered, 1);
        assert_eq!(broker.calls(), vec![dead("", DeadReason::Poison), Call::Ack]);
        assert_eq!(
            metrics
                .dead_lettered
                .get_or_create(&ReasonLabels { reason: "poison" })
                .get(),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_letter_that_cannot_be_recorded_is_acked_all_the_same_and_counted() {
        let store = FakeStore {
            dead_letters_fail: true,
            ..FakeStore::default()
        };
        let broker = FakeBroker::default();
        let (result, metrics, _) = settle(&store, &broker, &[poison()]).await;
        assert!(result.is_ok());
        assert_eq!(broker.calls(), vec![dead("", DeadReason::Poison), Call::Ack]);
        assert_eq!(metrics.dead_letter_records_failed.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_row_the_server_drops_the_connection_over_goes_its_own_way_while_the_rest_commit() {
        let store = FakeStore {
            drop_connection: ["huge".to_owned()].into(),
            ..FakeStore::default()
        };
        let broker = FakeBroker::default();
        let messages: Vec<Message> = ["a", "b", "huge", "c", "d"]
            .iter()
            .map(|id| plain("shop", id))
            .collect();
        let (tally, _, database_ok) = settle(&store, &broker, &messages).await;
        assert_eq!(tally.unwrap().stored, 4);
        assert_eq!(ids(&store.stored()), ["a", "b", "c", "d"]);
        assert_eq!(broker.calls(), vec![retry("huge", 1), Call::Ack]);
        // Each lost connection was explained by a probe that got an answer: never an outage.
        assert!(database_ok);
        assert!(store.probes.load(Ordering::SeqCst) >= 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_connection_with_no_answer_on_a_new_one_is_an_outage_and_the_batch_is_held_whole() {
        let store = FakeStore {
            drop_connection: ["a".to_owned()].into(),
            probe_fails: AtomicBool::new(true),
            ..FakeStore::default()
        };
        let broker = FakeBroker::default();
        let reports = Reports::new();
        let health = &reports.health;
        let messages = vec![plain("shop", "a"), plain("shop", "b")];
        let plan = plan::plan(&messages, &Mappings::default(), RULES);
        let settle = reports.settle(&store, &broker);
        let held = tokio::time::timeout(Duration::from_secs(60), settle.run(&messages, plan)).await;
        assert!(held.is_err(), "still held after a minute of outage");
        assert!(!health.database_ok());
        // Never split: the same two rows, again and again.
        assert!(store.transactions.lock().unwrap().iter().all(|rows| *rows == 2));
        assert!(broker.calls().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_database_lost_before_the_ledger_is_an_outage_and_the_batch_waits_for_it() {
        let store = Arc::new(FakeStore {
            ledger_fails: AtomicBool::new(true),
            probe_fails: AtomicBool::new(true),
            ..FakeStore::default()
        });
        let broker = FakeBroker::default();
        let reports = Reports::new();
        let health = &reports.health;
        let messages = vec![plain("shop", "a")];
        let plan = plan::plan(&messages, &Mappings::default(), RULES);
        let settle = reports.settle(&store, &broker);
        let running = settle.run(&messages, plan);
        tokio::pin!(running);
        assert!(
            tokio::time::timeout(Duration::from_secs(30), &mut running)
                .await
                .is_err(),
            "acked without its ledger"
        );
        assert!(!health.database_ok(), "the outage was not reported");
        assert!(broker.calls().is_empty());
        store.ledger_fails.store(false, Ordering::SeqCst);
        store.probe_fails.store(false, Ordering::SeqCst);
        let tally = tokio::time::timeout(Duration::from_secs(30), running)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tally.stored, 1);
        assert!(health.database_ok());
        assert_eq!(broker.calls(), vec![Call::Ack]);
    }

    /// A generated delivery: a plain event of one of a few ids (some of which the database
    /// refuses), a sale its processor refuses, an event too large for the database, or poison.
    fn deliveries() -> impl Strategy<Value = Vec<(u8, u32)>> {
        prop::collection::vec((0..12u8, 0..5u32), 1..30)
    }

    fn delivery(kind: u8, retry_count: u32) -> Message {
        match kind {
            0 => poison(),
            1 => event(
                "shop",
                &format!("bad-{retry_count}"),
                "sale.completed",
                retry_count,
                BAD_SALE,
            ),
            11 => event("shop", &format!("big-{retry_count}"), "push", retry_count, &big_body()),
            n => event("shop", &format!("e{}", n % 7), "push", retry_count, "{}"),
        }
    }

    proptest! {
        #[test]
        fn every_delivery_ends_stored_or_republished_exactly_once_and_the_batch_is_acked_last(
            kinds in deliveries(),
            refused in prop::collection::hash_set(0..7u8, 0..3),
        ) {
            let messages: Vec<Message> = kinds.iter().map(|&(kind, retry_count)| delivery(kind, retry_count)).collect();
            let refused: Vec<String> = refused.iter().map(|n| format!("e{n}")).collect();
            let store = FakeStore::refusing(&refused.iter().map(String::as_str).collect::<Vec<_>>());
            let broker = FakeBroker::default();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            let plan = plan::plan(&messages, &Mappings::default(), RULES);
            check_plan(&messages, &plan);
            let (result, metrics, _) = runtime.block_on(settle(&store, &broker, &messages));
            let tally = result.unwrap();
            let calls = broker.calls();
            prop_assert_eq!(calls.last(), Some(&Call::Ack));
            prop_assert_eq!(calls.iter().filter(|call| **call == Call::Ack).count(), 1);
            let republished = calls.len() - 1;
            // Each delivery: a new row, a delivery of a stored row, or republished; one of them.
            prop_assert_eq!(tally.stored + tally.duplicates + republished as u64, messages.len() as u64);
            prop_assert_eq!(tally.retried + tally.dead_lettered, republished as u64);
            prop_assert_eq!(metrics.duplicates.get(), tally.duplicates);
            let stored: HashSet<String> = store.stored().into_iter().map(|(id, _)| id).collect();
            for call in &calls {
                if let Call::Retry { delivery_id, .. } = call {
                    prop_assert!(!stored.contains(delivery_id), "{} stored and retried", delivery_id);
                }
            }
            for id in &refused {
                prop_assert!(!stored.contains(id));
            }
            // What was refused and not stored went somewhere: its first delivery republished.
            let expected: HashSet<&str> = messages.iter().filter_map(|m| m.event()).map(|e| e.envelope.delivery_id.as_str())
                .filter(|id| !stored.contains(*id)).collect();
            let sent: HashSet<&str> = calls.iter().filter_map(|call| match call {
                Call::Retry { delivery_id, .. } | Call::DeadLetter { delivery_id, .. } => Some(delivery_id.as_str()),
                Call::Ack => None,
            }).filter(|id| !id.is_empty()).collect();
            prop_assert_eq!(expected, sent);
        }
    }
}
