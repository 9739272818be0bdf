use lapin::BasicProperties;
use webhook_core::envelope::header::{DEAD_LETTERED_AT, ERROR, RETRY_COUNT};

use crate::helpers::{SOON, Services, TestApp, envelope, header};

#[tokio::test]
async fn poison_is_dead_lettered_with_an_error_and_later_events_are_still_stored() {
    let services = Services::new();
    let app = TestApp::spawn(&services.env()).await;
    let sender = services.sender().await;

    sender.event(&envelope("shop", "before", "order"), b"{}").await;
    // No headers at all, and a body that is not JSON.
    sender
        .raw("shop.order", BasicProperties::default(), b"\x00not json at all\xff")
        .await;
    // A proper envelope, but the body is not JSON.
    sender
        .event(&envelope("shop", "broken-body", "order"), b"{\"unterminated\": ")
        .await;
    sender
        .event(&envelope("shop", "after", "order"), b"{\"ok\":true}")
        .await;

    let rows = services.rows_when(2).await;
    let ids: Vec<&str> = rows.iter().map(|row| row.delivery_id.as_str()).collect();
    assert_eq!(ids, vec!["after", "before"]);

    testkit::eventually("two dead letters", SOON, || async {
        let depth = services.broker.depth(".dead").await.unwrap_or(0);
        (depth == 2).then_some(())
    })
    .await;
    let mut dead = services.broker.take_all(".dead").await;
    // The one without a message id first.
    dead.sort_by_key(|letter| letter.properties.message_id().is_some());
    let no_headers = &dead[0];
    assert_eq!(no_headers.body, b"\x00not json at all\xff");
    assert_eq!(
        header(&no_headers.properties, ERROR).as_deref(),
        Some("poison: missing headers")
    );
    assert!(header(&no_headers.properties, DEAD_LETTERED_AT).is_some());
    let bad_body = &dead[1];
    assert_eq!(bad_body.body, b"{\"unterminated\": ");
    let error = header(&bad_body.properties, ERROR).unwrap();
    assert!(error.starts_with("poison: body is not valid JSON"), "{error}");
    assert_eq!(
        bad_body.properties.message_id().as_ref().map(|id| id.as_str()),
        Some("broken-body")
    );

    app.metric_reaches("webhook_consumer_dead_lettered_total{reason=\"poison\"}", 2.0)
        .await;

    // Each is recorded in dead_letters with what its envelope or headers said.
    let records = testkit::eventually("two dead letter records", SOON, || async {
        let records = services.dead_letter_rows().await;
        (records.len() == 2).then_some(records)
    })
    .await;
    let mut records: Vec<(String, String, String, String, String, u32)> = records
        .into_iter()
        .map(|r| (r.source, r.delivery_id, r.event_type, r.reason, r.error, r.retry_count))
        .collect();
    records.sort();
    assert_eq!(
        records[0],
        (
            "(unknown)".to_owned(),
            String::new(),
            "(unknown)".to_owned(),
            "poison".to_owned(),
            "poison: missing headers".to_owned(),
            0
        )
    );
    assert_eq!(
        (
            &records[1].0[..],
            &records[1].1[..],
            &records[1].2[..],
            &records[1].3[..]
        ),
        ("shop", "broken-body", "order", "poison")
    );
    assert!(
        records[1].4.starts_with("poison: body is not valid JSON"),
        "{records:?}"
    );
    assert_eq!(
        app.metric("webhook_consumer_dead_letter_records_failed_total").await,
        0.0
    );
    app.stop().await;
    assert_eq!(services.broker.depth(".events").await, Some(0));
    sender.close().await;
}

