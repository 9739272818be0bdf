//! The whole path on the real services: signed POST → handler → RabbitMQ (confirmed) →
//! consumer → MySQL (ack after commit).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::Row;
use testkit::{Env, TestBroker, TestDatabase, eventually};
use tokio_util::sync::CancellationToken;
use webhook_core::config::Vars;

const SECRET: &str = "pipeline-secret";
/// The secret of the `slash` source: Slack's scheme with form-encoded bodies.
const SLASH_SECRET: &str = "slash-secret";

struct Pipeline {
    base: String,
    consumer_base: String,
    client: reqwest::Client,
    database: TestDatabase,
    broker: TestBroker,
    stops: Vec<CancellationToken>,
    /// Kept for the pipeline's lifetime: removed when dropped.
    _sources: testkit::SourcesFile,
}

impl Pipeline {
    async fn start() -> Self {
        let broker = TestBroker::new();
        let database = TestDatabase::new();
        // `default` comes from WEBHOOK_SECRET; the file adds a form source.
        let sources = testkit::SourcesFile::new(&format!(
            "[[source]]\nname = \"slash\"\nscheme = \"slack\"\nsecrets = [\"{SLASH_SECRET}\"]\nbody_format = \"form\"\n"
        ));
        let env = Env::new()
            .with("SOURCES_FILE", sources.path())
            .with("AMQP_URL", testkit::amqp_url())
            .with("AMQP_PREFIX", broker.prefix())
            .with("WEBHOOK_SECRET", SECRET)
            .with("HANDLER_ADDR", "127.0.0.1:0")
            .with("HANDLER_WORKERS", 2)
            .with("CONSUMER_ADDR", "127.0.0.1:0")
            .with("DATABASE_URL", database.url())
            // A message the consumer refuses is retried once, soon, then dead-lettered.
            .with("RETRY_DELAYS", "100ms")
            .with("MAX_RETRIES", 1);
        let lookup = env.lookup();
        let vars = Vars::new(&lookup);

        let consumer = consumer::Application::build(consumer::Settings::from_vars(&vars).unwrap())
            .await
            .unwrap();
        let consumer_base = format!("http://{}", consumer.addr());
        let consumer_stop = consumer.shutdown_token();
        tokio::spawn(consumer.run());

        let handler = request_handler::Application::build(request_handler::Settings::from_vars(&vars).unwrap())
            .await
            .unwrap();
        let base = format!("http://{}", handler.addr());
        let handler_stop = handler.shutdown_token();
        tokio::spawn(handler.run_until_stopped());

        let pipeline = Self {
            base,
            consumer_base,
            client: reqwest::Client::new(),
            database,
            broker,
            stops: vec![consumer_stop, handler_stop],
            _sources: sources,
        };
        eventually("the handler to be ready", Duration::from_secs(20), || async {
            let response = pipeline
                .client
                .get(format!("{}/readyz", pipeline.base))
                .send()
                .await
                .ok()?;
            (response.status() == 200).then_some(())
        })
        .await;
        pipeline
    }

    async fn post(&self, body: &[u8], delivery_id: &str) -> reqwest::StatusCode {
        self.client
            .post(format!("{}/webhook", self.base))
            .header("X-Hub-Signature-256", testkit::sign(SECRET, body))
            .header("X-GitHub-Delivery", delivery_id)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
            .status()
    }

