//! The ledger: every message the handler accepted is counted once, however often the broker
//! delivers it, and accounted for as stored, a duplicate or dead-lettered; a message sitting in a
//! retry queue is in flight until it is due back, and unexplained after that.

use chrono::{Duration as Days, SubsecRound, Utc};
use webhook_core::rejection::RejectionRecord;

use crate::helpers::{SOON, Sender, Services, SourcesFile, TestApp, envelope};
use testkit::Env;

/// A row of the `ledger` view: source, day, accepted, stored, duplicates, dead_lettered,
/// difference, in_flight, unexplained, rejected.
type LedgerRow = (String, String, i64, i64, i64, i64, i64, i64, i64, i64);

async fn ledger(services: &Services) -> Vec<LedgerRow> {
    let mut connection = services.database.connect().await;
    sqlx::query_as(
        "SELECT source, DATE_FORMAT(day, '%Y-%m-%d'), accepted, stored, duplicates, dead_lettered, difference, \
         in_flight, unexplained, rejected FROM ledger ORDER BY source, day",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap()
}

/// Waits until the ledger reads `expected`.
async fn ledger_reaches(services: &Services, expected: &[LedgerRow]) {
    testkit::eventually(&format!("the ledger to read {expected:?}"), SOON, || async {
        let rows = ledger(services).await;
        (rows == expected).then_some(())
    })
    .await;
}

fn row(source: &str, day: &str, counts: [i64; 8]) -> LedgerRow {
    let [
        accepted,
        stored,
        duplicates,
        dead,
        difference,
        in_flight,
        unexplained,
        rejected,
    ] = counts;
    (
        source.to_owned(),
        day.to_owned(),
        accepted,
        stored,
        duplicates,
        dead,
        difference,
        in_flight,
        unexplained,
        rejected,
    )
}

fn rejection(reason: &str, status: u16, at: &str) -> Vec<u8> {
    serde_json::to_vec(&RejectionRecord {
        at: at.to_owned(),
        source: "shop".to_owned(),
        claimed_source: None,
        reason: reason.to_owned(),
        status,
        request_id: format!("req-{reason}"),
        delivery_id: None,
        remote_addr: None,
        content_length: None,
    })
    .unwrap()
}

#[tokio::test]
async fn the_ledger_balances_after_new_events_duplicates_redeliveries_poison_and_rejections() {
    let services = Services::new();
    let sources = SourcesFile::new("[[source]]\nname = \"shop\"\nscheme = \"shopify\"\nsecrets = [\"s\"]\n");
    let env = services
        .env()
        .with("SOURCES_FILE", sources.path())
        .with("MAX_RETRIES", 1)
        .with("RETRY_DELAYS", "100ms");
    let app = TestApp::spawn(&env).await;
    services
        .execute("ALTER TABLE events ADD CONSTRAINT no_refused_events CHECK (event_type <> 'refused')")
        .await;
    let sender = services.sender().await;
    let today = Utc::now().format("%Y-%m-%d").to_string();

    // Two new events; a vendor's retry of the first (a second request, a second 200); the
    // broker delivering the second message again (the same message: not accepted again).
    let first = envelope("shop", "e1", "order");
    sender.event(&first, b"{\"n\":1}").await;
    let second = envelope("shop", "e2", "order");
    sender.event(&second, b"{\"n\":2}").await;
    services.rows_when(2).await;
    let vendor_retry = envelope("shop", "e1", "order");
    assert_ne!(vendor_retry.received_at, first.received_at);
    sender.event(&vendor_retry, b"{\"n\":1}").await;
    sender.event(&second, b"{\"n\":2}").await;
    // One the database refuses until its retries are spent, and poison without an envelope
    // (not attributable to a source or a day: not in the ledger).
    sender.event(&envelope("shop", "e3", "refused"), b"{\"n\":3}").await;
    sender
        .raw("shop.order", lapin::BasicProperties::default(), b"{\"poison\":true}")
        .await;
    // Two rejected requests: beside the balance, by reason.
    let queue = format!("{}.rejected", services.broker.prefix());
    let at = webhook_core::envelope::format_time(Utc::now());
    sender
        .to_queue(&queue, &rejection("signature_mismatch", 401, &at))
        .await;
    sender.to_queue(&queue, &rejection("body_too_large", 413, &at)).await;

    ledger_reaches(&services, &[row("shop", &today, [4, 2, 1, 1, 0, 0, 0, 2])]).await;
    testkit::eventually("both dead letters", SOON, || async {
        (services.broker.depth(".dead").await == Some(2)).then_some(())
    })
    .await;
    // The redelivery of `second` leaves the ledger as it was, and the other worker may still
    // hold it: wait for its count rather than read it once.
    let duplicates = testkit::eventually("both copies counted", SOON, || async {
        let duplicates: u32 = services.rows().await.iter().map(|event| event.duplicates).sum();
        (duplicates >= 2).then_some(duplicates)
    })
    .await;
    assert_eq!(duplicates, 2);

    let mut connection = services.database.connect().await;
    let reasons: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT source, reason, rejected FROM ledger_rejections ORDER BY reason")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    assert_eq!(
        reasons,
        [
            ("shop".to_owned(), "body_too_large".to_owned(), 1),
            ("shop".to_owned(), "signature_mismatch".to_owned(), 1)
        ]
    );
    // The same message yet again, and the second vendor request redelivered: no count moves.
    sender.event(&first, b"{\"n\":1}").await;
    sender.event(&vendor_retry, b"{\"n\":1}").await;
    app.metric_reaches("webhook_consumer_duplicates_total", 4.0).await;
    assert_eq!(ledger(&services).await, [row("shop", &today, [4, 2, 1, 1, 0, 0, 0, 2])]);
    app.stop().await;
    sender.close().await;
}

