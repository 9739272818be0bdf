//! Strangers on the public URL, through the real handler, consumer and dashboard: requests to
//! made-up sources never hide a real vendor from the dashboard, and however many of them there
//! are, the dashboard's queries read the same few rows.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Confirmation};
use sqlx::mysql::MySqlPoolOptions;
use sqlx::{Connection, MySqlConnection, MySqlPool};
use testkit::{Env, SourcesFile, TestBroker, TestDatabase, eventually};
use tokio_util::sync::CancellationToken;
use webhook_core::config::Vars;

const SECRET: &str = "default-secret";
const SHOP_SECRET: &str = "shop-secret";
/// How long storing what was sent may take on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(60);

/// The handler, the consumer and the dashboard over a broker prefix and a database of their own.
struct Stack {
    handler: String,
    dashboard: String,
    client: reqwest::Client,
    database: TestDatabase,
    broker: TestBroker,
    stops: Vec<CancellationToken>,
    _sources: SourcesFile,
}

impl Stack {
    async fn start() -> Self {
        let broker = TestBroker::new();
        let database = TestDatabase::new();
        let sources = SourcesFile::new(&format!(
            "[[source]]\nname = \"shop\"\nscheme = \"github\"\nsecrets = [\"{SHOP_SECRET}\"]\n"
        ));
        let env = Env::new()
            .with("SOURCES_FILE", sources.path())
            .with("WEBHOOK_SECRET", SECRET)
            .with("AMQP_URL", testkit::amqp_url())
            .with("AMQP_PREFIX", broker.prefix())
            .with("DATABASE_URL", database.url())
            .with("HANDLER_ADDR", "127.0.0.1:0")
            .with("HANDLER_WORKERS", 2)
            .with("CONSUMER_ADDR", "127.0.0.1:0");
        let lookup = env.lookup();
        let vars = Vars::new(&lookup);
        let consumer = consumer::Application::build(consumer::Settings::from_vars(&vars).unwrap())
            .await
            .unwrap();
        let consumer_stop = consumer.shutdown_token();
        tokio::spawn(consumer.run());
        let handler = request_handler::Application::build(request_handler::Settings::from_vars(&vars).unwrap())
            .await
            .unwrap();
        let handler_base = format!("http://{}", handler.addr());
        let handler_stop = handler.shutdown_token();
        tokio::spawn(handler.run_until_stopped());
        let (dashboard, dashboard_stop) = support::start_dashboard(&database).await;
        let stack = Self {
            handler: handler_base,
            dashboard,
            client: reqwest::Client::new(),
            database,
            broker,
            stops: vec![consumer_stop, handler_stop, dashboard_stop],
            _sources: sources,
        };
        eventually("the handler to be ready", SOON, || async {
            let response = stack
                .client
                .get(format!("{}/readyz", stack.handler))
                .send()
                .await
                .ok()?;
            (response.status() == 200).then_some(())
        })
        .await;
        stack
    }

