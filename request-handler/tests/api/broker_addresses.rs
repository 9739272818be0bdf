//! Several broker addresses in `AMQP_URL`, and a channel the broker keeps nacking.

use std::time::Duration;

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use testkit::{TcpProxy, TestBroker, eventually};

use crate::helpers::{TestApp, env, json};

/// Posts a fresh signed event until one is answered 200, within `deadline`.
async fn eventually_queued(app: &TestApp, what: &str, deadline: Duration) {
    let mut n = 0u32;
    eventually(what, deadline, || {
        n += 1;
        let body = format!("{{\"type\":\"probe\",\"n\":{n}}}");
        async move { (app.post_signed(body.as_bytes(), &[]).await.status() == 200).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn a_dead_address_in_the_list_is_passed_over_and_the_next_is_used_when_the_first_goes() {
    let first = TcpProxy::start("127.0.0.1:5672").await;
    let second = TcpProxy::start("127.0.0.1:5672").await;
    first.cut();
    let broker = TestBroker::new();
    let env = env(&broker).with("AMQP_URL", format!("{},{}", first.amqp_url(), second.amqp_url()));
    let app = TestApp::spawn_with(broker, &env).await;
    // Whichever address it starts at, it ends up on the one that answers.
    app.wait_ready().await;
    eventually_queued(
        &app,
        "an event queued through the second address",
        Duration::from_secs(10),
    )
    .await;

    first.restore();
    second.cut();
    eventually_queued(
        &app,
        "an event queued through the first address",
        Duration::from_secs(20),
    )
    .await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(json(ready).await["broker"], "connected");
    assert!(first.connections() >= 1, "the first address was never used");
}

/// A classic queue bound to the prefix's exchange that takes nothing (`x-max-length` 0 with
/// `reject-publish`): while it is bound, the broker nacks every event published to the
/// exchange. Exclusive, so it goes with the test's connection whatever happens.
async fn bind_a_queue_that_refuses_everything(broker: &TestBroker) -> (lapin::Connection, String) {
    let connection = broker.connect().await;
    let channel = connection.create_channel().await.unwrap();
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    arguments.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
    let queue = format!("{}.refuses-everything", broker.prefix());
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.as_str().into(),
            broker.prefix().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    (connection, queue)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn nacks_replace_the_channel_turn_readyz_503_and_the_next_confirm_makes_it_ready_again() {
    let app = TestApp::spawn().await;
    assert_eq!(app.post_signed(br#"{"type":"before"}"#, &[]).await.status(), 200);
    let (connection, queue) = bind_a_queue_that_refuses_everything(&app.broker).await;

    for n in 0..4 {
        let body = format!("{{\"type\":\"refused\",\"n\":{n}}}");
        let response = app.post_signed(body.as_bytes(), &[]).await;
        assert_eq!(response.status(), 500, "publish {n} was not nacked");
        assert_eq!(json(response).await, serde_json::json!({"error": "not enqueued"}));
    }
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(json(ready).await["broker"], "failing");
    let text = eventually(
        "a channel replaced after the nacks",
        Duration::from_secs(10),
        || async {
            let text = app.get("/metrics").await.text().await.unwrap();
            (metric(&text, "webhook_handler_broker_channels_replaced_total") >= 1.0).then_some(text)
        },
    )
    .await;
    // Each refused publish is counted: nacked, or, when it was still in flight on the channel
    // being replaced, a broker error (the channel closed under it).
    let nacked = metric(
        &text,
        "webhook_handler_requests_total{source=\"default\",outcome=\"not_enqueued\",reason=\"nacked\"}",
    );
    let closed = metric(
        &text,
        "webhook_handler_requests_total{source=\"default\",outcome=\"not_enqueued\",reason=\"broker_error\"}",
    );
    assert_eq!(nacked + closed, 4.0, "{text}");
    assert!(nacked >= 1.0, "{text}");
    assert!(metric(&text, "webhook_handler_broker_nacks_total") >= nacked, "{text}");

    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_unbind(
            queue.as_str().into(),
            app.broker.prefix().into(),
            "#".into(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    eventually_queued(
        &app,
        "an event confirmed once nothing refuses it",
        Duration::from_secs(10),
    )
    .await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200, "{:?}", json(ready).await);
    let _ = connection.close(200, "OK".into()).await;
}
