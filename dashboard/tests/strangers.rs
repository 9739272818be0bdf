//! Strangers on the public URL, through the real handler, consumer and dashboard: requests to
//! made-up sources never hide a real vendor from the dashboard.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
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
