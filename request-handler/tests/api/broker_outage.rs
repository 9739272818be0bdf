use std::time::{Duration, Instant};

use testkit::{TestBroker, eventually};

use crate::helpers::{TestApp, env, json};

const ENQUEUE_TIMEOUT: Duration = Duration::from_millis(1500);
/// Slack for scheduling on a loaded 2-core machine; the point is that it never hangs.
const MARGIN: Duration = Duration::from_secs(2);

#[tokio::test]
async fn with_no_broker_at_all_ingest_is_500_in_time_and_readyz_is_503() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let broker = TestBroker::new();
    let env = env(&broker)
        .with("AMQP_URL", format!("amqp://guest:guest@127.0.0.1:{port}/%2f"))
        .with("ENQUEUE_TIMEOUT_MS", ENQUEUE_TIMEOUT.as_millis());
    let app = TestApp::spawn_with(broker, &env).await;

    let started = Instant::now();
    let response = app.post_signed(br#"{"type":"x"}"#, &[]).await;
    assert_eq!(response.status(), 500);
    assert!(
        started.elapsed() < ENQUEUE_TIMEOUT + MARGIN,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(json(response).await, serde_json::json!({"error": "not enqueued"}));

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(json(ready).await["status"], "not ready");
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn when_the_broker_connection_is_cut_ingest_fails_fast_and_recovers_by_itself() {
    let enqueue_timeout = ENQUEUE_TIMEOUT.as_millis().to_string();
    let (proxy, app) = TestApp::behind_a_proxy(&[("ENQUEUE_TIMEOUT_MS", &enqueue_timeout)]).await;
    assert_eq!(app.post_signed(br#"{"n":1}"#, &[]).await.status(), 200);

    proxy.cut();
    eventually("readyz to report the lost broker", Duration::from_secs(10), || async {
        (app.get("/readyz").await.status() == 503).then_some(())
    })
    .await;
    for n in 2..5 {
        let started = Instant::now();
        let body = format!("{{\"n\":{n}}}");
        let response = app.post_signed(body.as_bytes(), &[]).await;
        assert_eq!(response.status(), 500);
        assert!(
            started.elapsed() < ENQUEUE_TIMEOUT + MARGIN,
            "took {:?}",
            started.elapsed()
        );
    }

    proxy.restore();
    app.wait_ready().await;
    assert_eq!(app.post_signed(br#"{"n":5}"#, &[]).await.status(), 200);
    let bodies: Vec<Vec<u8>> = app
        .broker
        .take_all(".events")
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, vec![br#"{"n":1}"#.to_vec(), br#"{"n":5}"#.to_vec()]);
}

#[tokio::test]
async fn an_unroutable_message_is_500_even_though_the_broker_acks_it() {
    let app = TestApp::spawn().await;
    // Without the events queue the exchange routes nowhere: the broker returns the mandatory
    // message and still acks it.
    let connection = app.broker.connect().await;
    let channel = connection.create_channel().await.unwrap();
    let queue = format!("{}.events", app.broker.prefix());
    channel
        .queue_delete(queue.as_str().into(), lapin::options::QueueDeleteOptions::default())
        .await
        .unwrap();
    let response = app.post_signed(br#"{"type":"lost"}"#, &[]).await;
    assert_eq!(response.status(), 500);
    assert_eq!(json(response).await, serde_json::json!({"error": "not enqueued"}));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("outcome=\"not_enqueued\",reason=\"unroutable\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn requests_during_an_outage_do_not_cut_the_reconnect_backoff_short() {
    let (proxy, app) = TestApp::behind_a_proxy(&[]).await;
    proxy.cut();
    eventually("readyz to report the lost broker", Duration::from_secs(10), || async {
        (app.get("/readyz").await.status() == 503).then_some(())
    })
    .await;
    let before = proxy.connections();
    for n in 0..100 {
        let body = format!("{{\"n\":{n}}}");
        assert_eq!(app.post_signed(body.as_bytes(), &[]).await.status(), 500);
    }
    // Each request that finds no connection asks for a check; the attempts still follow the
    // backoff (100 ms doubling), not the requests.
    let attempts = proxy.connections() - before;
    assert!(attempts < 20, "{attempts} connection attempts for 100 requests");

    proxy.restore();
    app.wait_ready().await;
    assert_eq!(app.post_signed(br#"{"n":"after"}"#, &[]).await.status(), 200);
}
