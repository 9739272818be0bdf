//! Consuming a queue in batches: the consumer's event workers and its rejection log.
//!
//! [`BatchConsumer::run`] opens a connection of its own (connect, declare the topology, set the
//! prefetch, start consuming), gathers deliveries into batches of up to `batch_size`, or of
//! whatever arrived within `batch_wait` of the first, and hands each to a [`BatchHandler`].
//! When the connection or the channel is lost it opens everything again, with capped, jittered
//! backoff, for as long as it takes. On shutdown it stops taking deliveries, lets the handler
//! settle the batch in hand, and closes.
//!
//! A batch is acknowledged on the channel it came on, with one `multiple` ack
//! ([`BatchAck::ack`]), or not at all: when that channel is lost the broker redelivers the
//! batch. This is why lapin's auto-recovery is not used: after a recovery the delivery tags of
//! a consuming channel start again under the batch in hand.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Acker, Channel, Consumer};
use log::Level;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::broker::{self, Backoff, BrokerConnection, BrokerSettings, ConnectError};

/// How long opening the consuming connection (connect, channel, topology, qos, consume) may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long closing a channel or connection, or cancelling a consumer, may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What to consume and how; [`BatchConsumer::run`] does it.
#[derive(Debug, Clone)]
pub struct BatchConsumer {
    /// The broker, and the topology declared on every connection before consuming.
    pub broker: BrokerSettings,
    /// The queue to consume.
    pub queue: String,
    /// The connection's and the consumer tag's name (shown in the management UI).
    pub name: String,
    /// Unacknowledged deliveries in flight (`basic.qos`).
    pub prefetch: u16,
    /// Most deliveries per batch.
    pub batch_size: usize,
    /// How long a batch waits for more deliveries after its first.
    pub batch_wait: Duration,
    /// First and longest delay between attempts to open the connection.
    pub backoff: (Duration, Duration),
    /// Log connecting and losing the connection at `debug` rather than `info`/`warn` (for a
    /// reader whose outages other parts of the process already report).
    pub quiet: bool,
}

/// Deliveries taken together, and the means to acknowledge them all at once.
#[derive(Debug)]
pub struct Batch {
    /// In the order the broker delivered them; never empty.
    pub deliveries: Vec<Delivery>,
    /// Acknowledges every delivery of the batch.
    pub ack: BatchAck,
}

/// Acknowledges a batch with one `multiple` ack on its last delivery, on the channel it came on.
#[derive(Debug, Clone)]
pub struct BatchAck {
    channel: Channel,
    last: Acker,
}

/// Why a batch could not be acknowledged; the broker will deliver it again.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    /// The channel closed before the ack was written.
    #[error("the channel closed before the batch was acked")]
    ChannelClosed,
    /// The ack failed.
    #[error("ack failed: {0}")]
    Broker(#[from] lapin::Error),
}

impl BatchAck {
    /// Whether the channel is still open (a closed channel means the broker redelivers).
    pub fn channel_open(&self) -> bool {
        self.channel.status().connected()
    }

    /// Acks every delivery of the batch (every earlier unacked delivery on the channel is in it).
    pub async fn ack(&self) -> Result<(), AckError> {
        match self.last.ack(BasicAckOptions { multiple: true }).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(AckError::ChannelClosed),
            Err(error) => Err(AckError::Broker(error)),
        }
    }
}

/// A batch that was not settled (nothing acked), and why; the broker will redeliver it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsettled(pub String);

/// What is done with the batches of a [`BatchConsumer`].
pub trait BatchHandler: Send {
    /// Called once consuming has started on a new connection, before its first batch.
    fn connected(&mut self, connection: &BrokerConnection) -> impl Future<Output = ()> + Send {
        let _ = connection;
        async {}
    }

    /// Called when consuming on that connection has ended, before the connection is closed.
    fn disconnected(&mut self) {}

    /// Settles `batch`: does its work, then acks it with [`BatchAck::ack`]. An error means the
    /// batch was not settled; the consumer then opens a new channel (the broker redelivers the
    /// batch), or ends if it is stopping.
    fn handle(&mut self, batch: Batch) -> impl Future<Output = Result<(), Unsettled>> + Send;
}

/// Why consuming on a channel ended.
enum Ended {
    Shutdown,
    ChannelLost(String),
}