    /// The `/metrics` text of the handler (`base`) or the consumer (`consumer_base`).
    async fn metrics(&self, base: &str) -> String {
        self.client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one sample of the consumer's `/metrics`, or 0 when it is absent.
    async fn consumer_metric(&self, sample: &str) -> f64 {
        sample_value(&self.metrics(&self.consumer_base).await, sample)
    }

    async fn count(&self) -> i64 {
        let mut connection = self.database.connect().await;
        sqlx::query("SELECT COUNT(*) FROM events")
            .fetch_one(&mut connection)
            .await
            .map(|row| row.get::<i64, _>(0))
            .unwrap_or(0)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stops.iter().for_each(CancellationToken::cancel);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_command_form_is_stored_byte_for_byte_as_a_form() {
    let pipeline = Pipeline::start().await;
    let body = b"team_id=T0001&channel_id=C2147483705&user_id=U2147483697&command=%2Fweather&text=94070&trigger_id=13345224609.738474920.8088930838d88f008e0";
    let ts = chrono::Utc::now().timestamp();
    let response = pipeline
        .client
        .post(format!("{}/webhooks/slash", pipeline.base))
        .header(
            "X-Slack-Signature",
            webhook_core::signature::sign_slack(SLASH_SECRET.as_bytes(), ts, body),
        )
        .header("X-Slack-Request-Timestamp", ts.to_string())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"status": "queued", "id": "13345224609.738474920.8088930838d88f008e0"})
    );
    let row = eventually("the form event to be stored", Duration::from_secs(20), || async {
        let mut connection = pipeline.database.connect().await;
        sqlx::query(
            "SELECT source, delivery_id, event_type, body, content_type, status FROM events WHERE source = 'slash'",
        )
        .fetch_optional(&mut connection)
        .await
        .ok()
        .flatten()
    })
    .await;
    assert_eq!(
        row.get::<String, _>("delivery_id"),
        "13345224609.738474920.8088930838d88f008e0"
    );
    assert_eq!(row.get::<String, _>("event_type"), "/weather");
    assert_eq!(row.get::<String, _>("body").as_bytes(), body);
    assert_eq!(
        row.get::<String, _>("content_type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(row.get::<String, _>("status"), "ignored");
    assert_eq!(pipeline.broker.take_all(".dead").await.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_events_are_each_stored_once_byte_for_byte() {
    let pipeline = Pipeline::start().await;
    let bodies: Vec<(String, Vec<u8>)> = (0..1000)
        .map(|n| {
            // A canonical sale (the consumer applies it): 100 + n cents in January 2026.
            let body = format!(
                r#"{{"type":"sale.completed","occurred_at":"2026-01-15T10:00:00Z","data":{{"order_id":"o-{n}","amount":{},"currency":"EUR"}},"n":{n},"text":"caf\u00e9 ☕ {n}","pad":"{}"}}"#,
                100 + n,
                "x".repeat(n % 300)
            );
            (format!("delivery-{n}"), body.into_bytes())
        })
        .collect();
    let statuses: Vec<reqwest::StatusCode> = futures_util::stream::iter(bodies.iter())
        .map(|(id, body)| pipeline.post(body, id))
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");

    eventually("1000 rows", Duration::from_secs(60), || async {
        (pipeline.count().await == 1000).then_some(())
    })
    .await;
    let mut connection = pipeline.database.connect().await;
    let rows = sqlx::query(
        "SELECT delivery_id, body, body_sha256, received_at <= stored_at AS ordered, retry_count, source, event_type FROM events",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1000);
    let sent: std::collections::HashMap<&str, &[u8]> =
        bodies.iter().map(|(id, body)| (id.as_str(), body.as_slice())).collect();
    for row in rows {
        let id: String = row.get("delivery_id");
        let body: String = row.get("body");
        let expected = sent[id.as_str()];
        assert_eq!(
            hex::encode(Sha256::digest(body.as_bytes())),
            hex::encode(Sha256::digest(expected)),
            "{id}"
        );
        assert_eq!(
            row.get::<String, _>("body_sha256"),
            hex::encode(Sha256::digest(expected))
        );
        assert!(row.get::<bool, _>("ordered"), "{id}: received_at > stored_at");
        assert_eq!(row.get::<u32, _>("retry_count"), 0);
        assert_eq!(row.get::<String, _>("source"), "default");
        assert_eq!(row.get::<String, _>("event_type"), "sale.completed");
    }
    // Each applied as a sale, with exact sums: 1000 orders of 100 to 1099 cents.
    let month = sqlx::query(
        "SELECT source, month, currency, CAST(orders AS SIGNED), CAST(gross_minor AS SIGNED), \
         CAST(net_minor AS SIGNED) FROM sales_per_month",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let month: Vec<(String, String, String, i64, i64, i64)> = month
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5)))
        .collect();
    assert_eq!(
        month,
        [(
            "default".to_owned(),
            "2026-01".to_owned(),
            "EUR".to_owned(),
            1000,
            599_500,
            599_500
        )]
    );
    // Everything was acked after the commit: nothing is left in the queue.
    eventually("the queue to drain", Duration::from_secs(10), || async {
        (pipeline.broker.depth(".events").await == Some(0)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_same_delivery_posted_three_times_is_one_row() {
    let pipeline = Pipeline::start().await;
    let body = br#"{"type":"sale.completed","occurred_at":"2026-01-15T10:00:00Z","data":{"order_id":"A-1","amount":100,"currency":"EUR"}}"#;
    for _ in 0..3 {
        assert_eq!(pipeline.post(body, "same-delivery").await, 200);
    }
    assert_eq!(pipeline.post(br#"{"type":"marker"}"#, "marker").await, 200);
    eventually("the marker and the event", Duration::from_secs(30), || async {
        (pipeline.count().await == 2).then_some(())
    })
    .await;
    let mut connection = pipeline.database.connect().await;
    // Both rows can be there before every copy is counted: with two workers, a later batch
    // (copies and the marker) can commit before the earlier one with the first copy.
    let duplicates: u32 = eventually("every copy to be counted", Duration::from_secs(30), || async {
        let mut connection = pipeline.database.connect().await;
        let duplicates: u32 = sqlx::query("SELECT duplicates FROM events WHERE delivery_id = 'same-delivery'")
            .fetch_one(&mut connection)
            .await
            .unwrap()
            .get(0);
        (duplicates >= 2).then_some(duplicates)
    })
    .await;
    assert_eq!(duplicates, 2);
    // One sale, counted once.
    let sales: (i64, i64) = sqlx::query_as("SELECT COUNT(*), CAST(SUM(amount_minor) AS SIGNED) FROM sales")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(sales, (1, 100));
}

/// Requests the handler turns away reach the `rejections` table through `{P}.rejected`, with
/// the reason and status the caller got (a source that is not configured as `(unknown)`), and
/// show in `vendor_health`; nothing of them reaches `events`.
#[tokio::test]
async fn rejected_requests_are_stored_in_the_rejection_log() {
    let pipeline = Pipeline::start().await;
    let body = br#"{"type":"sale.completed"}"#;
    let forged = pipeline
        .client
        .post(format!("{}/webhook", pipeline.base))
        .header("X-Hub-Signature-256", testkit::sign("not-the-secret", body))
        .header("X-GitHub-Delivery", "forged-1")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let unknown = pipeline
        .client
        .post(format!("{}/webhooks/nobody", pipeline.base))
        .header("X-Hub-Signature-256", testkit::sign(SECRET, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(pipeline.post(b"not json", "bad-json-1").await, 400);

    let rows: Vec<(String, String, u16, Option<String>)> =
        eventually("three rejection records", Duration::from_secs(30), || async {
            let mut connection = pipeline.database.connect().await;
            let rows: Vec<(String, String, u16, Option<String>)> =
                sqlx::query_as("SELECT source, reason, status, delivery_id FROM rejections ORDER BY status, source")
                    .fetch_all(&mut connection)
                    .await
                    .ok()?;
            (rows.len() >= 3).then_some(rows)
        })
        .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    let statuses: Vec<(&str, u16, Option<&str>)> = rows
        .iter()
        .map(|(source, _, status, delivery_id)| (source.as_str(), *status, delivery_id.as_deref()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("default", 400, Some("bad-json-1")),
            ("default", 401, Some("forged-1")),
            ("(unknown)", 404, None)
        ]
    );
    assert!(rows.iter().all(|(_, reason, _, _)| !reason.is_empty()), "{rows:?}");
    assert_eq!(pipeline.count().await, 0);
    let mut connection = pipeline.database.connect().await;
    let health: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT source, CAST(events AS SIGNED), CAST(rejected AS SIGNED) FROM vendor_health ORDER BY source",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    assert_eq!(health, [("(unknown)".to_owned(), 0, 1), ("default".to_owned(), 0, 2)]);
}

/// The value of `sample` (name and labels, exactly as exported) in a `/metrics` text; 0 when it
/// is absent.
fn sample_value(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// Every metric of both services, scraped after traffic whose outcome is known: stored,
/// ignored, refused and retried into the dead letters, resent, rejected three ways.
#[tokio::test]
async fn every_metric_counts_the_traffic_that_was_sent() {
    let pipeline = Pipeline::start().await;
    for n in 0..3 {
        let body = format!(
            r#"{{"type":"sale.completed","occurred_at":"2026-02-0{}T10:00:00Z","data":{{"order_id":"m-{n}","amount":250,"currency":"EUR"}}}}"#,
            n + 1
        );
        assert_eq!(pipeline.post(body.as_bytes(), &format!("sale-{n}")).await, 200);
    }
    assert_eq!(pipeline.post(br#"{"type":"ping"}"#, "ping-1").await, 200);
    // A sale without a usable amount: its processor refuses it, once and again on its retry.
    let refused = br#"{"type":"sale.completed","occurred_at":"2026-02-01T10:00:00Z","data":{"order_id":"m-x","amount":"lots","currency":"EUR"}}"#;
    assert_eq!(pipeline.post(refused, "refused-1").await, 200);
    let forged = pipeline
        .client
        .post(format!("{}/webhook", pipeline.base))
        .header("X-Hub-Signature-256", testkit::sign("not-the-secret", b"{}"))
        .body(&b"{}"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let unknown = pipeline
        .client
        .post(format!("{}/webhooks/nobody", pipeline.base))
        .body(&b"{}"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(pipeline.post(b"not json", "bad-json-1").await, 400);

    eventually("four rows and one dead letter", Duration::from_secs(30), || async {
        let dead = pipeline
            .consumer_metric("webhook_consumer_dead_lettered_total{reason=\"retries_exhausted\"}")
            .await;
        (pipeline.count().await == 4 && dead == 1.0).then_some(())
    })
    .await;
    // Sent again once the first copy is stored: a duplicate, processed again to no effect.
    let first = br#"{"type":"sale.completed","occurred_at":"2026-02-01T10:00:00Z","data":{"order_id":"m-0","amount":250,"currency":"EUR"}}"#;
    assert_eq!(pipeline.post(first, "sale-0").await, 200);
    eventually("the resend counted as a duplicate", Duration::from_secs(30), || async {
        (pipeline.consumer_metric("webhook_consumer_duplicates_total").await == 1.0).then_some(())
    })
    .await;
    eventually("the rejection log stored", Duration::from_secs(30), || async {
        (pipeline
            .consumer_metric("webhook_consumer_rejections_stored_total")
            .await
            == 3.0)
            .then_some(())
    })
    .await;

    let handler = pipeline.metrics(&pipeline.base).await;
    for (sample, expected) in [
        (
            "webhook_handler_requests_total{source=\"default\",outcome=\"queued\",reason=\"\"}",
            6.0,
        ),
        (
            "webhook_handler_requests_total{source=\"default\",outcome=\"rejected\",reason=\"signature_mismatch\"}",
            1.0,
        ),
        (
            "webhook_handler_requests_total{source=\"default\",outcome=\"rejected\",reason=\"not_json\"}",
            1.0,
        ),
        (
            "webhook_handler_requests_total{source=\"(unknown)\",outcome=\"rejected\",reason=\"unknown_source\"}",
            1.0,
        ),
        ("webhook_handler_enqueue_seconds_count", 6.0),
        // Every body read: the unknown source is turned away before its body.
        ("webhook_handler_body_bytes_count", 8.0),
        ("webhook_handler_in_flight_requests", 0.0),
        ("webhook_handler_broker_connected", 1.0),
        // Counted for queued requests, by the secret that verified them.
        (
            "webhook_handler_signatures_verified_total{source=\"default\",secret_index=\"0\"}",
            6.0,
        ),
        ("webhook_handler_rejections_dropped_total", 0.0),
    ] {
        assert_eq!(sample_value(&handler, sample), expected, "{sample} in\n{handler}");
    }
    assert!(
        sample_value(&handler, "webhook_handler_enqueue_seconds_sum") > 0.0,
        "{handler}"
    );

    let consumer = pipeline.metrics(&pipeline.consumer_base).await;
    for (sample, expected) in [
        ("webhook_consumer_events_stored_total{source=\"default\"}", 4.0),
        ("webhook_consumer_duplicates_total", 1.0),
        ("webhook_consumer_processed_total{outcome=\"processed\"}", 4.0),
        ("webhook_consumer_processed_total{outcome=\"ignored\"}", 1.0),
        ("webhook_consumer_processed_total{outcome=\"failed\"}", 2.0),
        ("webhook_consumer_retried_total{attempt=\"1\"}", 1.0),
        (
            "webhook_consumer_dead_lettered_total{reason=\"retries_exhausted\"}",
            1.0,
        ),
        ("webhook_consumer_dead_lettered_total{reason=\"poison\"}", 0.0),
        ("webhook_consumer_dead_letter_records_failed_total", 0.0),
        ("webhook_consumer_rejections_stored_total", 3.0),
        ("webhook_consumer_rejections_unreadable_total", 0.0),
        // Seven deliveries: six from the handler, one from the retry queue.
        ("webhook_consumer_batch_size_sum", 7.0),
        // One observation per committed row: four new, one duplicate.
        ("webhook_consumer_ingest_to_store_seconds_count", 5.0),
        ("webhook_consumer_broker_connected", 1.0),
        ("webhook_consumer_database_up", 1.0),
    ] {
        assert_eq!(sample_value(&consumer, sample), expected, "{sample} in\n{consumer}");
    }
    assert!(
        sample_value(&consumer, "webhook_consumer_commit_seconds_count") >= 2.0,
        "{consumer}"
    );
    // The lag is a sample each worker takes every few seconds: one taken while the retried
    // message was ready stands until the next.
    eventually("the lag sampled at 0", Duration::from_secs(30), || async {
        (pipeline.consumer_metric("webhook_consumer_lag_messages").await == 0.0).then_some(())
    })
    .await;
    let dead = pipeline.broker.take_all(".dead").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, refused);
}

/// Anyone who can publish to `{P}` can skip the handler; the consumer checks each message's
/// envelope as the handler would and dead-letters what fails as poison, beside good traffic.
#[tokio::test]
async fn a_message_published_past_the_handler_is_checked_like_a_request() {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    use lapin::types::{AMQPValue, LongString};
    use webhook_core::envelope::{Envelope, header};
    use webhook_core::ids::{DeliveryId, EventType, SourceName};

    let pipeline = Pipeline::start().await;
    let connection = pipeline.broker.connect().await;
    let channel = connection.create_channel().await.unwrap();
    channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let source = SourceName::parse("default").unwrap();
    let publish = |id: &str, event_type: &str, received_at: Option<&str>| {
        let envelope = Envelope::new(
            &source,
            &DeliveryId::parse(id).unwrap(),
            &EventType::parse("forged").unwrap(),
            chrono::Utc::now(),
            webhook_core::payload::BodyFormat::Json,
        );
        let properties = envelope.properties();
        let mut headers = properties.headers().clone().unwrap();
        headers.insert(
            header::EVENT_TYPE.into(),
            AMQPValue::LongString(LongString::from(event_type.as_bytes())),
        );
        if let Some(at) = received_at {
            headers.insert(
                header::RECEIVED_AT.into(),
                AMQPValue::LongString(LongString::from(at.as_bytes())),
            );
        }
        (properties.with_headers(headers), envelope.routing_key())
    };
    let messages = [
        publish("forged-type", "push\u{1b}[2J", None),
        publish("forged-future", "push", Some("9999-01-01T00:00:00Z")),
        publish("forged-past", "push", Some("1970-01-01T00:00:00Z")),
        publish("good-1", "push", None),
    ];
    for (properties, routing_key) in messages {
        channel
            .basic_publish(
                pipeline.broker.prefix().into(),
                routing_key.as_str().into(),
                BasicPublishOptions::default(),
                br#"{"type":"push"}"#,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let rows: Vec<(String, String, String)> = eventually("three poison letters", Duration::from_secs(30), || async {
        let mut connection = pipeline.database.connect().await;
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT delivery_id, reason, error FROM dead_letters ORDER BY delivery_id")
                .fetch_all(&mut connection)
                .await
                .ok()?;
        (rows.len() >= 3).then_some(rows)
    })
    .await;
    let summary: Vec<(&str, &str)> = rows
        .iter()
        .map(|(id, reason, _)| (id.as_str(), reason.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("forged-future", "poison"),
            ("forged-past", "poison"),
            ("forged-type", "poison")
        ]
    );
    assert!(rows[2].2.contains("event type contains control characters"), "{rows:?}");
    assert!(rows[0].2.contains("received-at"), "{rows:?}");
    eventually("the good message stored", Duration::from_secs(30), || async {
        (pipeline.count().await == 1).then_some(())
    })
    .await;
}
