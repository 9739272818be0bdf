//! `loadgen --demo`: a year of signed sales and refunds for the vendors of a sources file, sent
//! through the real request handler in the order they happened, then a check that the
//! dashboard shows exactly the sums that were sent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::Mutex;

use crate::dataset::{self, MonthKey, Plan, Totals};
use crate::vendors::{self, Vendor};

/// What `--demo` was asked to do.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) sources: PathBuf,
    pub(crate) handler_url: String,
    pub(crate) dashboard_url: String,
    pub(crate) seed: u64,
    pub(crate) concurrency: usize,
    pub(crate) rate: Option<f64>,
    pub(crate) wait_secs: u64,
    pub(crate) json: bool,
}

/// How the run went.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every request was answered 200, and the dashboard shows the demo's sums (or was not
    /// checked).
    Clean,
    /// Some request was not answered 200.
    Rejected,
    /// Every request was accepted, but the dashboard did not show the demo's sums in time.
    NotOnDashboard,
}

#[derive(Default)]
struct Tally {
    statuses: BTreeMap<String, u64>,
    /// The first answer of each kind that was not 200, for the hint.
    examples: BTreeMap<String, String>,
}

/// Runs the demo.
pub(crate) async fn run(options: Options) -> anyhow::Result<Outcome> {
    let vendors = vendors::read(&options.sources)?;
    if vendors.is_empty() {
        bail!(
            "{} has no [[source]] with a [source.sales] table: the demo sends sales only to those \
             (see examples/demo-sources.toml)",
            options.sources.display()
        );
    }
    let names: Vec<(String, webhook_core::sources::Preset)> = vendors
        .iter()
        .map(|vendor| (vendor.name.clone(), vendor.preset))
        .collect();
    let plan = Arc::new(dataset::plan(&names, options.seed, chrono::Utc::now()));
    let handler = options.handler_url.trim_end_matches('/').to_owned();
    let total = plan.events.len();
    eprintln!(
        "demo: {total} sales and refunds from {} to {} for {}, to {handler}/webhooks/{{source}} with concurrency {}",
        plan.first_month,
        plan.last_month,
        vendors
            .iter()
            .map(|vendor| format!(
                "{} ({} payloads, {} signature)",
                vendor.name,
                vendor.preset.name(),
                vendor.scheme.name()
            ))
            .collect::<Vec<_>>()
            .join(", "),
        options.concurrency,
    );

    let started = Instant::now();
    let tally = send(&options, &handler, &vendors, &plan).await?;
    let elapsed = started.elapsed();
    let accepted = tally.statuses.get("200").copied().unwrap_or(0);
    let all_accepted = accepted == total as u64;

    let on_dashboard = if !all_accepted || options.wait_secs == 0 {
        None
    } else {
        Some(await_dashboard(&options, &plan).await)
    };
    let dashboard = options.dashboard_url.trim_end_matches('/');
    if options.json {
        let summary = serde_json::json!({
            "seed": options.seed,
            "sent": total,
            "accepted": accepted,
            "seconds": elapsed.as_secs_f64(),
            "statuses": tally.statuses,
            "from": plan.first_month,
            "to": plan.last_month,
            "dashboard": dashboard,
            "on_dashboard": on_dashboard.as_ref().map(Result::is_ok),
            "totals": year_totals(&plan).into_iter().map(|((vendor, currency), totals)| serde_json::json!({
                "vendor": vendor, "currency": currency, "orders": totals.orders,
                "gross_minor": totals.gross_minor, "refunded_minor": totals.refunded_minor,
                "net_minor": totals.gross_minor - totals.refunded_minor,
            })).collect::<Vec<_>>(),
        });
        println!("{summary}");
    } else {
        println!(
            "demo: {total} requests in {:.1}s: {}",
            elapsed.as_secs_f64(),
            tally
                .statuses
                .iter()
                .map(|(status, count)| format!("{count} × {status}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        // The year's sums, when they are what was stored.
        if all_accepted {
            println!(
                "  {:<10} {:>4}  {:>7}  {:>16}  {:>14}  {:>16}",
                "vendor", "", "orders", "gross", "refunded", "net"
            );
            for ((vendor, currency), totals) in year_totals(&plan) {
                println!(
                    "  {vendor:<10} {currency:>4}  {:>7}  {:>16}  {:>14}  {:>16}",
                    totals.orders,
                    amount(totals.gross_minor, &currency),
                    amount(totals.refunded_minor, &currency),
                    amount(totals.gross_minor - totals.refunded_minor, &currency),
                );
            }
        }
        match &on_dashboard {
            Some(Ok(())) => println!(
                "The dashboard shows exactly these sums: open {dashboard}/ (one vendor: {dashboard}/?vendor={})",
                vendors[0].name
            ),
            None if all_accepted => println!("Open the dashboard: {dashboard}/"),
            _ => {}
        }
    }
    if !all_accepted {
        for (status, example) in &tally.examples {
            eprintln!("demo: {status}: {example}");
        }
        eprintln!("demo: {}", hint(&tally, &options));
        return Ok(Outcome::Rejected);
    }
    match on_dashboard {
        Some(Err(why)) => {
            eprintln!("demo: {why}");
            Ok(Outcome::NotOnDashboard)
        }
        _ => Ok(Outcome::Clean),
    }
}

/// Sends every event of the plan, oldest first, `concurrency` at a time (or at `rate`).
async fn send(options: &Options, handler: &str, vendors: &[Vendor], plan: &Arc<Plan>) -> anyhow::Result<Tally> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let vendors = Arc::new(vendors.to_vec());
    let started = Instant::now();
    let total = plan.events.len();

    let progress = {
        let (done, accepted, next, plan) = (
            Arc::clone(&done),
            Arc::clone(&accepted),
            Arc::clone(&next),
            Arc::clone(plan),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let at = next.load(Ordering::Relaxed).min(total.saturating_sub(1));
                let month = plan
                    .events
                    .get(at)
                    .map(|event| event.at.format("%Y-%m").to_string())
                    .unwrap_or_default();
                eprintln!(
                    "[{:>5.1}s] sent {} of {total}, {} accepted; now sending {month}",
                    started.elapsed().as_secs_f64(),
                    done.load(Ordering::Relaxed),
                    accepted.load(Ordering::Relaxed),
                );
            }
        })
    };

    let mut workers = Vec::with_capacity(options.concurrency);
    for _ in 0..options.concurrency {
        let (client, next, done, accepted, tally, vendors, plan) = (
            client.clone(),
            Arc::clone(&next),
            Arc::clone(&done),
            Arc::clone(&accepted),
            Arc::clone(&tally),
            Arc::clone(&vendors),
            Arc::clone(plan),
        );
        let (handler, rate) = (handler.to_owned(), options.rate);
        workers.push(tokio::spawn(async move {
            let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
            let mut examples: BTreeMap<String, String> = BTreeMap::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(event) = plan.events.get(index) else {
                    break;
                };
                if let Some(rate) = rate {
                    let at = started + Duration::from_secs_f64(index as f64 / rate);
                    tokio::time::sleep_until(at.into()).await;
                }
                let vendor = &vendors[event.vendor];
                let now = chrono::Utc::now().timestamp();
                let signed = vendor.request(&event.delivery_id, event.event_type, event.body.as_bytes(), now);
                let query = signed.query.map(|query| format!("?{query}")).unwrap_or_default();
                let mut request = client
                    .post(format!("{handler}/webhooks/{}{query}", vendor.name))
                    .body(signed.body);
                for (name, value) in signed.headers {
                    request = request.header(name, value);
                }
                let key = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body = response.text().await.unwrap_or_default();
                        if status == 200 {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        } else {
                            examples
                                .entry(status.to_string())
                                .or_insert_with(|| format!("{} {}: {}", vendor.name, event.delivery_id, body.trim()));
                        }
                        status.to_string()
                    }
                    Err(error) => {
                        let key = if error.is_timeout() {
                            "timeout"
                        } else {
                            "connection error"
                        };
                        examples
                            .entry(key.to_owned())
                            .or_insert_with(|| format!("{} {}: {error}", vendor.name, event.delivery_id));
                        key.to_owned()
                    }
                };
                *statuses.entry(key).or_default() += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            let mut tally = tally.lock().await;
            for (status, count) in statuses {
                *tally.statuses.entry(status).or_default() += count;
            }
            for (status, example) in examples {
                tally.examples.entry(status).or_insert(example);
            }
        }));
    }
    for worker in workers {
        worker.await.context("a demo worker panicked")?;
    }
    progress.abort();
    let tally = std::mem::take(&mut *tally.lock().await);
    Ok(tally)
}

