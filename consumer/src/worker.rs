//! Deliveries → batch → process → store → settle: run each event's processor, commit the
//! events with the sales they carry, publish retries and dead letters (confirmed), record the
//! dead letters, then one `multiple` ack for the whole batch.
//!
//! The consuming connection is the worker's own and is reopened by the worker itself, never by
//! lapin's auto-recovery: a batch is acked on the channel it was delivered on or not at all.
//! When that channel is lost the batch in hand is dropped and the broker redelivers it; rows
//! already committed then count as duplicates, which the unique key makes harmless.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use sqlx::mysql::MySqlPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use webhook_core::broker::{self, Backoff, BrokerConnection, Outgoing, Publisher};
use webhook_core::envelope::republish_properties;
use webhook_core::payload::BodyFormat;

use crate::health::Health;
use crate::message::{Content, Message, UniqueEvent, unique_events};
use crate::metrics::{AttemptLabels, Metrics, OutcomeLabels, ReasonLabels, SourceLabels};
use crate::processors::{self, Outcome, SaleChange};
use crate::retry::{self, Decision};
use crate::settings::Settings;
use crate::store::{self, DeadLetterRow, EventRow, StoreError};

/// How long opening the consuming connection (connect, channel, topology, qos, consume) may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one insert transaction may take before the database counts as unavailable. If the
/// commit did land after all, the retry finds the rows stored and counts them as duplicates.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long closing a channel or connection may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// While holding a batch, how often the worker checks that its channel is still open.
const HOLD_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// How often the depth of `{P}.events` is sampled for the lag gauge.
const LAG_SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How long recording a batch's dead letters in `dead_letters` may take. It is tried once: the
/// messages are safe in `{P}.dead` already, and the ack must not wait on a database outage.
const DEAD_LETTER_RECORD_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the worker needs; built by [`crate::Application`].
pub(crate) struct Worker {
    /// Which of the process's `CONSUMER_WORKERS` this is, from 0.
    pub(crate) index: usize,
    pub(crate) settings: Settings,
    pub(crate) pool: MySqlPool,
    pub(crate) publisher: Publisher,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) health: Arc<Health>,
    /// Cancelled to stop: take no more deliveries, settle the batch in hand.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled when the shutdown grace is over: drop the batch in hand unsettled.
    pub(crate) grace_over: CancellationToken,
}

/// Why consuming on a channel ended.
enum Ended {
    Shutdown,
    ChannelLost(String),
}

/// The batch in hand was not settled (nothing acked); the broker will redeliver it.
struct Abandoned(String);

/// What a batch came to.
#[derive(Debug, Default)]
struct Tally {
    stored: u64,
    duplicates: u64,
    processed: u64,
    ignored: u64,
    failed: u64,
    retried: u64,
    dead_lettered: u64,
}

/// A unique event of the batch and what its processor made of it.
#[derive(Debug)]
struct Processed {
    entry: UniqueEvent,
    /// The sale or refund it carries, if any (else it is `ignored`).
    sale: Option<SaleChange>,
}

impl Worker {
    /// Consumes until shutdown, reconnecting with backoff for as long as it takes.
    pub(crate) async fn run(self) {
        let name = format!("consumer-{}-{}", std::process::id(), self.index);
        if self.index == 0 {
            log::info!("sales processors: {}", self.settings.sales.summary());
        }
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while !self.shutdown.is_cancelled() {
            let opened = tokio::select! {
                opened = tokio::time::timeout(OPEN_TIMEOUT, self.open(&name)) => opened,
                () = self.shutdown.cancelled() => break,
            };
            let (connection, channel, consumer) = match opened {
                Ok(Ok(opened)) => opened,
                failed => {
                    let error = match failed {
                        Ok(Err(error)) => format!("{error:#}"),
                        _ => format!("no answer within {OPEN_TIMEOUT:?}"),
                    };
                    let delay = backoff.next_delay();
                    log::warn!(
                        "broker consume setup failed: connection={name} url={} attempt={} error=\"{error}\" retry_in_ms={}",
                        self.settings.broker.addresses.redacted(),
                        backoff.attempts(),
                        delay.as_millis()
                    );
                    tokio::select! {
                        () = tokio::time::sleep(delay) => continue,
                        () = self.shutdown.cancelled() => break,
                    }
                }
            };
            log::info!(
                "consuming: connection={name} queue={} prefetch={} batch_size={} after_attempts={}",
                self.settings.broker.topology.events_queue(),
                self.settings.prefetch,
                self.settings.batch_size,
                backoff.attempts()
            );
            backoff.reset();
            self.health.set_channel_open(true);
            // One worker samples the lag: they all read the same queue.
            let lag = if self.index == 0 {
                self.sample_lag(&connection).await
            } else {
                None
            };
            let ended = self.consume(&channel, consumer).await;
            if let Some(lag) = lag {
                lag.abort();
            }
            self.health.set_channel_open(false);
            close(&connection, &channel).await;
            match ended {
                Ended::Shutdown => break,
                Ended::ChannelLost(why) => {
                    log::warn!("consuming channel lost: connection={name} error=\"{why}\"; reconnecting");
                }
            }
        }
        log::info!("consumer worker stopped");
    }

