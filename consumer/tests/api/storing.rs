use std::collections::HashSet;

use crate::helpers::{Services, TestApp, envelope, sha256};

#[tokio::test]
async fn published_events_are_stored_byte_for_byte_then_acked() {
    let services = Services::new();
    let app = TestApp::spawn(&services.env()).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let sender = services.sender().await;

    let bodies: Vec<String> = (0..20)
        .map(|n| format!("{{ \"n\" : {n},\n  \"text\": \"Grüße 🎉 \\u00e9\", \"list\": [1, 2.50, null] }}"))
        .collect();
    let mut published = Vec::new();
    for (n, body) in bodies.iter().enumerate() {
        let envelope = envelope("shop", &format!("delivery-{n:02}"), "order.created");
        sender.event(&envelope, body.as_bytes()).await;
        published.push(envelope);
    }

    let rows = services.rows_when(20).await;
    for (row, (envelope, body)) in rows.iter().zip(published.iter().zip(&bodies)) {
        assert_eq!(row.source, "shop");
        assert_eq!(row.delivery_id, envelope.delivery_id);
        assert_eq!(row.event_type, "order.created");
        assert_eq!(row.body.as_bytes(), body.as_bytes(), "body changed");
        assert_eq!(row.body_sha256, sha256(body.as_bytes()));
        assert_eq!(sha256(row.body.as_bytes()), sha256(body.as_bytes()));
        assert_eq!(row.received_at, envelope.received_at.naive_utc());
        assert!(row.received_at <= row.stored_at, "{row:?}");
        assert_eq!((row.retry_count, row.duplicates), (0, 0));
    }
    app.metric_reaches("webhook_consumer_events_stored_total{source=\"shop\"}", 20.0)
        .await;
    assert_eq!(app.metric("webhook_consumer_database_up").await, 1.0);
    assert_eq!(app.metric("webhook_consumer_broker_connected").await, 1.0);

    // Acked: after a clean stop nothing comes back to the queue (unacked deliveries would).
    app.stop().await;
    assert_eq!(services.broker.depth(".events").await, Some(0));
    sender.close().await;
}

#[tokio::test]
async fn the_same_delivery_three_times_is_one_row_with_two_duplicates() {
    let services = Services::new();
    let app = TestApp::spawn(&services.env()).await;
    let sender = services.sender().await;

    // Published back to back: most likely in one batch (duplicates within the batch).
    let event = envelope("github", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "push");
    for _ in 0..3 {
        sender.event(&event, br#"{"ref":"main"}"#).await;
    }
    testkit::eventually("two duplicates", crate::helpers::SOON, || async {
        let rows = services.rows().await;
        (rows.len() == 1 && rows[0].duplicates == 2).then_some(())
    })
    .await;
    app.metric_reaches("webhook_consumer_duplicates_total", 2.0).await;

    // Once more, surely in a batch of its own (already stored).
    sender.event(&event, br#"{"ref":"main"}"#).await;
    testkit::eventually("three duplicates", crate::helpers::SOON, || async {
        let rows = services.rows().await;
        (rows.len() == 1 && rows[0].duplicates == 3).then_some(())
    })
    .await;
    app.metric_reaches("webhook_consumer_duplicates_total", 3.0).await;
    app.metric_reaches("webhook_consumer_events_stored_total{source=\"github\"}", 1.0)
        .await;

    // The same delivery id from another source is another event.
    sender
        .event(
            &envelope("gitlab", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "push"),
            b"{}",
        )
        .await;
    services.rows_when(2).await;
    app.stop().await;
    sender.close().await;
}

#[tokio::test]
async fn two_consumers_on_one_queue_store_every_event_once() {
    let services = Services::new();
    let env = services.env().with("PREFETCH", 50).with("BATCH_SIZE", 50);
    let first = TestApp::spawn(&env).await;
    let second = TestApp::spawn(&env).await;
    let sender = services.sender().await;

    for n in 0..500 {
        let source = ["stripe", "shopify", "github"][n % 3];
        sender
            .event(
                &envelope(source, &format!("id-{n}"), "sale"),
                format!("{{\"n\":{n}}}").as_bytes(),
            )
            .await;
    }
    let rows = services.rows_when(500).await;
    let ids: HashSet<&str> = rows.iter().map(|row| row.delivery_id.as_str()).collect();
    assert_eq!(ids.len(), 500);
    assert!(rows.iter().all(|row| row.duplicates == 0));

    // A row is visible at its commit, a moment before its consumer counts it.
    let (a, b) = testkit::eventually("500 stored in the metrics", crate::helpers::SOON, || async {
        let (a, b) = (stored(&first).await, stored(&second).await);
        assert!(a + b <= 500.0, "more stored than sent: {a} + {b}");
        (a + b == 500.0).then_some((a, b))
    })
    .await;
    assert!(a > 0.0 && b > 0.0, "one consumer did all the work: {a} + {b}");

    first.stop().await;
    second.stop().await;
    assert_eq!(services.broker.depth(".events").await, Some(0));
    sender.close().await;
}

async fn stored(app: &TestApp) -> f64 {
    let mut total = 0.0;
    for source in ["stripe", "shopify", "github"] {
        total += app
            .metric(&format!("webhook_consumer_events_stored_total{{source=\"{source}\"}}"))
            .await;
    }
    total
}

#[tokio::test]
async fn metrics_and_health_are_served() {
    let services = Services::new();
    let app = TestApp::spawn(&services.env()).await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "ready", "broker": "connected", "database": "up"})
    );
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    for name in [
        "webhook_consumer_duplicates_total",
        "webhook_consumer_batch_size",
        "webhook_consumer_commit_seconds",
        "webhook_consumer_ingest_to_store_seconds",
        "webhook_consumer_broker_connected 1",
        "webhook_consumer_database_up 1",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    app.stop().await;
}
