//! loadgen: signed webhook traffic for the request handler, with numbers.
//!
//! Every request carries a unique delivery id (`{run}-{n}`), a realistic JSON body of about
//! `--body-bytes` and an `X-Hub-Signature-256` made with `--secret`. It runs closed-loop (as fast
//! as `--concurrency` workers can) or open-loop at `--rate` requests/s, where latency is measured
//! from each request's scheduled time so a stall is not hidden. With `--drain` it then waits
//! until every accepted id is in MySQL and reports end-to-end throughput and ingest-to-store
//! latency from the rows' own `received_at` and `stored_at`.
//!
//! `--source-rate NAME=RATE`, repeated, drives several sources of the handler at once, each at
//! its own rate and reported on its own (see [`streams`]): a flood on one, steady traffic on
//! another.
//!
//! `--demo` instead sends a year of signed sales and refunds for the vendors of a sources file
//! (see [`demo`]), so the dashboard has something to show.

#![allow(clippy::print_stdout)] // the report is the program's output

mod dataset;
mod demo;
mod streams;
mod vendors;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use sqlx::{Connection, Row};
use tokio::sync::Mutex;

const DEMO_HELP: &str = "\
Demo data (--demo):
  Sends twelve months (up to now) of signed sales and refunds, a few thousand requests, for every
  [[source]] of the sources file that has a [source.sales] table, shaped by its preset (canonical,
  stripe, shopify) and signed by its scheme with the file's own secrets; then waits until the
  dashboard's /api/sales shows exactly the sums it sent. The same --seed gives the same orders,
  ids and amounts, so running it again stores nothing twice.

  Run the handler and the consumer with the same file, e.g.
    SOURCES_FILE=examples/demo-sources.toml scripts/run-local
  and then
    cargo run --release -p loadgen -- --demo --sources examples/demo-sources.toml

Exit status: 0 when every request was answered 200 (and, with --demo, the dashboard shows the
sums), 3 when some request was not, 4 when the dashboard did not show the demo's sums in time.";

/// Sends signed webhooks and reports req/s, status counts and latency percentiles; or, with
/// --demo, a year of sales for the dashboard.
#[derive(Debug, Parser)]
#[command(version, about, after_help = DEMO_HELP)]
struct Args {
    /// The ingest endpoint.
    #[arg(long, env = "LOADGEN_URL", default_value = "http://127.0.0.1:3000/webhook")]
    url: String,
    /// The secret to sign with (the handler's WEBHOOK_SECRET); not used by --demo.
    #[arg(
        long,
        env = "WEBHOOK_SECRET",
        hide_env_values = true,
        required_unless_present = "demo"
    )]
    secret: Option<String>,
    /// Requests in flight at once [default: 32, with --demo 8].
    #[arg(long, short)]
    concurrency: Option<usize>,
    /// Send this many requests (default: run for --duration).
    #[arg(long, short = 'n')]
    requests: Option<u64>,
    /// Run this many seconds when --requests is not given.
    #[arg(long, short, default_value_t = 10.0)]
    duration: f64,
    /// Open loop: this many requests per second (default: as fast as possible).
    #[arg(long, short)]
    rate: Option<f64>,
    /// Approximate body size in bytes.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// The event type of every body: `sale.completed` makes the consumer apply a sale too;
    /// another type stores the event alone.
    #[arg(long, default_value = "sale.completed")]
    event_type: String,
    /// Wait until every accepted event is in MySQL and report end-to-end numbers.
    #[arg(long)]
    drain: bool,
    /// The database the consumer writes to (for --drain).
    #[arg(long, env = "DATABASE_URL", default_value = "mysql://root@127.0.0.1:3306/webhooks")]
    database_url: String,
    /// Give up draining after this many seconds.
    #[arg(long, default_value_t = 600)]
    drain_timeout: u64,
    /// Print the summary as one JSON object (for scripts).
    #[arg(long)]
    json: bool,
    /// Drive the source NAME at RATE requests/s, posting to {handler-url}/webhooks/NAME signed
    /// with --secret (GitHub scheme); repeat for several sources at once, each reported on its
    /// own. --concurrency is then per source; --duration applies.
    #[arg(long = "source-rate", value_name = "NAME=RATE", conflicts_with_all = ["demo", "rate", "requests", "drain"])]
    source_rates: Vec<String>,
    /// Send a year of demo sales and refunds for the vendors of --sources (see below).
    #[arg(long)]
    demo: bool,
    /// The sources file the handler and the consumer run with (--demo signs with its secrets).
    #[arg(long, env = "SOURCES_FILE", value_name = "FILE")]
    sources: Option<PathBuf>,
    /// The request handler (--demo and --source-rate post to {handler}/webhooks/{source}).
    #[arg(long, env = "LOADGEN_HANDLER_URL", default_value = "http://127.0.0.1:3000")]
    handler_url: String,
    /// The dashboard (--demo checks its /api/sales).
    #[arg(long, env = "LOADGEN_DASHBOARD_URL", default_value = "http://127.0.0.1:3002")]
    dashboard_url: String,
    /// The demo's seed: the same seed gives the same orders, ids and amounts.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long --demo waits for the dashboard to show its sums, in seconds (0: do not check).
    #[arg(long, default_value_t = 60)]
    wait: u64,
}

