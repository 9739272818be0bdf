//! Each HTTP worker's own broker connection (`PUBLISH_PER_WORKER`): publishes go through it once
//! it is up, what they carry arrives whole and once, a return is matched to its own request
//! among many in flight, and a lost connection costs only what was in flight on it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use lapin::options::{QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use testkit::private::TempDir;
use testkit::{TestBroker, eventually};
use webhook_core::envelope::Envelope;

use crate::helpers::{TestApp, env, json};

const WORKER_CONNECTIONS: &str = "webhook_handler_broker_worker_connections";
const WORKER_PUBLISHES: &str = "webhook_handler_broker_worker_publishes_total";
const ENQUEUE_TIMEOUT: Duration = Duration::from_millis(1500);
/// Slack for scheduling on a loaded 2-core machine; the point is that it never hangs.
const MARGIN: Duration = Duration::from_secs(2);

fn enqueue_timeout_ms() -> String {
    ENQUEUE_TIMEOUT.as_millis().to_string()
}

/// Posts `count` signed deliveries of event type `event_type` at once; their delivery ids are
/// `{event_type}-{n}`. Returns each one's status, in order.
async fn post_at_once(app: &TestApp, event_type: &str, count: usize) -> Vec<u16> {
    let posts = (0..count).map(|n| async move {
        let body = format!("{{\"n\":{n}}}");
        let delivery = format!("{event_type}-{n}");
        app.post_signed(
            body.as_bytes(),
            &[("X-GitHub-Event", event_type), ("X-GitHub-Delivery", &delivery)],
        )
        .await
        .status()
        .as_u16()
    });
    join_all(posts).await
}

fn delivery_ids(taken: &[testkit::Taken]) -> Vec<String> {
    taken
        .iter()
        .map(|message| Envelope::from_properties(&message.properties).unwrap().delivery_id)
        .collect()
}

#[tokio::test]
async fn publishes_go_through_a_workers_own_connection_and_each_arrives_once() {
    let (proxy, app) = TestApp::behind_a_proxy(&[]).await;
    // Both workers connect once the shared connection is up, before any request.
    eventually("both workers' own connections", Duration::from_secs(10), || async {
        (app.metric(WORKER_CONNECTIONS).await == 2.0).then_some(())
    })
    .await;
    assert_eq!(proxy.connections(), 3, "the shared connection and one per worker");
    let warm_ups = app.until_a_worker_connection_is_up().await;

    let before = app.metric(WORKER_PUBLISHES).await;
    let statuses = post_at_once(&app, "burst", 40).await;
    assert_eq!(statuses, vec![200; 40]);
    // Every one of them through a worker's own connection, none through the shared one.
    assert_eq!(app.metric(WORKER_PUBLISHES).await - before, 40.0);
    let taken = app.broker.take_all(".events").await;
    let ids = delivery_ids(&taken);
    let burst: Vec<&String> = ids.iter().filter(|id| id.starts_with("burst-")).collect();
    assert_eq!(burst.len(), 40, "{ids:?}");
    let distinct: BTreeSet<&String> = burst.iter().copied().collect();
    assert_eq!(distinct.len(), 40, "a delivery twice: {ids:?}");
    assert_eq!(ids.len(), 40 + warm_ups, "{ids:?}");
    for message in &taken {
        let envelope = Envelope::from_properties(&message.properties).unwrap();
        if let Some(n) = envelope.delivery_id.strip_prefix("burst-") {
            assert_eq!(message.body, format!("{{\"n\":{n}}}").as_bytes());
            assert_eq!(envelope.event_type, "burst");
        }
    }
}

