use std::time::{Duration, Instant};

use lapin::BasicProperties;
use testkit::{TcpProxy, eventually};

use crate::helpers::{SOON, Services, TestApp, envelope};

/// `host:port` of the test database server.
fn database_server_addr() -> String {
    let server = testkit::database_server_url();
    let authority = server.trim_start_matches("mysql://");
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    host.split('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn while_the_database_is_unreachable_nothing_is_acked_and_everything_is_stored_once_after() {
    let services = Services::new();
    let proxy = TcpProxy::start(&database_server_addr()).await;
    // Two workers with ten deliveries in hand each at most: at least ten of the outage wait
    // in the queue, which the lag gauge shows.
    let env = services
        .env()
        .with("DATABASE_URL", services.database.url_through(&proxy))
        .with("CONSUMER_WORKERS", 2)
        .with("PREFETCH", 10)
        .with("BATCH_SIZE", 10);
    let app = TestApp::spawn(&env).await;
    let sender = services.sender().await;
    sender.event(&envelope("shop", "warm-up", "order"), b"{}").await;
    services.rows_when(1).await;
    // Its batch is acked once its ledger row is written too: cut only after that, so that no
    // worker still holds it.
    services.ledger_recorded(1).await;

    proxy.cut();
    for n in 0..30 {
        sender
            .event(
                &envelope("shop", &format!("during-{n:02}"), "order"),
                b"{\"outage\":true}",
            )
            .await;
    }
    app.wait_status("/readyz", 503).await;
    let body: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(body["database"], "down");
    assert_eq!(body["broker"], "connected");
    assert_eq!(app.metric("webhook_consumer_database_up").await, 0.0);
    assert_eq!(services.rows().await.len(), 1, "stored during the outage");
    assert_eq!(app.metric("webhook_consumer_retried_total{attempt=\"1\"}").await, 0.0);
    // Sampled every 5 s, each sample allowed 2 s: a loaded broker can skip a few. The gauge
    // must say what the broker says is ready: ten to twenty, the workers holding ten to twenty
    // between them, not always exactly ten (a CI run saw 11 ready, the two workers holding 19,
    // each within its prefetch). Each value seen is printed, so that a failure shows what the
    // gauge said instead.
    let last_seen = std::sync::Mutex::new(None);
    eventually("the lag gauge to show the ready messages", 2 * SOON, || async {
        let lag = app.metric("webhook_consumer_lag_messages").await;
        let ready = services.broker.depth(".events").await;
        if last_seen.lock().unwrap().replace((lag, ready)) != Some((lag, ready)) {
            eprintln!("lag gauge {lag}, ready in .events {ready:?}");
        }
        let ready = ready.map(f64::from);
        ((10.0..=20.0).contains(&lag) && Some(lag) == ready).then_some(())
    })
    .await;

    proxy.restore();
    let rows = services.rows_when(31).await;
    assert!(
        rows.iter().all(|row| row.duplicates == 0 && row.retry_count == 0),
        "{rows:?}"
    );
    app.wait_ready().await;
    assert_eq!(app.metric("webhook_consumer_database_up").await, 1.0);
    app.metric_reaches("webhook_consumer_events_stored_total{source=\"shop\"}", 31.0)
        .await;
    assert_eq!(services.broker.depth(".retry.1").await, Some(0));
    assert_eq!(services.broker.depth(".dead").await, Some(0));
    eventually("the lag gauge to fall to 0", SOON, || async {
        (app.metric("webhook_consumer_lag_messages").await == 0.0).then_some(())
    })
    .await;

    app.stop().await;
    assert_eq!(services.broker.depth(".events").await, Some(0));
    sender.close().await;
}

#[tokio::test]
async fn stopping_while_the_database_is_down_leaves_the_held_batch_to_the_broker() {
    let services = Services::new();
    let proxy = TcpProxy::start(&database_server_addr()).await;
    let grace = Duration::from_millis(1000);
    let env = services
        .env()
        .with("DATABASE_URL", services.database.url_through(&proxy))
        .with("SHUTDOWN_GRACE_MS", grace.as_millis());
    let app = TestApp::spawn(&env).await;
    let sender = services.sender().await;

    proxy.cut();
    for n in 0..10 {
        sender
            .event(&envelope("shop", &format!("held-{n}"), "order"), b"{}")
            .await;
    }
    app.wait_status("/readyz", 503).await;

    // The stop waits out the grace for the held batch, then closes without acking.
    let started = Instant::now();
    app.stop().await;
    assert!(
        started.elapsed() < grace + Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // The broker requeues the unacked deliveries once it has closed the channel.
    testkit::eventually("every delivery back in the queue", SOON, || async {
        (services.broker.depth(".events").await == Some(10)).then_some(())
    })
    .await;
    assert_eq!(services.rows().await.len(), 0);

    // The next consumer stores them all, once.
    proxy.restore();
    let app = TestApp::spawn(&env).await;
    let rows = services.rows_when(10).await;
    assert!(rows.iter().all(|row| row.duplicates == 0));
    app.stop().await;
    assert_eq!(services.broker.depth(".events").await, Some(0));
    sender.close().await;
}

#[tokio::test]
async fn a_dead_letter_is_acked_even_when_the_database_cannot_record_it() {
    let services = Services::new();
    let proxy = TcpProxy::start(&database_server_addr()).await;
    let env = services
        .env()
        .with("DATABASE_URL", services.database.url_through(&proxy));
    let app = TestApp::spawn(&env).await;
    let sender = services.sender().await;

    proxy.cut();
    sender
        .raw("shop.order", BasicProperties::default(), b"no headers, not json")
        .await;
    testkit::eventually("the record counted as failed", SOON, || async {
        (app.metric("webhook_consumer_dead_letter_records_failed_total").await == 1.0).then_some(())
    })
    .await;
    // Safe in the dead-letter queue, and acked.
    assert_eq!(services.broker.depth(".dead").await, Some(1));
    proxy.restore();
    app.stop().await;
    assert_eq!(services.broker.depth(".events").await, Some(0));
    assert!(services.dead_letter_rows().await.is_empty());
    sender.close().await;
}