#[derive(Default)]
struct Tally {
    statuses: BTreeMap<String, u64>,
    latency_us: Option<Histogram<u64>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.concurrency == Some(0) {
        bail!("--concurrency must be at least 1");
    }
    if args.rate.is_some_and(|rate| rate.is_nan() || rate <= 0.0) {
        bail!("--rate must be above 0");
    }
    if args.demo {
        let sources = args.sources.clone().context(
            "--demo needs --sources FILE (or SOURCES_FILE): the sources file the handler and the consumer run \
             with, e.g. examples/demo-sources.toml",
        )?;
        let outcome = demo::run(demo::Options {
            sources,
            handler_url: args.handler_url,
            dashboard_url: args.dashboard_url,
            seed: args.seed,
            concurrency: args.concurrency.unwrap_or(8),
            rate: args.rate,
            wait_secs: args.wait,
            json: args.json,
        })
        .await?;
        match outcome {
            demo::Outcome::Clean => return Ok(()),
            demo::Outcome::Rejected => std::process::exit(3),
            demo::Outcome::NotOnDashboard => std::process::exit(4),
        }
    }
    let concurrency = args.concurrency.unwrap_or(32);
    let secret = args
        .secret
        .clone()
        .context("--secret (or WEBHOOK_SECRET) is required")?;
    if !args.source_rates.is_empty() {
        let streams = args
            .source_rates
            .iter()
            .map(|text| streams::SourceRate::parse(text))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let clean = streams::run(
            streams,
            streams::Options {
                handler_url: args.handler_url.clone(),
                secret,
                duration: Duration::from_secs_f64(args.duration),
                concurrency,
                body_bytes: args.body_bytes,
                event_type: args.event_type.clone(),
                json: args.json,
            },
        )
        .await?;
        if !clean {
            std::process::exit(3);
        }
        return Ok(());
    }
    let run = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let limit = args.requests.unwrap_or(u64::MAX);
    let deadline = args.requests.is_none().then(|| Duration::from_secs_f64(args.duration));
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let args = Arc::new(args);
    let started = Instant::now();
    let wall_start = chrono::Utc::now();

    let progress = {
        let (done, accepted) = (Arc::clone(&done), Arc::clone(&accepted));
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = done.load(Ordering::Relaxed);
                eprintln!(
                    "[{:>5.1}s] sent={now} accepted={} rate={}/s",
                    started.elapsed().as_secs_f64(),
                    accepted.load(Ordering::Relaxed),
                    now - last
                );
                last = now;
            }
        })
    };

    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, next, done, accepted, tally, args, run, secret) = (
            client.clone(),
            Arc::clone(&next),
            Arc::clone(&done),
            Arc::clone(&accepted),
            Arc::clone(&tally),
            Arc::clone(&args),
            run.clone(),
            secret.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= limit || deadline.is_some_and(|deadline| started.elapsed() >= deadline) {
                    break;
                }
                let scheduled = match args.rate {
                    Some(rate) => {
                        let at = started + Duration::from_secs_f64(n as f64 / rate);
                        if deadline.is_some_and(|deadline| at - started >= deadline) {
                            break;
                        }
                        tokio::time::sleep_until(at.into()).await;
                        at
                    }
                    None => Instant::now(),
                };
                let id = format!("{run}-{n}");
                let body = body(&id, &args.event_type, n, args.body_bytes);
                let key = send_signed(&client, &args.url, &secret, &id, body).await;
                let latency = scheduled.elapsed();
                if key == "200" {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
                *statuses.entry(key).or_default() += 1;
                histogram.saturating_record(latency.as_micros().max(1) as u64);
                done.fetch_add(1, Ordering::Relaxed);
            }
            let mut tally = tally.lock().await;
            for (status, count) in statuses {
                *tally.statuses.entry(status).or_default() += count;
            }
            match &mut tally.latency_us {
                Some(total) => total.add(&histogram).expect("same bounds"),
                None => tally.latency_us = Some(histogram),
            }
        }));
    }
    for worker in workers {
        worker.await.context("a worker panicked")?;
    }
    let elapsed = started.elapsed();
    progress.abort();

    let tally = tally.lock().await;
    let sent = done.load(Ordering::Relaxed);
    let accepted = accepted.load(Ordering::Relaxed);
    let latency = tally
        .latency_us
        .clone()
        .unwrap_or_else(|| Histogram::new(3).expect("valid"));
    let mut summary = serde_json::json!({
        "run": run,
        "url": args.url,
        "concurrency": concurrency,
        "rate": args.rate,
        "body_bytes": args.body_bytes,
        "sent": sent,
        "accepted": accepted,
        "seconds": elapsed.as_secs_f64(),
        "requests_per_second": sent as f64 / elapsed.as_secs_f64(),
        "statuses": tally.statuses,
        "latency_ms": percentiles(&latency),
    });
    if !args.json {
        println!(
            "run {run}: {sent} requests in {:.2}s with concurrency {}",
            elapsed.as_secs_f64(),
            concurrency
        );
        println!("  throughput   {:.0} req/s", sent as f64 / elapsed.as_secs_f64());
        println!("  statuses     {}", serde_json::to_string(&tally.statuses)?);
        println!("  latency ms   {}", format_percentiles(&latency));
    }

    if args.drain {
        let drained = drain(&args, &run, accepted, wall_start).await?;
        if !args.json {
            println!(
                "  drained      {} events stored; end to end {:.0} events/s",
                drained.stored, drained.events_per_second
            );
            println!("  ingest→store ms {}", format_percentiles(&drained.latency));
        }
        summary["stored"] = drained.stored.into();
        summary["end_to_end_events_per_second"] = drained.events_per_second.into();
        summary["ingest_to_store_ms"] = percentiles(&drained.latency);
    }
    if args.json {
        println!("{summary}");
    }
    if sent == 0 || accepted < sent {
        // Scripts can tell a clean run from one with non-200 answers.
        std::process::exit(3);
    }
    Ok(())
}

