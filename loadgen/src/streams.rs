//! `--source-rate NAME=RATE`, repeated: several sources driven at once, each open-loop at its
//! own rate and each reported on its own (statuses, latency from each request's scheduled
//! time), so that a flood on one source and steady traffic on another can be told apart.
//!
//! Every request goes to `{handler_url}/webhooks/{NAME}`, GitHub-signed with `--secret`, with
//! a delivery id of its own (`{run}-{NAME}-{n}`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;

use crate::{body, format_percentiles, percentiles, send_signed};

/// One source and the rate it is sent at.
#[derive(Debug, Clone)]
pub(crate) struct SourceRate {
    /// The source's name in the handler's sources file.
    pub(crate) source: String,
    /// Requests per second.
    pub(crate) rate: f64,
}

impl SourceRate {
    /// Reads `NAME=RATE`.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        let (source, rate) = text
            .split_once('=')
            .with_context(|| format!("--source-rate {text:?}: expected NAME=RATE, such as steady=50"))?;
        let rate: f64 = rate
            .trim()
            .parse()
            .with_context(|| format!("--source-rate {text:?}: {rate:?} is not a number of requests per second"))?;
        if !(rate > 0.0 && rate.is_finite()) {
            bail!("--source-rate {text:?}: the rate must be above 0");
        }
        if source.is_empty() {
            bail!("--source-rate {text:?}: the source name is empty");
        }
        Ok(Self {
            source: source.to_owned(),
            rate,
        })
    }
}

/// What every stream shares.
pub(crate) struct Options {
    /// The handler's base URL.
    pub(crate) handler_url: String,
    /// The GitHub-scheme secret of every source driven.
    pub(crate) secret: String,
    /// How long each stream sends.
    pub(crate) duration: Duration,
    /// Requests in flight at once, per stream; past it a request waits (and its latency,
    /// counted from its scheduled time, shows it).
    pub(crate) concurrency: usize,
    /// Approximate body size.
    pub(crate) body_bytes: usize,
    /// The event type of every body.
    pub(crate) event_type: String,
    /// Print one JSON object instead of text.
    pub(crate) json: bool,
}

struct Tally {
    statuses: BTreeMap<String, u64>,
    latency_us: Histogram<u64>,
}

/// Runs every stream for the duration and prints a report per source; true when every
/// request of every stream was answered 200.
pub(crate) async fn run(streams: Vec<SourceRate>, options: Options) -> anyhow::Result<bool> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency * streams.len())
        .timeout(Duration::from_secs(30))
        .build()?;
    let options = Arc::new(options);
    let started = Instant::now();
    let mut running = Vec::with_capacity(streams.len());
    for stream in &streams {
        let tally = Arc::new(Mutex::new(Tally {
            statuses: BTreeMap::new(),
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
        }));
        let task = tokio::spawn(drive(
            stream.clone(),
            client.clone(),
            Arc::clone(&options),
            run.clone(),
            started,
            Arc::clone(&tally),
        ));
        running.push((stream, task, tally));
    }
    let mut clean = true;
    let mut reports = Vec::with_capacity(running.len());
    for (stream, task, tally) in running {
        task.await.context("a stream panicked")?;
        let tally = tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let sent: u64 = tally.statuses.values().sum();
        let ok = tally.statuses.get("200").copied().unwrap_or(0);
        clean &= sent > 0 && ok == sent;
        if !options.json {
            println!(
                "source {} at {}/s: {sent} requests in {:.2}s",
                stream.source,
                stream.rate,
                options.duration.as_secs_f64()
            );
            println!("  statuses     {}", serde_json::to_string(&tally.statuses)?);
            println!("  latency ms   {}", format_percentiles(&tally.latency_us));
        }
        reports.push(serde_json::json!({
            "source": stream.source,
            "rate": stream.rate,
            "sent": sent,
            "statuses": tally.statuses,
            "latency_ms": percentiles(&tally.latency_us),
        }));
    }
    if options.json {
        println!(
            "{}",
            serde_json::json!({
                "run": run,
                "handler_url": options.handler_url,
                "seconds": options.duration.as_secs_f64(),
                "concurrency_per_source": options.concurrency,
                "body_bytes": options.body_bytes,
                "sources": reports,
            })
        );
    }
    Ok(clean)
}

/// Sends one source's requests on schedule, each in a task of its own, at most
/// `concurrency` at once; returns when all have been answered.
async fn drive(
    stream: SourceRate,
    client: reqwest::Client,
    options: Arc<Options>,
    run: String,
    started: Instant,
    tally: Arc<Mutex<Tally>>,
) {
    let url = format!(
        "{}/webhooks/{}",
        options.handler_url.trim_end_matches('/'),
        stream.source
    );
    let permits = Arc::new(tokio::sync::Semaphore::new(options.concurrency));
    let mut requests = tokio::task::JoinSet::new();
    for n in 0_u64.. {
        let offset = Duration::from_secs_f64(n as f64 / stream.rate);
        if offset >= options.duration {
            break;
        }
        let scheduled = started + offset;
        tokio::time::sleep_until(scheduled.into()).await;
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let id = format!("{run}-{}-{n}", stream.source);
        let body = body(&id, &options.event_type, n, options.body_bytes);
        let (client, url, options, tally) = (client.clone(), url.clone(), Arc::clone(&options), Arc::clone(&tally));
        requests.spawn(async move {
            let status = send_signed(&client, &url, &options.secret, &id, body).await;
            let latency = scheduled.elapsed();
            drop(permit);
            let mut tally = tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *tally.statuses.entry(status).or_default() += 1;
            tally.latency_us.saturating_record(latency.as_micros().max(1) as u64);
        });
        // Reap what has finished, so a long run does not keep every handle.
        while requests.try_join_next().is_some() {}
    }
    while requests.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_source_rate_is_name_equals_requests_per_second() {
        let parsed = SourceRate::parse("flood=2000").unwrap();
        assert_eq!((parsed.source.as_str(), parsed.rate), ("flood", 2000.0));
        assert_eq!(SourceRate::parse("slow=0.5").unwrap().rate, 0.5);
        for bad in ["flood", "=10", "flood=0", "flood=-1", "flood=fast", "flood=inf"] {
            assert!(SourceRate::parse(bad).is_err(), "{bad}");
        }
    }
}