/// What to check when requests were not accepted.
fn hint(tally: &Tally, options: &Options) -> String {
    let sources = options.sources.display();
    if tally.statuses.contains_key("connection error") {
        format!(
            "is the request handler running at {}? (scripts/run-local with SOURCES_FILE={sources})",
            options.handler_url
        )
    } else if tally.statuses.contains_key("401") || tally.statuses.contains_key("404") {
        format!("the handler does not know these sources or secrets: start it with SOURCES_FILE={sources}")
    } else if tally.statuses.contains_key("500") {
        "the handler could not enqueue: is RabbitMQ up (GET /readyz)?".to_owned()
    } else {
        "see the answers above".to_owned()
    }
}

/// Sums over the whole year per vendor and currency.
fn year_totals(plan: &Plan) -> BTreeMap<(String, String), Totals> {
    let mut totals: BTreeMap<(String, String), Totals> = BTreeMap::new();
    for ((vendor, _, currency), month) in &plan.expected {
        let sum = totals.entry((vendor.clone(), currency.clone())).or_default();
        sum.orders += month.orders;
        sum.gross_minor += month.gross_minor;
        sum.refunded_minor += month.refunded_minor;
    }
    totals
}

/// `12,345.67 EUR`-style text without the code, grouped by thousands.
fn amount(minor: i64, currency: &str) -> String {
    let text = dataset::major(minor, currency);
    let (sign, digits) = text.strip_prefix('-').map_or(("", text.as_str()), |rest| ("-", rest));
    let (whole, fraction) = digits.split_once('.').map_or((digits, None), |(w, f)| (w, Some(f)));
    let mut grouped = String::new();
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

/// Polls the dashboard's `/api/sales` until it shows exactly the demo's sums for its vendors.
async fn await_dashboard(options: &Options, plan: &Plan) -> Result<(), String> {
    let url = format!(
        "{}/api/sales?from={}&to={}",
        options.dashboard_url.trim_end_matches('/'),
        plan.first_month,
        plan.last_month
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|error| error.to_string())?;
    let vendors: Vec<&str> = plan.expected.keys().map(|(vendor, _, _)| vendor.as_str()).collect();
    let deadline = Instant::now() + Duration::from_secs(options.wait_secs);
    let mut last_report = Instant::now();
    let mut last_problem;
    loop {
        let shown = dashboard_sums(&client, &url, &vendors).await;
        match &shown {
            Ok(shown) if *shown == plan.expected => return Ok(()),
            Ok(shown) => {
                let (orders, expected): (i64, i64) = (
                    shown.values().map(|totals| totals.orders).sum(),
                    plan.expected.values().map(|totals| totals.orders).sum(),
                );
                last_problem = format!(
                    "the dashboard shows {orders} orders for these vendors where the demo sent {expected}{}",
                    first_difference(shown, &plan.expected)
                );
            }
            Err(why) => last_problem = format!("{url}: {why}"),
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{last_problem} after {} s. Is the consumer running with SOURCES_FILE={} (without it, Stripe \
                 and Shopify payloads are dead-lettered)? Other sales of these vendors in the same months \
                 also change the sums. --wait 0 skips this check.",
                options.wait_secs,
                options.sources.display()
            ));
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            eprintln!("[dashboard] {last_problem}");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn first_difference(shown: &BTreeMap<MonthKey, Totals>, expected: &BTreeMap<MonthKey, Totals>) -> String {
    expected
        .iter()
        .find(|(key, totals)| shown.get(*key) != Some(*totals))
        .map(|((vendor, month, currency), totals)| {
            let seen = shown
                .get(&(vendor.clone(), month.clone(), currency.clone()))
                .copied()
                .unwrap_or_default();
            format!(
                " (first difference: {vendor} {month} {currency}: {} orders, net {} instead of {} orders, net {})",
                seen.orders,
                amount(seen.gross_minor - seen.refunded_minor, currency),
                totals.orders,
                amount(totals.gross_minor - totals.refunded_minor, currency)
            )
        })
        .unwrap_or_else(|| " (and rows the demo did not send)".to_owned())
}

async fn dashboard_sums(
    client: &reqwest::Client,
    url: &str,
    vendors: &[&str],
) -> Result<BTreeMap<MonthKey, Totals>, String> {
    let response = client.get(url).send().await.map_err(|error| error.to_string())?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.map_err(|error| error.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    let rows = body["rows"].as_array().ok_or("the answer has no rows")?;
    let mut sums = BTreeMap::new();
    for row in rows {
        let text = |field: &str| row[field].as_str().unwrap_or_default().to_owned();
        let number = |field: &str| row[field].as_i64().unwrap_or_default();
        let vendor = text("source");
        if !vendors.contains(&vendor.as_str()) {
            continue;
        }
        sums.insert(
            (vendor, text("month"), text("currency")),
            Totals {
                orders: number("orders"),
                gross_minor: number("gross_minor"),
                refunded_minor: number("refunded_minor"),
            },
        );
    }
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped_by_thousands() {
        assert_eq!(amount(123_456_789, "EUR"), "1,234,567.89");
        assert_eq!(amount(-99, "USD"), "-0.99");
        assert_eq!(amount(1_000, "JPY"), "1,000");
    }
}