#[tokio::test]
async fn a_message_in_a_retry_queue_is_in_flight_until_due_and_unexplained_once_it_is_lost() {
    let services = Services::new();
    let env = services
        .env()
        .with("MAX_RETRIES", 5)
        .with("RETRY_DELAYS", "6s")
        .with("LEDGER_GRACE_MS", 0);
    let app = TestApp::spawn(&env).await;
    services
        .execute("ALTER TABLE events ADD CONSTRAINT no_refused_events CHECK (event_type <> 'refused')")
        .await;
    let sender = services.sender().await;
    // Received yesterday: the message lands on its day, whenever it is settled.
    let mut refused = envelope("shop", "r1", "refused");
    refused.received_at = (Utc::now() - Days::days(1)).trunc_subsecs(6);
    let day = refused.received_at.format("%Y-%m-%d").to_string();
    sender.event(&refused, b"{\"n\":1}").await;
    sender.event(&envelope("shop", "ok", "order"), b"{}").await;
    let today = Utc::now().format("%Y-%m-%d").to_string();

    // Accepted, not settled: the difference is the message in the retry queue.
    ledger_reaches(
        &services,
        &[
            row("shop", &day, [1, 0, 0, 0, 1, 1, 0, 0]),
            row("shop", &today, [1, 1, 0, 0, 0, 0, 0, 0]),
        ],
    )
    .await;
    // The broker loses it (the retry queue is purged): once it is due back, the difference
    // is unexplained.
    let lost = services.broker.take_all(".retry.1").await;
    assert_eq!(lost.len(), 1, "the refused message was not in the retry queue");
    ledger_reaches(
        &services,
        &[
            row("shop", &day, [1, 0, 0, 0, 1, 0, 1, 0]),
            row("shop", &today, [1, 1, 0, 0, 0, 0, 0, 0]),
        ],
    )
    .await;
    app.stop().await;
    sender.close().await;
}

/// A consumer with no retries over a database that refuses every event of `vendor`: its
/// messages are dead-lettered at once.
async fn dead_lettering_vendor() -> (Services, Env, TestApp, Sender) {
    let services = Services::new();
    let env = services.env().with("MAX_RETRIES", 0);
    let app = TestApp::spawn(&env).await;
    services
        .execute("ALTER TABLE events ADD CONSTRAINT hold_back CHECK (source <> 'vendor')")
        .await;
    let sender = services.sender().await;
    (services, env, app, sender)
}

