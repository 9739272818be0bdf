//! Deliveries → batch → plan → settle: read each delivery, plan the batch
//! ([`crate::plan`]: rows, sales, retries, dead letters), and carry the plan out
//! ([`crate::settle`]: commit, republish confirmed, record the dead letters, then one
//! `multiple` ack for the whole batch).
//!
//! Each worker consumes on a connection of its own through a [`BatchConsumer`]: a batch is
//! acked on the channel it was delivered on or not at all. When that channel is lost the batch
//! in hand is dropped and the broker redelivers it; rows already committed then count as
//! duplicates, which the unique key makes harmless.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use webhook_core::broker::BrokerConnection;
use webhook_core::broker::{Outgoing, PublishError, Publisher};
use webhook_core::consume::{AckError, Batch, BatchAck, BatchConsumer, BatchHandler, Unsettled};
use webhook_core::envelope::republish_properties;
use webhook_core::topology::Topology;

use crate::health::Health;
use crate::message::Message;
use crate::metrics::Metrics;
use crate::plan::{self, Rules};
use crate::retry::Decision;
use crate::settings::Settings;
use crate::settle::{Abandoned, Broker, Settle};
use crate::store::Database;

/// How long opening the lag sampler's channel, or one sample, may take.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the depth of `{P}.events` is sampled for the lag gauge.
const LAG_SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How long the events queue may leave the lag sampler unanswered before the consumer says
/// that it does not answer: a quorum queue that lost the majority of its nodes neither
/// delivers nor answers until they return, while the connection and channel stay open.
pub(crate) const QUEUE_SILENT_AFTER: Duration = Duration::from_secs(8);

/// Everything the worker needs; built by [`crate::Application`].
pub(crate) struct Worker {
    /// Which of the process's `CONSUMER_WORKERS` this is, from 0.
    pub(crate) index: usize,
    pub(crate) settings: Settings,
    pub(crate) store: Database,
    pub(crate) publisher: Publisher,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) health: Arc<Health>,
    /// Cancelled to stop: take no more deliveries, settle the batch in hand.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled when the shutdown grace is over: drop the batch in hand unsettled.
    pub(crate) grace_over: CancellationToken,
    /// The lag sampler of the current connection (worker 0 only).
    pub(crate) lag: Option<tokio::task::JoinHandle<()>>,
}

impl BatchHandler for Worker {
    async fn connected(&mut self, connection: &BrokerConnection) {
        self.health.set_channel_open(true);
        // One worker samples the lag: they all read the same queue.
        if self.index == 0 {
            self.lag = self.sample_lag(connection).await;
        }
    }

    fn disconnected(&mut self) {
        if let Some(lag) = self.lag.take() {
            lag.abort();
        }
        self.health.set_channel_open(false);
    }

    async fn handle(&mut self, batch: Batch) -> Result<(), Unsettled> {
        self.settle(batch).await.map_err(|Abandoned(why)| Unsettled(why))
    }
}

impl Worker {
    /// Consumes until shutdown, reconnecting with backoff for as long as it takes.
    pub(crate) async fn run(mut self) {
        if self.index == 0 {
            log::info!("sales processors: {}", self.settings.sales.summary());
        }
        let consumer = BatchConsumer {
            broker: self.settings.broker.clone(),
            queue: self.settings.broker.topology.events_queue(),
            name: format!("consumer-{}-{}", std::process::id(), self.index),
            prefetch: self.settings.prefetch,
            batch_size: self.settings.batch_size,
            batch_wait: self.settings.batch_wait,
            backoff: (Duration::from_millis(100), Duration::from_secs(5)),
            quiet: false,
        };
        let shutdown = self.shutdown.clone();
        consumer.run(&mut self, &shutdown).await;
        log::info!("consumer worker stopped");
    }