struct Drained {
    stored: u64,
    events_per_second: f64,
    latency: Histogram<u64>,
}

async fn drain(
    args: &Args,
    run: &str,
    accepted: u64,
    wall_start: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Drained> {
    let mut connection = sqlx::MySqlConnection::connect(&args.database_url)
        .await
        .with_context(|| format!("connecting to {} for --drain", redact(&args.database_url)))?;
    let pattern = format!("{run}-%");
    let started = Instant::now();
    let timeout = Duration::from_secs(args.drain_timeout);
    let mut last_report = Instant::now();
    loop {
        let stored: i64 = sqlx::query("SELECT COUNT(*) FROM events WHERE delivery_id LIKE ?")
            .bind(&pattern)
            .fetch_one(&mut connection)
            .await?
            .get(0);
        let stored = u64::try_from(stored).unwrap_or_default();
        if stored >= accepted {
            break;
        }
        if started.elapsed() > timeout {
            bail!("only {stored} of {accepted} accepted events were stored after {timeout:?}");
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            eprintln!("[drain] stored {stored} of {accepted}");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = sqlx::query(
        "SELECT TIMESTAMPDIFF(MICROSECOND, received_at, stored_at), \
         TIMESTAMPDIFF(MICROSECOND, ?, stored_at) FROM events WHERE delivery_id LIKE ?",
    )
    .bind(wall_start.naive_utc())
    .bind(&pattern)
    .fetch_all(&mut connection)
    .await?;
    let mut latency = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
    let mut last_stored_us = 0_i64;
    for row in &rows {
        let to_store: i64 = row.get(0);
        latency.saturating_record(u64::try_from(to_store).unwrap_or(0).max(1));
        last_stored_us = last_stored_us.max(row.get::<i64, _>(1));
    }
    let stored = rows.len() as u64;
    let seconds = (last_stored_us as f64 / 1e6).max(1e-6);
    Ok(Drained {
        stored,
        events_per_second: stored as f64 / seconds,
        latency,
    })
}

/// POSTs `body` to `url`, GitHub-signed with `secret` and delivery id `id`; the answer's status
/// code, or `timeout` / `connection error`.
async fn send_signed(client: &reqwest::Client, url: &str, secret: &str, id: &str, body: String) -> String {
    let signature = webhook_core::signature::sign_github(secret.as_bytes(), body.as_bytes());
    let result = client
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Hub-Signature-256", signature)
        .header("X-GitHub-Delivery", id)
        .body(body)
        .send()
        .await;
    match result {
        Ok(response) => {
            let status = response.status().as_u16().to_string();
            // Drain the body so the connection is reused.
            let _ = response.bytes().await;
            status
        }
        Err(error) if error.is_timeout() => "timeout".to_owned(),
        Err(_) => "connection error".to_owned(),
    }
}

/// A JSON sale event of type `event_type` and about `size` bytes.
fn body(id: &str, event_type: &str, n: u64, size: usize) -> String {
    let event_type = serde_json::Value::from(event_type);
    let mut body = format!(
        r#"{{"id":"{id}","type":{event_type},"occurred_at":"{}","data":{{"order_id":"ord_{n}","amount":{},"currency":"EUR","customer":{{"id":"cus_{}","email":"customer{}@example.com","country":"DE"}},"items":[{{"sku":"SKU-{}","quantity":{},"unit_amount":1999}}]}},"pad":""#,
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        1000 + (n * 37) % 90_000,
        n % 5000,
        n % 5000,
        n % 300,
        1 + n % 4,
    );
    let pad = size.saturating_sub(body.len() + 2);
    body.extend(std::iter::repeat_n('x', pad));
    body.push_str("\"}");
    body
}

fn percentiles(histogram: &Histogram<u64>) -> serde_json::Value {
    let at = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    serde_json::json!({
        "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "p99.9": at(0.999), "max": histogram.max() as f64 / 1000.0,
    })
}

fn format_percentiles(histogram: &Histogram<u64>) -> String {
    let at = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    format!(
        "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        histogram.max() as f64 / 1000.0
    )
}

fn redact(url: &str) -> String {
    webhook_core::config::Url::new(url).redacted()
}