    /// POSTs `body` to the handler's `path`, signed with `secret` (the GitHub scheme).
    async fn post(&self, path: &str, secret: &str, body: &str, delivery_id: &str) -> u16 {
        self.client
            .post(format!("{}{path}", self.handler))
            .header("X-Hub-Signature-256", testkit::sign(secret, body.as_bytes()))
            .header("X-GitHub-Delivery", delivery_id)
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn count(&self, table: &'static str) -> i64 {
        let mut connection = self.database.connect().await;
        let statement = format!("SELECT COUNT(*) FROM {table}");
        sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
            .fetch_one(&mut connection)
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.dashboard))
            .send()
            .await
            .unwrap()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stops.iter().for_each(CancellationToken::cancel);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_requests_to_made_up_sources_never_hide_a_real_vendor() {
    let stack = Stack::start().await;
    assert_eq!(stack.post("/webhook", SECRET, r#"{"type":"ping"}"#, "d-1").await, 200);
    assert_eq!(
        stack
            .post("/webhooks/shop", SHOP_SECRET, r#"{"type":"ping"}"#, "s-1")
            .await,
        200
    );
    assert_eq!(
        stack
            .post("/webhooks/shop", "not-the-secret", r#"{"type":"ping"}"#, "s-2")
            .await,
        401
    );
    // Names that sort before every real vendor's, as an attacker would pick them. In rounds of
    // 50, each stored before the next: the handler drops rejection records beyond 64 in flight.
    let stack = &stack;
    for round in 0..10 {
        let statuses: Vec<u16> = futures_util::stream::iter(round * 50..round * 50 + 50)
            .map(|n| async move { stack.post(&format!("/webhooks/0fake-{n:03}"), "guess", "{}", "x").await })
            .buffer_unordered(16)
            .collect()
            .await;
        assert!(statuses.iter().all(|status| *status == 404), "{statuses:?}");
        let stored = i64::from(round) * 50 + 51;
        eventually(&format!("{stored} rejections stored"), SOON, || async {
            (stack.count("rejections").await == stored).then_some(())
        })
        .await;
    }
    eventually("2 events stored", SOON, || async {
        (stack.count("events").await == 2).then_some(())
    })
    .await;

    // Per source, over every day shown: (events, rejected).
    let health: serde_json::Value = stack.get("/api/health").await.json().await.unwrap();
    let mut by_source: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for row in health["rows"].as_array().unwrap() {
        let counts = by_source.entry(row["source"].as_str().unwrap().to_owned()).or_default();
        counts.0 += row["events"].as_i64().unwrap();
        counts.1 += row["rejected"].as_i64().unwrap();
    }
    assert_eq!(
        by_source,
        BTreeMap::from([
            ("(unknown)".to_owned(), (0, 500)),
            ("default".to_owned(), (1, 0)),
            ("shop".to_owned(), (1, 1)),
        ]),
        "the real vendors and one bucket for the strangers"
    );

    let page = stack.get("/").await.text().await.unwrap();
    let health = page
        .split(r#"<section id="health">"#)
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .unwrap();
    for vendor in ["default", "shop", "(unknown)"] {
        assert!(
            health.contains(&format!("<td>{vendor}</td>")),
            "{vendor} missing: {health}"
        );
    }
    assert!(!page.contains("0fake-"), "a stranger's name is on the page");

    // The names they claimed are kept for reading, beside the bucket.
    let mut connection = stack.database.connect().await;
    let (bucketed, claimed): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT claimed_source) FROM rejections \
         WHERE source = '(unknown)' AND reason = 'unknown_source' AND claimed_source LIKE '0fake-%'",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    assert_eq!((bucketed, claimed), (500, 500));
    assert_eq!(stack.broker.depth(".rejected").await, Some(0), "every record was taken");
}

/// Rows the server read for this session so far (every `Handler_read_%` counter).
async fn rows_read(pool: &MySqlPool) -> i64 {
    let counters: Vec<(String, String)> = sqlx::query_as("SHOW SESSION STATUS LIKE 'Handler_read%'")
        .fetch_all(pool)
        .await
        .unwrap();
    counters.iter().map(|(_, value)| value.parse::<i64>().unwrap()).sum()
}

/// Rows the dashboard's queries for the page (default filter) read, on a pool of one
/// connection so that the session's counters are theirs.
async fn rows_read_by_the_page(pool: &MySqlPool) -> i64 {
    let filter = dashboard::FilterQuery::default().resolve().unwrap();
    let before = rows_read(pool).await;
    let again = rows_read(pool).await;
    let own = again - before; // what reading the counters itself costs
    dashboard::data::vendors(pool).await.unwrap();
    dashboard::data::sales(pool, &filter).await.unwrap();
    dashboard::data::health(pool, &filter).await.unwrap();
    dashboard::data::dead_letters(pool, None, 20).await.unwrap();
    rows_read(pool).await - again - own
}

/// Publishes `count` rejection records of made-up sources straight to `{P}.rejected`, as the
/// handler would for requests to them, and waits until the consumer has stored them.
async fn flood(stack: &Stack, from: usize, count: usize) {
    let connection = stack.broker.connect().await;
    let channel = connection.create_channel().await.unwrap();
    channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let queue = format!("{}.rejected", stack.broker.prefix());
    let at = webhook_core::envelope::format_time(chrono::Utc::now());
    // The queue keeps at most 10,000: send in steps the consumer can keep up with.
    for step in (from..from + count).collect::<Vec<_>>().chunks(2_000) {
        let mut confirms = Vec::new();
        for n in step {
            let record = serde_json::json!({
                "at": at, "source": format!("0fake-{n:06}"), "reason": "unknown_source",
                "status": 404, "request_id": format!("r-{n}"),
            });
            confirms.push(
                channel
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        BasicPublishOptions::default(),
                        record.to_string().as_bytes(),
                        BasicProperties::default(),
                    )
                    .await
                    .unwrap(),
            );
        }
        for confirm in confirms {
            assert!(matches!(confirm.await.unwrap(), Confirmation::Ack(None)));
        }
        let stored = i64::try_from(step[step.len() - 1] + 1).unwrap();
        eventually(&format!("{stored} rejections stored"), SOON, || async {
            (stack.count("rejections").await == stored).then_some(())
        })
        .await;
    }
    let _ = connection.close(200, "OK".into()).await;
}

/// Inserts `count` events of `shop` and as many orders, spread over the last 30 days, in
/// statements of 1,000 rows (as the consumer stores them, minus the bodies' size).
async fn seed_events_and_orders(connection: &mut MySqlConnection, from: usize, count: usize) {
    for start in (from..from + count).step_by(1_000) {
        let rows: Vec<String> = (start..start + 1_000)
            .map(|n| {
                format!(
                    "('shop', 'e-{n}', 'sale.completed', '{{}}', REPEAT('0', 64), \
                     UTC_TIMESTAMP(6) - INTERVAL {} DAY, UTC_TIMESTAMP(6) - INTERVAL {} DAY + INTERVAL 1 SECOND, 'processed')",
                    n % 30,
                    n % 30
                )
            })
            .collect();
        let statement = format!(
            "INSERT INTO events (source, delivery_id, event_type, body, body_sha256, received_at, stored_at, status) VALUES {}",
            rows.join(", ")
        );
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *connection)
            .await
            .unwrap();
        let orders: Vec<String> = (start..start + 1_000)
            .map(|n| {
                format!(
                    "('shop', 'o-{n}', 'EUR', 1000, UTC_TIMESTAMP(6) - INTERVAL {} DAY, UTC_TIMESTAMP(6))",
                    n % 30
                )
            })
            .collect();
        let statement = format!(
            "INSERT INTO sales (source, order_id, currency, amount_minor, sold_at, updated_at) VALUES {}",
            orders.join(", ")
        );
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *connection)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_reads_a_few_rows_however_many_rejections_events_and_orders_there_are() {
    let stack = Stack::start().await;
    let mut seeding = stack.database.connect().await;
    let pool = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&stack.database.url())
        .await
        .unwrap();

    flood(&stack, 0, 10_000).await;
    seed_events_and_orders(&mut seeding, 0, 10_000).await;
    let first = rows_read_by_the_page(&pool).await;
    // 10,000 rejections, events and orders each: reading them would be 30,000 rows and more.
    assert!(first < 2_000, "the page's queries read {first} rows");

    flood(&stack, 10_000, 10_000).await;
    seed_events_and_orders(&mut seeding, 10_000, 10_000).await;
    let second = rows_read_by_the_page(&pool).await;
    assert!(
        second < first + 200,
        "twice the rows, and the page's queries read {second} rows instead of {first}"
    );
    eprintln!("the page's queries read {first} rows, then {second} with twice as many rows stored");
    seeding.close().await.unwrap();
    pool.close().await;
}
