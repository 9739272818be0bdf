//! Signed traffic through the real handler: several senders at a steady total rate, every
//! request with its own delivery id, every answer recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// How long one request may take before it counts as "other" (a timeout).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Order ids of sales are drawn from this many, so that sales of the same order meet in the
/// database (and two consumers contend for the same rows).
const ORDERS: u64 = 40;
/// The event type the database is made to refuse in the poison scenario.
pub(crate) const REFUSED_EVENT_TYPE: &str = "refused.by.database";

/// What a request carries, and so what must become of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A plain event: stored with status `ignored`.
    Event,
    /// A `sale.completed` in the canonical format: stored, and a sale applied.
    Sale,
    /// A sale whose order id is longer than the column: its processor refuses it, so it goes
    /// down the retry ladder to the dead-letter queue.
    OverlongOrderId,
    /// An event of [`REFUSED_EVENT_TYPE`], which a CHECK constraint makes the database refuse:
    /// down the retry ladder to the dead-letter queue.
    RefusedByDatabase,
    /// An event larger than the database's `max_allowed_packet` (sent on its own, never by
    /// the load): dead-lettered as too large, never retried.
    Oversized,
    /// A delivery id over 200 bytes: answered 400, never enqueued.
    OverlongDeliveryId,
    /// An event type over 128 bytes: answered 400, never enqueued.
    OverlongEventType,
}

/// How the handler answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// 200: enqueued and confirmed.
    Ok,
    /// 500: not enqueued.
    ServerError,
    /// Any other status (its number), or a connection error or timeout.
    Other(String),
}

/// One request and its answer.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub(crate) id: String,
    pub(crate) kind: Kind,
    /// Hex SHA-256 of the body, to compare with the stored row.
    pub(crate) sha256: String,
    pub(crate) answer: Answer,
    /// When it was sent and when its answer came.
    pub(crate) sent_at: Instant,
    pub(crate) answered_at: Instant,
}

/// Which kind the `n`-th request is.
pub(crate) type Mix = fn(u64) -> Kind;

/// Mostly plain events, every fifth a sale.
pub(crate) fn good_traffic(n: u64) -> Kind {
    if n.is_multiple_of(5) { Kind::Sale } else { Kind::Event }
}

/// Good traffic with about 4 % each of over-long order ids, rows the database refuses,
/// over-long delivery ids and over-long event types.
pub(crate) fn mixed_traffic(n: u64) -> Kind {
    match n % 25 {
        3 => Kind::OverlongOrderId,
        8 => Kind::RefusedByDatabase,
        13 => Kind::OverlongDeliveryId,
        18 => Kind::OverlongEventType,
        _ => good_traffic(n),
    }
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `http://127.0.0.1:{port}/webhook`.
    pub(crate) url: String,
    pub(crate) secret: String,
    /// Every delivery id starts with it: unique per scenario and run.
    pub(crate) tag: String,
}

/// Traffic in progress.
pub(crate) struct Load {
    stop: CancellationToken,
    senders: Vec<JoinHandle<Vec<Sent>>>,
    accepted: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
}

impl Load {
    /// Starts `senders` senders sharing `rate` requests per second between them.
    pub(crate) fn start(target: &Target, rate: f64, senders: usize, mix: Mix) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(senders)
            .build()
            .context("building the HTTP client")?;
        let stop = CancellationToken::new();
        let next = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let answered = Arc::new(AtomicU64::new(0));
        let period = Duration::from_secs_f64(senders as f64 / rate);
        let handles = (0..senders)
            .map(|index| {
                let sender = Sender {
                    client: client.clone(),
                    target: target.clone(),
                    next: Arc::clone(&next),
                    accepted: Arc::clone(&accepted),
                    answered: Arc::clone(&answered),
                    mix,
                };
                let stop = stop.clone();
                // Staggered, so the requests are spread evenly over each period.
                let offset = period.mul_f64(index as f64 / senders as f64);
                tokio::spawn(async move { sender.run(stop, offset, period).await })
            })
            .collect();
        Ok(Self {
            stop,
            senders: handles,
            accepted,
            answered,
        })
    }

    /// Requests answered 200 so far.
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Requests answered (anything, including errors) so far.
    pub(crate) fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Stops sending; requests in flight still get their answer. Returns every request sent.
    pub(crate) async fn stop(mut self) -> anyhow::Result<Vec<Sent>> {
        self.stop.cancel();
        let mut all = Vec::new();
        for sender in std::mem::take(&mut self.senders) {
            all.extend(sender.await.context("a sender failed")?);
        }
        Ok(all)
    }
}