impl BatchConsumer {
    /// Consumes until `shutdown` is cancelled, reconnecting with backoff for as long as it takes.
    pub async fn run(&self, handler: &mut impl BatchHandler, shutdown: &CancellationToken) {
        let mut backoff = Backoff::new(self.backoff.0, self.backoff.1);
        while !shutdown.is_cancelled() {
            let opened = tokio::select! {
                opened = tokio::time::timeout(OPEN_TIMEOUT, self.open()) => opened,
                () = shutdown.cancelled() => break,
            };
            let (connection, channel, consumer) = match opened {
                Ok(Ok(opened)) => opened,
                failed => {
                    let error = match failed {
                        Ok(Err(error)) => error.to_string(),
                        _ => format!("no answer within {OPEN_TIMEOUT:?}"),
                    };
                    let delay = backoff.next_delay();
                    log::log!(
                        self.level(Level::Warn),
                        "broker consume setup failed: connection={} url={} attempt={} error=\"{error}\" retry_in_ms={}",
                        self.name,
                        self.broker.addresses.redacted(),
                        backoff.attempts(),
                        delay.as_millis()
                    );
                    tokio::select! {
                        () = tokio::time::sleep(delay) => continue,
                        () = shutdown.cancelled() => break,
                    }
                }
            };
            log::log!(
                self.level(Level::Info),
                "consuming: connection={} queue={} prefetch={} batch_size={} after_attempts={}",
                self.name,
                self.queue,
                self.prefetch,
                self.batch_size,
                backoff.attempts()
            );
            backoff.reset();
            handler.connected(&connection).await;
            let ended = self.consume(&channel, consumer, handler, shutdown).await;
            handler.disconnected();
            close(&connection, &channel).await;
            match ended {
                Ended::Shutdown => break,
                Ended::ChannelLost(why) => log::log!(
                    self.level(Level::Warn),
                    "consuming channel lost: connection={} error=\"{why}\"; reconnecting",
                    self.name
                ),
            }
        }
    }

    fn level(&self, level: Level) -> Level {
        if self.quiet { Level::Debug } else { level }
    }

    async fn open(&self) -> Result<(BrokerConnection, Channel, Consumer), ConnectError> {
        let connection = broker::connect(&self.broker.addresses, &self.name).await?;
        let opened = async {
            let channel = connection.create_channel().await?;
            self.broker.topology.declare(&channel).await?;
            channel.basic_qos(self.prefetch, BasicQosOptions::default()).await?;
            let consumer = channel
                .basic_consume(
                    self.queue.as_str().into(),
                    self.name.as_str().into(),
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

    /// Takes batches from `consumer` and hands each to `handler`, until shutdown or until the
    /// channel is lost.
    async fn consume(
        &self,
        channel: &Channel,
        mut consumer: Consumer,
        handler: &mut impl BatchHandler,
        shutdown: &CancellationToken,
    ) -> Ended {
        loop {
            let first = tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    stop_consuming(channel, &consumer).await;
                    return Ended::Shutdown;
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => delivery,
                    Some(Err(error)) => return Ended::ChannelLost(error.to_string()),
                    None => return Ended::ChannelLost("the broker cancelled the consumer".to_owned()),
                },
            };
            let mut deliveries = Vec::with_capacity(self.batch_size);
            deliveries.push(first);
            let deadline = Instant::now() + self.batch_wait;
            let mut stopping = false;
            let mut cancelled_by_broker = false;
            while deliveries.len() < self.batch_size {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => {
                        stopping = true;
                        break;
                    }
                    next = consumer.next() => match next {
                        Some(Ok(delivery)) => deliveries.push(delivery),
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
            let Some(last) = deliveries.last().map(|delivery| delivery.acker.clone()) else {
                continue;
            };
            let batch = Batch {
                deliveries,
                ack: BatchAck {
                    channel: channel.clone(),
                    last,
                },
            };
            if let Err(Unsettled(why)) = handler.handle(batch).await {
                return if shutdown.is_cancelled() {
                    log::warn!(
                        "shutdown: the batch in hand was not settled ({why}); the broker will redeliver it: connection={}",
                        self.name
                    );
                    Ended::Shutdown
                } else {
                    Ended::ChannelLost(why)
                };
            }
            if stopping || shutdown.is_cancelled() {
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

/// Closes `channel` (its unacked deliveries go back to their queue) and then `connection`, each
/// within a short deadline.
pub async fn close(connection: &BrokerConnection, channel: &Channel) {
    if channel.status().connected() {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, channel.close(200, "OK".into())).await;
    }
    connection.close().await;
}