#[tokio::test]
async fn a_row_the_database_refuses_is_retried_then_dead_lettered_and_the_rest_commit() {
    let services = Services::new();
    let env = services
        .env()
        .with("MAX_RETRIES", 1)
        .with("RETRY_DELAYS", "100ms")
        .with("BATCH_WAIT_MS", 200);
    let app = TestApp::spawn(&env).await;
    // A rule the table did not have when these events were published: the database now
    // refuses some rows (MariaDB: 4025 CONSTRAINT failed, SQLSTATE 23000; MySQL: 3819).
    services
        .execute("ALTER TABLE events ADD CONSTRAINT no_refused_events CHECK (event_type <> 'refused')")
        .await;
    let sender = services.sender().await;

    for n in 0..10 {
        let event_type = if n == 3 || n == 7 { "refused" } else { "order" };
        sender
            .event(
                &envelope("shop", &format!("e{n}"), event_type),
                format!("{{\"n\":{n}}}").as_bytes(),
            )
            .await;
    }

    // The good ones commit although they shared a batch with the refused ones.
    let rows = services.rows_when(8).await;
    assert!(rows.iter().all(|row| row.event_type == "order"));

    testkit::eventually("two dead letters", SOON, || async {
        let depth = services.broker.depth(".dead").await.unwrap_or(0);
        (depth == 2).then_some(())
    })
    .await;
    let mut dead = services.broker.take_all(".dead").await;
    dead.sort_by_key(|letter| letter.body.clone());
    for (letter, (id, body)) in dead.iter().zip([("e3", "{\"n\":3}"), ("e7", "{\"n\":7}")]) {
        assert_eq!(letter.body, body.as_bytes());
        assert_eq!(letter.properties.message_id().as_ref().map(|id| id.as_str()), Some(id));
        assert_eq!(header(&letter.properties, RETRY_COUNT).as_deref(), Some("1"));
        let error = header(&letter.properties, ERROR).unwrap();
        assert!(error.starts_with("retries exhausted after 1: "), "{error}");
        assert!(error.contains("no_refused_events"), "{error}");
    }
    app.metric_reaches("webhook_consumer_retried_total{attempt=\"1\"}", 2.0)
        .await;
    app.metric_reaches(
        "webhook_consumer_dead_lettered_total{reason=\"retries_exhausted\"}",
        2.0,
    )
    .await;
    assert_eq!(services.rows().await.len(), 8);
    app.stop().await;
    assert_eq!(services.broker.depth(".events").await, Some(0));
    assert_eq!(services.broker.depth(".retry.1").await, Some(0));
    sender.close().await;
}

#[tokio::test]
async fn a_body_larger_than_max_allowed_packet_is_dead_lettered_before_it_is_tried() {
    let services = Services::new();
    // Retries allowed: a message that can never be stored does not spend them.
    let env = services.env().with("MAX_RETRIES", 3).with("BATCH_WAIT_MS", 500);
    let app = TestApp::spawn(&env).await;
    let sender = services.sender().await;
    let max_packet = max_allowed_packet(&services).await;
    let huge = format!(
        "{{\"pad\":\"{}\"}}",
        "x".repeat(usize::try_from(max_packet).unwrap() + 1024)
    );

    sender.event(&envelope("shop", "small-1", "order"), b"{}").await;
    sender.event(&envelope("shop", "huge", "order"), huge.as_bytes()).await;
    sender.event(&envelope("shop", "small-2", "order"), b"{}").await;

    let rows = services.rows_when(2).await;
    assert_eq!(rows[0].delivery_id, "small-1");
    assert_eq!(rows[1].delivery_id, "small-2");
    testkit::eventually("the huge one dead-lettered", SOON, || async {
        (services.broker.depth(".dead").await == Some(1)).then_some(())
    })
    .await;
    let dead = services.broker.take_all(".dead").await;
    assert_eq!(dead[0].body.len(), huge.len());
    let error = header(&dead[0].properties, ERROR).unwrap();
    assert!(
        error.starts_with("too large for the database: its row needs ")
            && error.ends_with(&format!(
                " bytes in one packet, max_allowed_packet is {max_packet} bytes"
            )),
        "{error}"
    );
    assert_eq!(header(&dead[0].properties, RETRY_COUNT).as_deref(), Some("0"));
    app.metric_reaches("webhook_consumer_dead_lettered_total{reason=\"too_large\"}", 1.0)
        .await;
    assert_eq!(app.metric("webhook_consumer_retried_total{attempt=\"1\"}").await, 0.0);
    assert_eq!(
        app.metric("webhook_consumer_database_max_allowed_packet_bytes").await,
        max_packet as f64
    );
    let records = testkit::eventually("its record", SOON, || async {
        let records = services.dead_letter_rows().await;
        (records.len() == 1).then_some(records)
    })
    .await;
    assert_eq!(
        (records[0].delivery_id.as_str(), records[0].reason.as_str()),
        ("huge", "too_large")
    );

    // The consumer is still healthy and storing.
    app.wait_ready().await;
    sender.event(&envelope("shop", "small-3", "order"), b"{}").await;
    services.rows_when(3).await;
    app.stop().await;
    sender.close().await;
}