impl Drop for Load {
    /// A scenario that fails half-way leaves no sender running.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Sender {
    client: reqwest::Client,
    target: Target,
    next: Arc<AtomicU64>,
    accepted: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
    mix: Mix,
}

impl Sender {
    async fn run(self, stop: CancellationToken, offset: Duration, period: Duration) -> Vec<Sent> {
        let mut sent = Vec::new();
        tokio::select! {
            () = tokio::time::sleep(offset) => {}
            () = stop.cancelled() => return sent,
        }
        let mut ticker = tokio::time::interval(period);
        // A slow answer delays this sender; it does not make it burst afterwards.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            sent.push(self.send(n).await);
        }
        sent
    }

    async fn send(&self, n: u64) -> Sent {
        let kind = (self.mix)(n);
        let mut id = format!("{}-{n:06}", self.target.tag);
        let mut event_type_header = None;
        let body = match kind {
            Kind::Event | Kind::OverlongDeliveryId | Kind::OverlongEventType | Kind::Oversized => serde_json::json!({
                "id": id,
                "type": "order.note",
                "note": format!("event {n}"),
            }),
            Kind::Sale => sale(&id, &format!("order-{}", n % ORDERS), n),
            Kind::OverlongOrderId => sale(&id, &format!("order-{n}-{}", "x".repeat(300)), n),
            Kind::RefusedByDatabase => serde_json::json!({
                "id": id,
                "type": REFUSED_EVENT_TYPE,
            }),
        };
        match kind {
            Kind::OverlongDeliveryId => id = format!("{id}-{}", "i".repeat(220)),
            Kind::OverlongEventType => event_type_header = Some("t".repeat(200)),
            _ => {}
        }
        let body = body.to_string();
        let sent = post(&self.client, &self.target, id, kind, body, event_type_header).await;
        if sent.answer == Answer::Ok {
            self.accepted.fetch_add(1, Ordering::Relaxed);
        }
        self.answered.fetch_add(1, Ordering::Relaxed);
        sent
    }
}

/// Signs `body` and posts it with delivery id `id` (and the event type, when given).
async fn post(
    client: &reqwest::Client,
    target: &Target,
    id: String,
    kind: Kind,
    body: String,
    event_type: Option<String>,
) -> Sent {
    let sha256 = hex::encode(Sha256::digest(body.as_bytes()));
    let sent_at = Instant::now();
    let mut request = client
        .post(&target.url)
        .header("Content-Type", "application/json")
        .header("X-Hub-Signature-256", testkit::sign(&target.secret, body.as_bytes()))
        .header("X-GitHub-Delivery", &id);
    if let Some(event_type) = event_type {
        request = request.header("X-GitHub-Event", event_type);
    }
    let answer = match request.body(body).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read the body so that the connection is reused.
            let _ = response.bytes().await;
            match status {
                200 => Answer::Ok,
                500 => Answer::ServerError,
                other => Answer::Other(other.to_string()),
            }
        }
        Err(error) if error.is_timeout() => Answer::Other("timeout".to_owned()),
        Err(_) => Answer::Other("connection error".to_owned()),
    };
    Sent {
        id,
        kind,
        sha256,
        answer,
        sent_at,
        answered_at: Instant::now(),
    }
}

/// Sends one signed event of about `bytes` bytes through the handler, with its own delivery id
/// `{tag}-oversized-{n}`.
pub(crate) async fn send_oversized(target: &Target, n: usize, bytes: usize) -> anyhow::Result<Sent> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let id = format!("{}-oversized-{n}", target.tag);
    let body = serde_json::json!({"id": id, "type": "order.note", "pad": "x".repeat(bytes)}).to_string();
    Ok(post(&client, target, id, Kind::Oversized, body, None).await)
}

fn sale(id: &str, order_id: &str, n: u64) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "type": "sale.completed",
        "occurred_at": format!("2026-11-{:02}T10:00:00Z", 1 + n % 28),
        "data": {"order_id": order_id, "amount": 100 + n % 900, "currency": "EUR"},
    })
}