    async fn open(&self, name: &str) -> anyhow::Result<(BrokerConnection, Channel, Consumer)> {
        let connection = broker::connect(&self.settings.broker.addresses, name).await?;
        let opened = async {
            let channel = connection.create_channel().await?;
            self.settings.broker.topology.declare(&channel).await?;
            channel
                .basic_qos(self.settings.prefetch, BasicQosOptions::default())
                .await?;
            let consumer = channel
                .basic_consume(
                    self.settings.broker.topology.events_queue().as_str().into(),
                    name.into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>((channel, consumer))
        }
        .await;
        match opened {
            Ok((channel, consumer)) => Ok((connection, channel, consumer)),
            Err(error) => {
                connection.close().await;
                Err(error.into())
            }
        }
    }

    /// Samples the number of messages ready in `{P}.events` every [`LAG_SAMPLE_EVERY`] into
    /// the lag gauge, on a channel of its own (a passive declare that failed would close the
    /// channel it ran on). Ends with the connection; the caller aborts it sooner.
    async fn sample_lag(&self, connection: &BrokerConnection) -> Option<tokio::task::JoinHandle<()>> {
        let channel = match tokio::time::timeout(CLOSE_TIMEOUT, connection.create_channel()).await {
            Ok(Ok(channel)) => channel,
            failed => {
                log::warn!("consumer lag will not be sampled on this connection: no channel: {failed:?}");
                return None;
            }
        };
        let queue = self.settings.broker.topology.events_queue();
        let metrics = Arc::clone(&self.metrics);
        Some(tokio::spawn(async move {
            let options = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            let mut ticks = tokio::time::interval(LAG_SAMPLE_EVERY);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match tokio::time::timeout(
                    CLOSE_TIMEOUT,
                    channel.queue_declare(queue.as_str().into(), options, FieldTable::default()),
                )
                .await
                {
                    Ok(Ok(declared)) => {
                        metrics.lag_messages.set(i64::from(declared.message_count()));
                    }
                    Ok(Err(error)) => {
                        log::debug!("sampling consumer lag stopped: {error}");
                        return;
                    }
                    Err(_) => log::debug!("sampling consumer lag: no answer within {CLOSE_TIMEOUT:?}"),
                }
            }
        }))
    }