/// A message about twice `max_allowed_packet`, which MariaDB answers by closing the connection
/// (not with an error), published straight to `{P}` among good ones: the good ones are stored,
/// the big one is dead-lettered with its reason, and the consumer never says the database is
/// down (it used to hold the batch for ever, saying so).
#[tokio::test]
async fn a_message_far_above_max_allowed_packet_neither_stalls_storing_nor_looks_like_an_outage() {
    let services = Services::new();
    let env = services.env().with("BATCH_WAIT_MS", 200);
    let app = TestApp::spawn(&env).await;
    let sender = services.sender().await;
    let max_packet = max_allowed_packet(&services).await;
    let huge = format!(
        "{{\"pad\":\"{}\"}}",
        "x".repeat(usize::try_from(max_packet).unwrap() * 2)
    );

    // /readyz, sampled until the end of the test.
    let sampling = tokio_util::sync::CancellationToken::new();
    let samples = tokio::spawn({
        let app_url = app.url("/readyz");
        let sampling = sampling.clone();
        async move {
            // A connection per request: an idle one the server closes is not an answer.
            let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
            let mut statuses = Vec::new();
            while !sampling.is_cancelled() {
                statuses.push(client.get(&app_url).send().await.unwrap().status().as_u16());
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            statuses
        }
    });
    for n in 0..5 {
        sender
            .event(&envelope("shop", &format!("before-{n}"), "order"), b"{}")
            .await;
    }
    sender.event(&envelope("shop", "huge", "order"), huge.as_bytes()).await;
    for n in 0..5 {
        sender
            .event(&envelope("shop", &format!("after-{n}"), "order"), b"{}")
            .await;
    }

    let rows = services.rows_when(10).await;
    assert!(rows.iter().all(|row| row.delivery_id != "huge"));
    testkit::eventually("the huge one dead-lettered", SOON, || async {
        (services.broker.depth(".dead").await == Some(1)).then_some(())
    })
    .await;
    sampling.cancel();
    let statuses = samples.await.unwrap();
    assert!(!statuses.is_empty());
    assert!(
        statuses.iter().all(|status| *status == 200),
        "not ready at times: {statuses:?}"
    );
    let dead = services.broker.take_all(".dead").await;
    assert_eq!(
        dead[0].properties.message_id().as_ref().map(|id| id.as_str()),
        Some("huge")
    );
    let error = header(&dead[0].properties, ERROR).unwrap();
    assert!(error.starts_with("too large for the database: "), "{error}");
    assert_eq!(app.metric("webhook_consumer_database_up").await, 1.0);
    app.stop().await;
    assert_eq!(services.broker.depth(".events").await, Some(0));
    sender.close().await;
}

/// The test server's `max_allowed_packet`.
async fn max_allowed_packet(services: &Services) -> u64 {
    let mut connection = services.database.connect().await;
    sqlx::query_scalar("SELECT @@max_allowed_packet")
        .fetch_one(&mut connection)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_fragment_of_the_body_in_a_dead_letter_error_is_escaped() {
    let services = Services::new();
    let app = TestApp::spawn(&services.env().with("MAX_RETRIES", 0)).await;
    let sender = services.sender().await;
    // A canonical sale whose amount is text with a right-to-left override, a NEL (a C1 control
    // JSON leaves as it is), a newline and a terminal escape: its processor quotes it.
    let amount = "\u{202e}1.00\u{85}\n\u{1b}[2J";
    let body = serde_json::json!({
        "type": "sale.completed", "occurred_at": "2026-11-01T10:00:00Z",
        "data": {"order_id": "o-1", "amount": amount, "currency": "EUR"}
    })
    .to_string();
    sender
        .event(&envelope("shop", "quoted", "sale.completed"), body.as_bytes())
        .await;

    testkit::eventually("the dead letter", SOON, || async {
        (services.broker.depth(".dead").await == Some(1)).then_some(())
    })
    .await;
    let dead = services.broker.take_all(".dead").await;
    let error = header(&dead[0].properties, ERROR).unwrap();
    let records = testkit::eventually("its record", SOON, || async {
        let records = services.dead_letter_rows().await;
        (records.len() == 1).then_some(records)
    })
    .await;
    for error in [&error, &records[0].error] {
        assert!(
            error.starts_with(
                "retries exhausted after 0: sale.completed: /data/amount: \"\\u{202e}1.00\\u{85}\\n\\u001b[2J\""
            ),
            "{error}"
        );
        assert!(
            !error.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "unescaped: {error:?}"
        );
    }
    app.stop().await;
    sender.close().await;
}