#[tokio::test]
async fn a_return_among_many_in_flight_fails_its_own_request_only() {
    // One worker, so that every publish below goes through its connection.
    let broker = TestBroker::new();
    let env = env(&broker).with("HANDLER_WORKERS", 1);
    let app = TestApp::spawn_with(broker, &env).await;
    app.wait_ready().await;
    app.until_a_worker_connection_is_up().await;
    // Only event type "kept" routes anywhere: the events queue goes, a queue of the test's
    // own is bound to `default.kept`. Every "lost" publish is returned, then acked.
    let connection = app.broker.connect().await;
    let channel = connection.create_channel().await.unwrap();
    let prefix = app.broker.prefix().to_owned();
    let events = format!("{prefix}.events");
    channel
        .queue_delete(events.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let kept = format!("{prefix}.kept");
    channel
        .queue_declare(
            kept.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            kept.as_str().into(),
            prefix.as_str().into(),
            "default.kept".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let before = app.metric(WORKER_PUBLISHES).await;
    let (kept_statuses, lost_statuses) = tokio::join!(post_at_once(&app, "kept", 30), post_at_once(&app, "lost", 30));
    assert_eq!(lost_statuses, vec![500; 30], "a returned message answered 200");
    assert_eq!(kept_statuses, vec![200; 30], "a queued message answered 500");
    assert_eq!(app.metric(WORKER_PUBLISHES).await - before, 60.0);
    let taken = app.broker.take_all(".kept").await;
    let ids: BTreeSet<String> = delivery_ids(&taken).into_iter().collect();
    let expected: BTreeSet<String> = (0..30).map(|n| format!("kept-{n}")).collect();
    assert_eq!(ids, expected);
    let unroutable = app
        .metric("webhook_handler_requests_total{source=\"default\",outcome=\"not_enqueued\",reason=\"unroutable\"}")
        .await;
    assert_eq!(unroutable, 30.0);
    // Returns do not cost the connection.
    assert!(app.metric(WORKER_CONNECTIONS).await >= 1.0);
    channel
        .queue_delete(kept.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_cut_worker_connection_fails_fast_and_the_worker_reconnects_when_the_broker_is_back() {
    let (proxy, app) = TestApp::behind_a_proxy(&[("ENQUEUE_TIMEOUT_MS", &enqueue_timeout_ms())]).await;
    app.until_a_worker_connection_is_up().await;

    proxy.cut();
    eventually(
        "the workers' connections to be counted gone",
        Duration::from_secs(10),
        || async { (app.metric(WORKER_CONNECTIONS).await == 0.0).then_some(()) },
    )
    .await;
    for n in 0..3 {
        let started = Instant::now();
        let body = format!("{{\"cut\":{n}}}");
        assert_eq!(app.post_signed(body.as_bytes(), &[]).await.status(), 500);
        assert!(
            started.elapsed() < ENQUEUE_TIMEOUT + MARGIN,
            "took {:?}",
            started.elapsed()
        );
    }

    proxy.restore();
    app.wait_ready().await;
    app.until_a_worker_connection_is_up().await;
    let after = post_at_once(&app, "after", 10).await;
    assert_eq!(after, vec![200; 10]);
    let ids = delivery_ids(&app.broker.take_all(".events").await);
    for n in 0..10 {
        assert!(ids.contains(&format!("after-{n}")), "after-{n} missing: {ids:?}");
    }
}

#[tokio::test]
async fn a_stalled_worker_connection_fails_what_is_in_flight_in_time_and_is_replaced() {
    let (proxy, app) =
        TestApp::behind_a_proxy(&[("HANDLER_WORKERS", "1"), ("ENQUEUE_TIMEOUT_MS", &enqueue_timeout_ms())]).await;
    app.until_a_worker_connection_is_up().await;

    // The broker goes silent with the connections open: the publishes in flight wait for
    // confirms that do not come.
    proxy.stall();
    let started = Instant::now();
    let statuses = post_at_once(&app, "stalled", 5).await;
    assert_eq!(statuses, vec![500; 5]);
    assert!(
        started.elapsed() < ENQUEUE_TIMEOUT + MARGIN,
        "took {:?}",
        started.elapsed()
    );
    // With confirms overdue past the confirm timeout, the connection is dropped.
    eventually(
        "the stalled worker connection dropped",
        Duration::from_secs(10),
        || async { (app.metric(WORKER_CONNECTIONS).await == 0.0).then_some(()) },
    )
    .await;

    proxy.restore();
    app.wait_ready().await;
    app.until_a_worker_connection_is_up().await;
    let before = app.metric(WORKER_PUBLISHES).await;
    assert_eq!(post_at_once(&app, "after", 5).await, vec![200; 5]);
    assert_eq!(app.metric(WORKER_PUBLISHES).await - before, 5.0);
    let ids = delivery_ids(&app.broker.take_all(".events").await);
    for n in 0..5 {
        assert!(ids.contains(&format!("after-{n}")), "after-{n} missing: {ids:?}");
    }
}

#[tokio::test]
async fn a_spooling_publish_past_its_own_deadline_fails_alone_and_the_connection_stays() {
    const SECRET: &str = "spool-secret";
    let dir = TempDir::new("worker-spool");
    let sources = dir.write(
        "sources.toml",
        &format!(
            "[[source]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [\"{SECRET}\"]\nwhen_broker_down = \"spool\"\n"
        ),
    );
    let spool = dir.path().join("spool");
    // A spooling publish waits 200 ms; the connection is given ENQUEUE_TIMEOUT_MS (5 s).
    let (proxy, app) = TestApp::behind_a_proxy(&[
        ("HANDLER_WORKERS", "1"),
        ("SOURCES_FILE", sources.to_str().unwrap()),
        ("SPOOL_DIR", spool.to_str().unwrap()),
        ("SPOOL_PUBLISH_TIMEOUT_MS", "200"),
    ])
    .await;
    eventually("the worker's own connection", Duration::from_secs(10), || async {
        (app.metric(WORKER_CONNECTIONS).await == 1.0).then_some(())
    })
    .await;
    let post = |body: &'static [u8], delivery: &'static str| {
        let signature = testkit::sign(SECRET, body);
        let app = &app;
        async move {
            app.post(
                "/webhooks/gh",
                body,
                &[
                    ("X-Hub-Signature-256", signature.as_str()),
                    ("X-GitHub-Delivery", delivery),
                    ("X-GitHub-Event", "push"),
                ],
            )
            .await
        }
    };
    let connections = proxy.connections();

    proxy.stall();
    let response = post(br#"{"stalled":1}"#, "stalled-1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["status"], "spooled");
    // A second of silence, well inside ENQUEUE_TIMEOUT_MS: the connection is kept.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert_eq!(
            app.metric(WORKER_CONNECTIONS).await,
            1.0,
            "dropped for one late confirm"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.restore();

    let before = app.metric(WORKER_PUBLISHES).await;
    let response = post(br#"{"after":1}"#, "after-1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["status"], "queued");
    assert_eq!(app.metric(WORKER_PUBLISHES).await - before, 1.0);
    assert_eq!(app.metric(WORKER_CONNECTIONS).await, 1.0);
    assert_eq!(proxy.connections(), connections, "a connection was opened again");
}

#[tokio::test]
async fn with_publish_per_worker_false_every_publish_uses_the_shared_connection() {
    let (proxy, app) = TestApp::behind_a_proxy(&[("PUBLISH_PER_WORKER", "false")]).await;
    assert_eq!(post_at_once(&app, "shared", 20).await, vec![200; 20]);
    assert_eq!(app.metric(WORKER_CONNECTIONS).await, 0.0);
    assert_eq!(app.metric(WORKER_PUBLISHES).await, 0.0);
    assert_eq!(proxy.connections(), 1);
    assert_eq!(app.broker.take_all(".events").await.len(), 20);
}