    /// Samples the number of messages ready in `{P}.events` every [`LAG_SAMPLE_EVERY`] into
    /// the lag gauge, on a channel of its own (a passive declare that failed would close the
    /// channel it ran on). Ends with the connection; the caller aborts it sooner.
    async fn sample_lag(&self, connection: &BrokerConnection) -> Option<tokio::task::JoinHandle<()>> {
        let channel = match tokio::time::timeout(SAMPLE_TIMEOUT, connection.create_channel()).await {
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
            let mut answered_at = Instant::now();
            let mut silent = false;
            metrics.events_queue_answering.set(1);
            loop {
                ticks.tick().await;
                match tokio::time::timeout(
                    SAMPLE_TIMEOUT,
                    channel.queue_declare(queue.as_str().into(), options, FieldTable::default()),
                )
                .await
                {
                    Ok(Ok(declared)) => {
                        metrics.lag_messages.set(i64::from(declared.message_count()));
                        answered_at = Instant::now();
                        if silent {
                            silent = false;
                            metrics.events_queue_answering.set(1);
                            log::info!("{queue} answers again: events are delivered and stored");
                        }
                    }
                    Ok(Err(error)) => {
                        log::debug!("sampling consumer lag stopped: {error}");
                        return;
                    }
                    Err(_) => {
                        log::debug!("sampling consumer lag: no answer within {SAMPLE_TIMEOUT:?}");
                        if !silent && answered_at.elapsed() >= QUEUE_SILENT_AFTER {
                            silent = true;
                            metrics.events_queue_answering.set(0);
                            log::warn!(
                                "{queue} has not answered for {}s: nothing is delivered or stored until it does \
                                 (a quorum queue waits for the majority of its nodes)",
                                answered_at.elapsed().as_secs()
                            );
                        }
                    }
                }
            }
        }))
    }

    /// Reads a batch, plans it, and carries the plan out: its events stored (with their
    /// sales), what failed on its own retried or dead-lettered (confirmed), the dead letters
    /// recorded, then the whole batch acked with one `multiple` ack.
    async fn settle(&self, batch: Batch) -> Result<(), Abandoned> {
        let started = Instant::now();
        let Batch { deliveries, ack } = batch;
        let size = deliveries.len();
        self.metrics.batch_size.observe(size as f64);
        let messages: Vec<Message> = deliveries
            .into_iter()
            .map(|delivery| Message::read(delivery.routing_key.to_string(), delivery.properties, delivery.data))
            .collect();
        let rules = Rules {
            max_retries: self.settings.max_retries,
            max_allowed_packet: self.store.max_allowed_packet(),
        };
        let plan = plan::plan(&messages, &self.settings.sales, rules);
        let topology = &self.settings.broker.topology;
        let broker = BatchBroker {
            publisher: &self.publisher,
            topology,
            ack: &ack,
        };
        let due_back: Vec<Duration> = topology
            .retry_delays()
            .iter()
            .map(|delay| *delay + self.settings.ledger_grace)
            .collect();
        let tally = Settle {
            store: &self.store,
            broker: &broker,
            metrics: &self.metrics,
            health: &self.health,
            dead_queue: &topology.dead_queue(),
            grace_over: &self.grace_over,
            due_back: &due_back,
        }
        .run(&messages, plan)
        .await?;
        log::debug!(
            "batch settled: size={size} stored={} duplicates={} conflicts={} processed={} ignored={} failed={} retried={} dead_lettered={} ms={}",
            tally.stored,
            tally.duplicates,
            tally.conflicts,
            tally.processed,
            tally.ignored,
            tally.failed,
            tally.retried,
            tally.dead_lettered,
            started.elapsed().as_millis()
        );
        Ok(())
    }
}

/// The broker side of one batch: the process's publisher for retries and dead letters, and the
/// batch's own channel for the ack.
struct BatchBroker<'a> {
    publisher: &'a Publisher,
    topology: &'a Topology,
    ack: &'a BatchAck,
}

impl Broker for BatchBroker<'_> {
    async fn republish(&self, message: &Message, decision: &Decision) -> Result<(), PublishError> {
        let (exchange, routing_key, properties) = match decision {
            Decision::Retry { attempt, .. } => (
                String::new(),
                self.topology.retry_queue(*attempt),
                republish_properties(&message.properties, *attempt, None),
            ),
            Decision::DeadLetter { error, .. } => (
                self.topology.dead_letter_exchange(),
                message.routing_key.clone(),
                republish_properties(&message.properties, message.retry_count(), Some(error)),
            ),
        };
        let outgoing = Outgoing {
            exchange: &exchange,
            routing_key: &routing_key,
            body: message.body(),
        };
        self.publisher.publish(outgoing, properties).await
    }

    async fn ack(&self) -> Result<(), AckError> {
        self.ack.ack().await
    }

    fn channel_open(&self) -> bool {
        self.ack.channel_open()
    }
}
