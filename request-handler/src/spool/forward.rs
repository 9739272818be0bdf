//! The forwarder: drains the spool to the broker whenever it confirms, oldest first, each
//! message confirmed before it is removed. At least once: a crash (or a stop) between a confirm
//! and the removal leaves the message to be forwarded again, a duplicate the consumer stores
//! once.

use std::collections::HashSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use webhook_core::broker::{Backoff, Outgoing, PublishError, Publisher};

use super::metrics::SpoolMetrics;
use super::record;
use super::store::Store;

/// Records read from the spool at a time.
const READ: usize = 256;
/// Publishes in flight at a time; each group is removed from the spool once confirmed.
const IN_FLIGHT: usize = 64;
/// How long to wait between looks when nothing arrives (a missed notification costs this much).
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// Forwards until `stop` is cancelled.
pub(crate) async fn run(
    store: Store,
    publisher: Publisher,
    exchange: String,
    metrics: SpoolMetrics,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut unreadable: HashSet<u64> = HashSet::new();
    let mut after = None;
    let mut forwarded = 0u64;
    let mut paused = false;
    while !stop.is_cancelled() {
        if store.depth().messages() <= unreadable.len() as u64 {
            if forwarded > 0 {
                log::info!("spool: forwarded {forwarded} message(s); the spool is empty again");
                forwarded = 0;
            }
            after = None;
            tokio::select! {
                () = store.appended().notified() => {}
                () = tokio::time::sleep(IDLE_CHECK) => {}
                () = stop.cancelled() => break,
            }
            continue;
        }
        if !publisher.wait_connected(Duration::ZERO).await {
            tokio::select! {
                _ = publisher.wait_connected(IDLE_CHECK) => {}
                () = stop.cancelled() => break,
            }
            continue;
        }
        let records = match store.read(after, READ).await {
            Ok(records) => records,
            Err(error) => {
                log::error!("spool: reading the spool failed: {error}");
                pause(&mut backoff, &stop).await;
                continue;
            }
        };
        let Some(&(last, _)) = records.last() else {
            after = None;
            continue;
        };
        if forwarded == 0 && after.is_none() {
            log::info!(
                "spool: forwarding {} spooled message(s) to the broker",
                store.depth().messages()
            );
        }
        let mut messages = Vec::with_capacity(records.len());
        for (sequence, bytes) in records {
            if unreadable.contains(&sequence) {
                continue;
            }
            match record::decode(bytes) {
                Ok(message) => messages.push((sequence, message)),
                Err(why) => {
                    log::error!("spool: record {sequence} is left in the spool, not forwarded: {why}");
                    metrics.unreadable.inc();
                    unreadable.insert(sequence);
                }
            }
        }
        let mut failed = None;
        for group in messages.chunks(IN_FLIGHT) {
            let publishes = group.iter().map(|(sequence, message)| {
                let publisher = &publisher;
                let exchange = exchange.as_str();
                async move {
                    let routing_key = message.envelope.routing_key();
                    let outgoing = Outgoing {
                        exchange,
                        routing_key: &routing_key,
                        body: message.body(),
                    };
                    publisher
                        .publish(outgoing, message.envelope.properties())
                        .await
                        .map(|()| *sequence)
                }
            });
            let results = tokio::select! {
                results = futures_util::future::join_all(publishes) => results,
                // Confirmed but not yet removed: forwarded again after the restart.
                () = stop.cancelled() => return,
            };
            let mut confirmed = Vec::with_capacity(results.len());
            for result in results {
                match result {
                    Ok(sequence) => confirmed.push(sequence),
                    Err(error) => failed = Some(error),
                }
            }
            if !confirmed.is_empty() {
                let count = confirmed.len() as u64;
                match store.remove(confirmed).await {
                    Ok(()) => {
                        metrics.forwarded.inc_by(count);
                        forwarded += count;
                    }
                    Err(error) => {
                        log::error!(
                            "spool: {count} message(s) confirmed by the broker could not be removed; they will be forwarded again: {error}"
                        );
                        failed.get_or_insert(PublishError::NotConnected);
                    }
                }
            }
            if failed.is_some() {
                break;
            }
        }
        match failed {
            None => {
                after = Some(last);
                backoff.reset();
                if paused {
                    log::info!("spool: forwarding again");
                    paused = false;
                }
            }
            Some(error) => {
                // Start again from the oldest: whatever failed is still there.
                after = None;
                if !paused {
                    log::warn!("spool: forwarding paused, the broker did not confirm: {error}");
                    paused = true;
                }
                pause(&mut backoff, &stop).await;
            }
        }
    }
}

async fn pause(backoff: &mut Backoff, stop: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(backoff.next_delay()) => {}
        () = stop.cancelled() => {}
    }
}