    /// Takes batches from `consumer` and settles each, until shutdown or until the channel is
    /// lost.
    async fn consume(&self, channel: &Channel, mut consumer: Consumer) -> Ended {
        loop {
            let first = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => {
                    stop_consuming(channel, &consumer).await;
                    return Ended::Shutdown;
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => delivery,
                    Some(Err(error)) => return Ended::ChannelLost(error.to_string()),
                    None => return Ended::ChannelLost("the broker cancelled the consumer".to_owned()),
                },
            };
            let mut batch = Vec::with_capacity(self.settings.batch_size);
            batch.push(first);
            let deadline = Instant::now() + self.settings.batch_wait;
            let mut stopping = false;
            let mut cancelled_by_broker = false;
            while batch.len() < self.settings.batch_size {
                tokio::select! {
                    biased;
                    () = self.shutdown.cancelled() => {
                        stopping = true;
                        break;
                    }
                    next = consumer.next() => match next {
                        Some(Ok(delivery)) => batch.push(delivery),
                        // The channel is gone and with it every delivery in hand.
                        Some(Err(error)) => return Ended::ChannelLost(error.to_string()),
                        None => {
                            cancelled_by_broker = true;
                            break;
                        }
                    },
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
            if stopping {
                stop_consuming(channel, &consumer).await;
            }
            if let Err(Abandoned(why)) = self.settle(channel, batch).await {
                return if self.shutdown.is_cancelled() {
                    log::warn!("shutdown: the batch in hand was not settled ({why}); the broker will redeliver it");
                    Ended::Shutdown
                } else {
                    Ended::ChannelLost(why)
                };
            }
            if stopping || self.shutdown.is_cancelled() {
                if !stopping {
                    stop_consuming(channel, &consumer).await;
                }
                return Ended::Shutdown;
            }
            if cancelled_by_broker {
                return Ended::ChannelLost("the broker cancelled the consumer".to_owned());
            }
        }
    }

    /// Runs the processors and stores the events of a batch, sends what failed on its own down
    /// the retry ladder or to the dead-letter exchange (confirmed), records the dead letters,
    /// then acks the whole batch with one `multiple` ack on its last delivery. Nothing is acked
    /// unless all of that succeeded (except the record of the dead letters: best effort).
    async fn settle(&self, channel: &Channel, deliveries: Vec<lapin::message::Delivery>) -> Result<(), Abandoned> {
        let started = Instant::now();
        let Some(last) = deliveries.last().map(|delivery| delivery.acker.clone()) else {
            return Ok(());
        };
        let size = deliveries.len();
        self.metrics.batch_size.observe(size as f64);
        let messages: Vec<Message> = deliveries
            .into_iter()
            .map(|delivery| Message::read(delivery.routing_key.to_string(), delivery.properties, delivery.data))
            .collect();
        let mut tally = Tally::default();
        // A processor error is a failure of that message alone: it is never inserted, so it
        // neither blocks nor rolls back the rest of the batch.
        let (processed, mut refused) = self.process(&messages, unique_events(&messages), &mut tally);
        refused.extend(self.store(channel, &messages, &processed, &mut tally).await?);

        let mut decisions: Vec<(usize, Decision)> = messages
            .iter()
            .enumerate()
            .filter_map(|(index, message)| match &message.content {
                Content::Poison { why, .. } => Some((index, retry::poison(why))),
                Content::Event(_) => None,
            })
            .collect();
        decisions.extend(refused.into_iter().map(|(index, error)| {
            let decision = retry::after_refusal(messages[index].retry_count(), self.settings.max_retries, &error);
            (index, decision)
        }));
        decisions.sort_by_key(|(index, _)| *index);
        for (index, decision) in &decisions {
            self.republish(channel, &messages[*index], decision).await?;
            match decision {
                Decision::Retry { .. } => tally.retried += 1,
                Decision::DeadLetter { .. } => tally.dead_lettered += 1,
            }
        }
        self.record_dead_letters(&messages, &decisions).await;

        match last.ack(BasicAckOptions { multiple: true }).await {
            Ok(true) => {}
            Ok(false) => return Err(Abandoned("the channel closed before the batch was acked".to_owned())),
            Err(error) => return Err(Abandoned(format!("ack failed: {error}"))),
        }
        log::debug!(
            "batch settled: size={size} stored={} duplicates={} processed={} ignored={} failed={} retried={} dead_lettered={} ms={}",
            tally.stored,
            tally.duplicates,
            tally.processed,
            tally.ignored,
            tally.failed,
            tally.retried,
            tally.dead_lettered,
            started.elapsed().as_millis()
        );
        Ok(())
    }

    /// Runs each unique event's processor (chosen by its source and event type). Returns the
    /// events to store with what they carry, and the messages whose body their processor
    /// refused, with its error: those go down the retry ladder and are not stored.
    fn process(
        &self,
        messages: &[Message],
        unique: Vec<UniqueEvent>,
        tally: &mut Tally,
    ) -> (Vec<Processed>, Vec<(usize, String)>) {
        let mut processed = Vec::with_capacity(unique.len());
        let mut failed = Vec::new();
        for entry in unique {
            let Some(event) = messages[entry.index].event() else {
                continue;
            };
            let envelope = &event.envelope;
            let mapping = self.settings.sales.get(&envelope.source);
            // Sales are read from JSON; form bodies (slash commands and the like) are stored only.
            let outcome = match envelope.body_format {
                BodyFormat::Json => processors::process(mapping, &envelope.event_type, &event.body),
                BodyFormat::Form => Ok(Outcome::Ignored),
            };
            match outcome {
                Ok(Outcome::Ignored) => processed.push(Processed { entry, sale: None }),
                Ok(Outcome::Sale(change)) => processed.push(Processed {
                    entry,
                    sale: Some(change),
                }),
                Err(error) => {
                    log::warn!(
                        "event refused by its processor: source={} delivery_id={:?} retry_count={} error=\"{error}\"",
                        envelope.source,
                        envelope.delivery_id,
                        envelope.retry_count
                    );
                    self.metrics
                        .processed
                        .get_or_create(&OutcomeLabels { outcome: "failed" })
                        .inc();
                    tally.failed += 1;
                    // Its copies in this batch are acked with it, as duplicates.
                    let copies = entry.copies.len() as u64;
                    self.metrics.duplicates.inc_by(copies);
                    tally.duplicates += copies;
                    failed.push((entry.index, error.to_string()));
                }
            }
        }
        (processed, failed)
    }

    /// Inserts the batch's events, holding on while the database is unavailable. Returns the
    /// messages the database refused, with its error; every other event is committed.
    ///
    /// A refusal splits the rows in halves until the refused rows stand alone, so every good
    /// row commits. Rows are committed at most once per call: a retry after an outage or a
    /// conflict covers only the rows not yet committed.
    async fn store(
        &self,
        channel: &Channel,
        messages: &[Message],
        unique: &[Processed],
        tally: &mut Tally,
    ) -> Result<Vec<(usize, String)>, Abandoned> {
        let mut refused = Vec::new();
        let mut pending: Vec<Range<usize>> = Vec::new();
        if !unique.is_empty() {
            pending.push(0..unique.len());
        }
        let mut outage = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut conflict = Backoff::new(Duration::from_millis(20), Duration::from_secs(1));
        while let Some(range) = pending.pop() {
            let rows: Vec<EventRow<'_>> = unique[range.clone()]
                .iter()
                .filter_map(|entry| row(messages, entry))
                .collect();
            let started = Instant::now();
            let result = tokio::select! {
                result = tokio::time::timeout(TRANSACTION_TIMEOUT, store::insert_events(&self.pool, &rows)) => {
                    result.unwrap_or_else(|_| {
                        Err(StoreError::Unavailable(format!("no answer within {TRANSACTION_TIMEOUT:?}")))
                    })
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
                    let copies: u64 = unique[range].iter().map(|one| one.entry.copies.len() as u64).sum();
                    let duplicates = inserted.already_stored + copies;
                    self.metrics.duplicates.inc_by(duplicates);
                    tally.duplicates += duplicates;
                    let now = Utc::now();
                    for row in &rows {
                        let latency = (now - row.received_at).to_std().unwrap_or_default();
                        self.metrics.ingest_to_store_seconds.observe(latency.as_secs_f64());
                        let outcome = row.status();
                        self.metrics.processed.get_or_create(&OutcomeLabels { outcome }).inc();
                        if row.sale.is_some() {
                            tally.processed += 1;
                        } else {
                            tally.ignored += 1;
                        }
                    }
                }
                Err(StoreError::Refused(error)) if range.len() > 1 => {
                    self.database_answered(outage.attempts());
                    log::debug!("batch refused, splitting: rows={} error=\"{error}\"", range.len());
                    let middle = range.start + range.len() / 2;
                    // Popped first half first.
                    pending.push(middle..range.end);
                    pending.push(range.start..middle);
                }
                Err(StoreError::Refused(error)) => {
                    self.database_answered(outage.attempts());
                    let entry = &unique[range.start].entry;
                    if let Some(event) = messages[entry.index].event() {
                        log::warn!(
                            "event refused by the database: source={} delivery_id={:?} retry_count={} error=\"{error}\"",
                            event.envelope.source,
                            event.envelope.delivery_id,
                            event.envelope.retry_count
                        );
                    }
                    self.metrics.duplicates.inc_by(entry.copies.len() as u64);
                    tally.duplicates += entry.copies.len() as u64;
                    refused.push((entry.index, error));
                }
                Err(StoreError::Conflict(error)) => {
                    let delay = conflict.next_delay();
                    log::debug!(
                        "lock conflict, retrying: rows={} attempt={} error=\"{error}\" retry_in_ms={}",
                        range.len(),
                        conflict.attempts(),
                        delay.as_millis()
                    );
                    pending.push(range);
                    self.hold(channel, delay).await?;
                }
                Err(StoreError::Unavailable(error)) => {
                    self.health.set_database_ok(false);
                    let delay = outage.next_delay();
                    log::warn!(
                        "database unavailable, holding the batch: rows={} attempt={} error=\"{error}\" retry_in_ms={}",
                        range.len(),
                        outage.attempts(),
                        delay.as_millis()
                    );
                    pending.push(range);
                    self.hold(channel, delay).await?;
                }
            }
        }
        Ok(refused)
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
    async fn republish(&self, channel: &Channel, message: &Message, decision: &Decision) -> Result<(), Abandoned> {
        let topology = &self.settings.broker.topology;
        let (exchange, routing_key, properties) = match decision {
            Decision::Retry { attempt } => (
                String::new(),
                topology.retry_queue(*attempt),
                republish_properties(&message.properties, *attempt, None),
            ),
            Decision::DeadLetter { error, .. } => (
                topology.dead_letter_exchange(),
                message.routing_key.clone(),
                republish_properties(&message.properties, message.retry_count(), Some(error)),
            ),
        };
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let outgoing = Outgoing {
                exchange: &exchange,
                routing_key: &routing_key,
                body: message.body(),
            };
            let published = tokio::select! {
                published = self.publisher.publish(outgoing, properties.clone()) => published,
                () = self.grace_over.cancelled() => {
                    return Err(Abandoned("the shutdown grace ran out while republishing".to_owned()));
                }
            };
            match published {
                Ok(()) => break,
                Err(error) => {
                    let delay = backoff.next_delay();
                    log::warn!(
                        "republish not confirmed, holding the batch: exchange={exchange:?} routing_key={routing_key:?} attempt={} error=\"{error}\" retry_in_ms={}",
                        backoff.attempts(),
                        delay.as_millis()
                    );
                    self.hold(channel, delay).await?;
                }
            }
        }
        match decision {
            Decision::Retry { attempt } => {
                self.metrics
                    .retried
                    .get_or_create(&AttemptLabels { attempt: *attempt })
                    .inc();
                log::info!("event sent for retry: queue={routing_key} attempt={attempt}");
            }
            Decision::DeadLetter { reason, error } => {
                self.metrics
                    .dead_lettered
                    .get_or_create(&ReasonLabels { reason: reason.label() })
                    .inc();
                log::warn!(
                    "message dead-lettered: reason={} routing_key={:?} error=\"{error}\"",
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
    async fn record_dead_letters(&self, messages: &[Message], decisions: &[(usize, Decision)]) {
        let rows: Vec<DeadLetterRow<'_>> = decisions
            .iter()
            .filter_map(|(index, decision)| match decision {
                Decision::DeadLetter { reason, error } => {
                    let message = &messages[*index];
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
            result = tokio::time::timeout(DEAD_LETTER_RECORD_TIMEOUT, store::insert_dead_letters(&self.pool, &rows)) => {
                result.unwrap_or_else(|_| {
                    Err(StoreError::Unavailable(format!("no answer within {DEAD_LETTER_RECORD_TIMEOUT:?}")))
                })
            }
            () = self.grace_over.cancelled() => {
                Err(StoreError::Unavailable("the shutdown grace ran out".to_owned()))
            }
        };
        // Readiness is left to the event path, which keeps trying until the database answers.
        if let Err(error) = result {
            self.metrics.dead_letter_records_failed.inc_by(rows.len() as u64);
            log::error!(
                "dead letters not recorded in dead_letters (they are in {}): count={} error=\"{error}\"",
                self.settings.broker.topology.dead_queue(),
                rows.len()
            );
        }
    }

    /// Waits `delay` before trying the batch in hand again; gives the batch up if its channel
    /// closes (the broker redelivers it) or the shutdown grace runs out.
    async fn hold(&self, channel: &Channel, delay: Duration) -> Result<(), Abandoned> {
        let until = Instant::now() + delay;
        loop {
            if !channel.status().connected() {
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

/// The row for one unique event.
fn row<'m>(messages: &'m [Message], processed: &'m Processed) -> Option<EventRow<'m>> {
    let entry = &processed.entry;
    let event = messages[entry.index].event()?;
    Some(EventRow {
        source: &event.envelope.source,
        delivery_id: &event.envelope.delivery_id,
        event_type: &event.envelope.event_type,
        body: &event.body,
        body_sha256: &event.sha256,
        content_type: event.envelope.body_format.content_type(),
        received_at: event.envelope.received_at,
        retry_count: event.envelope.retry_count,
        copies: u32::try_from(entry.copies.len()).unwrap_or(u32::MAX),
        sale: processed.sale.as_ref(),
    })
}

/// Asks the broker to send no more deliveries to this consumer.
async fn stop_consuming(channel: &Channel, consumer: &Consumer) {
    if !channel.status().connected() {
        return;
    }
    match tokio::time::timeout(
        CLOSE_TIMEOUT,
        channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()),
    )
    .await
    {
        Ok(Ok(())) => log::info!("consumer cancelled: no more deliveries will be taken"),
        Ok(Err(error)) => log::debug!("cancelling the consumer: {error}"),
        Err(_) => log::debug!("cancelling the consumer: no answer within {CLOSE_TIMEOUT:?}"),
    }
}

/// Closes the channel (unacked deliveries go back to the queue) and the connection.
async fn close(connection: &BrokerConnection, channel: &Channel) {
    if channel.status().connected() {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, channel.close(200, "OK".into())).await;
    }
    connection.close().await;
}