#[tokio::test]
async fn a_replayed_dead_letter_moves_from_dead_lettered_to_stored_and_stays_one_accepted() {
    let (services, env, app, sender) = dead_lettering_vendor().await;
    sender.event(&envelope("vendor", "d1", "order"), b"{}").await;
    let today = Utc::now().format("%Y-%m-%d").to_string();
    ledger_reaches(&services, &[row("vendor", &today, [1, 0, 0, 1, 0, 0, 0, 0])]).await;

    services.execute("ALTER TABLE events DROP CONSTRAINT hold_back").await;
    let lookup = env.lookup();
    let settings = consumer::Settings::from_vars(&webhook_core::config::Vars::new(&lookup)).unwrap();
    let report = webhook_core::dlq::replay(&settings.broker, &webhook_core::service::Selection::All)
        .await
        .unwrap();
    assert_eq!(report.replayed, 1);
    services.rows_when(1).await;
    ledger_reaches(&services, &[row("vendor", &today, [1, 1, 0, 0, 0, 0, 0, 0])]).await;
    app.stop().await;
    sender.close().await;
}

#[tokio::test]
async fn settled_rows_go_a_day_after_they_were_last_seen_and_the_counts_stay() {
    let (services, _env, app, sender) = dead_lettering_vendor().await;
    let two_days_ago = |mut envelope: webhook_core::envelope::Envelope| {
        envelope.received_at = (Utc::now() - Days::days(2)).trunc_subsecs(6);
        envelope
    };
    // Received two days ago: stored, a vendor's retry of it (a duplicate), a dead letter, and
    // one stored that was seen again since (a redelivery); and one received today.
    let stored = two_days_ago(envelope("shop", "old", "order"));
    sender.event(&stored, b"{}").await;
    services.rows_when(1).await;
    let mut retried = two_days_ago(envelope("shop", "old", "order"));
    retried.received_at += Days::microseconds(1);
    sender.event(&retried, b"{}").await;
    sender
        .event(&two_days_ago(envelope("vendor", "dead", "order")), b"{}")
        .await;
    sender
        .event(&two_days_ago(envelope("shop", "seen", "order")), b"{}")
        .await;
    sender.event(&envelope("shop", "new", "order"), b"{}").await;
    services.ledger_recorded(5).await;
    services
        .execute("UPDATE ledger_messages SET seen_at = seen_at - INTERVAL 2 DAY WHERE day < UTC_DATE()")
        .await;
    services
        .execute("UPDATE ledger_messages SET seen_at = UTC_TIMESTAMP(6) WHERE outcome = 'stored' AND day < UTC_DATE() ORDER BY received_at DESC LIMIT 1")
        .await;
    let before = ledger(&services).await;
    let day = stored.received_at.format("%Y-%m-%d").to_string();
    let today = Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        before,
        [
            row("shop", &day, [3, 2, 1, 0, 0, 0, 0, 0]),
            row("shop", &today, [1, 1, 0, 0, 0, 0, 0, 0]),
            row("vendor", &day, [1, 0, 0, 1, 0, 0, 0, 0]),
        ]
    );

    let pool = sqlx::MySqlPool::connect(&services.database.url()).await.unwrap();
    let cutoff = consumer::retention::LEDGER.cutoff(Utc::now());
    let ledger_rows = consumer::retention::SettledLedger(&pool);
    // One row a statement: the pass goes on until a statement deletes less than that.
    let one_a_statement = consumer::retention::Retention {
        batch: 1,
        ..consumer::retention::LEDGER
    };
    let done = consumer::retention::pass(&ledger_rows, &one_a_statement, cutoff, None, |_| {})
        .await
        .unwrap();
    assert_eq!((done.purged, done.batches), (2, 3));
    let kept: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT source, outcome FROM ledger_messages ORDER BY source, received_at")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        kept,
        [
            ("shop".to_owned(), Some("stored".to_owned())),
            ("shop".to_owned(), Some("stored".to_owned())),
            ("vendor".to_owned(), Some("dead_lettered".to_owned())),
        ]
    );
    assert_eq!(ledger(&services).await, before, "pruning moved a count");
    let again = consumer::retention::pass(&ledger_rows, &consumer::retention::LEDGER, cutoff, None, |_| {})
        .await
        .unwrap();
    assert_eq!(again.purged, 0);
    pool.close().await;
    app.stop().await;
    sender.close().await;
}
