//! The same delivery id with another body: the first stored wins, in one batch, across
//! batches and between two consumers, and every conflicting delivery is counted (per row, in a
//! metric) without its sale being applied.

use serde_json::json;

use crate::helpers::{SOON, Services, TestApp, envelope, sha256};

/// A canonical sale of `order` for `amount` cents at `at`.
fn sale(order: &str, amount: i64, at: &str) -> String {
    json!({"type": "sale.completed", "occurred_at": at,
           "data": {"order_id": order, "amount": amount, "currency": "EUR"}})
    .to_string()
}

/// (delivery id, body_sha256, duplicates, conflicts) of every row.
async fn conflicts(services: &Services) -> Vec<(String, String, u32, u32)> {
    let mut connection = services.database.connect().await;
    sqlx::query_as("SELECT delivery_id, body_sha256, duplicates, conflicts FROM events ORDER BY delivery_id")
        .fetch_all(&mut connection)
        .await
        .unwrap()
}

/// (order id, amount) of every sale.
async fn amounts(services: &Services) -> Vec<(String, i64)> {
    services
        .sales()
        .await
        .into_iter()
        .map(|sale| (sale.order_id, sale.amount_minor))
        .collect()
}

#[tokio::test]
async fn in_one_batch_the_first_body_is_kept_and_the_other_counted_as_a_conflict() {
    let services = Services::new();
    let env = services.env().with("CONSUMER_WORKERS", 1).with("BATCH_WAIT_MS", 500);
    let app = TestApp::spawn(&env).await;
    let sender = services.sender().await;
    let first = sale("o-1", 100, "2026-05-01T00:00:00Z");
    let second = sale("o-1", 999, "2026-06-01T00:00:00Z");
    let event = envelope("shop", "same-id", "sale.completed");
    sender.event(&event, first.as_bytes()).await;
    sender.event(&event, second.as_bytes()).await;

    let rows = testkit::eventually("the conflict counted", SOON, || async {
        let rows = conflicts(&services).await;
        (rows.len() == 1 && rows[0].2 == 1).then_some(rows)
    })
    .await;
    assert_eq!(rows, vec![("same-id".to_owned(), sha256(first.as_bytes()), 1, 1)]);
    assert_eq!(amounts(&services).await, vec![("o-1".to_owned(), 100)]);
    app.metric_reaches("webhook_consumer_conflicting_duplicates_total", 1.0)
        .await;
    assert_eq!(app.metric("webhook_consumer_duplicates_total").await, 1.0);
    app.stop().await;
    sender.close().await;
}

#[tokio::test]
async fn a_later_body_for_a_stored_delivery_id_changes_neither_the_row_nor_its_sale() {
    let services = Services::new();
    let app = TestApp::spawn(&services.env()).await;
    let sender = services.sender().await;
    let stored = sale("o-1", 100, "2026-05-01T00:00:00Z");
    // Newer, so it would win the sales row if it were applied.
    let later = sale("o-1", 999, "2026-06-01T00:00:00Z");
    let event = envelope("shop", "same-id", "sale.completed");
    sender.event(&event, stored.as_bytes()).await;
    services.rows_when(1).await;
    sender.event(&event, later.as_bytes()).await;
    sender.event(&event, stored.as_bytes()).await;

    let rows = testkit::eventually("both counted", SOON, || async {
        let rows = conflicts(&services).await;
        (rows.len() == 1 && rows[0].2 == 2).then_some(rows)
    })
    .await;
    assert_eq!(rows, vec![("same-id".to_owned(), sha256(stored.as_bytes()), 2, 1)]);
    assert_eq!(services.rows().await[0].body, stored);
    assert_eq!(amounts(&services).await, vec![("o-1".to_owned(), 100)]);
    app.metric_reaches("webhook_consumer_conflicting_duplicates_total", 1.0)
        .await;
    app.stop().await;
    sender.close().await;
}

#[tokio::test]
async fn between_two_consumers_the_first_stored_wins_and_its_sale_is_the_one_applied() {
    let services = Services::new();
    let env = services.env().with("PREFETCH", 10).with("BATCH_SIZE", 10);
    let first = TestApp::spawn(&env).await;
    let second = TestApp::spawn(&env).await;
    let sender = services.sender().await;
    const PAIRS: usize = 60;
    let bodies: Vec<(String, String)> = (0..PAIRS)
        .map(|n| {
            let order = format!("o-{n:02}");
            (
                sale(&order, 100, "2026-05-01T00:00:00Z"),
                sale(&order, 999, "2026-06-01T00:00:00Z"),
            )
        })
        .collect();
    for (n, (a, b)) in bodies.iter().enumerate() {
        let event = envelope("shop", &format!("id-{n:02}"), "sale.completed");
        sender.event(&event, a.as_bytes()).await;
        sender.event(&event, b.as_bytes()).await;
    }

    let rows = testkit::eventually("every pair stored once, its conflict counted", SOON, || async {
        let rows = conflicts(&services).await;
        (rows.len() == PAIRS && rows.iter().all(|row| row.2 == 1)).then_some(rows)
    })
    .await;
    let sales = amounts(&services).await;
    for (n, (row, (order, amount))) in rows.iter().zip(&sales).enumerate() {
        let (a, b) = &bodies[n];
        let kept = if row.1 == sha256(a.as_bytes()) { 100 } else { 999 };
        assert!(
            row.1 == sha256(a.as_bytes()) || row.1 == sha256(b.as_bytes()),
            "{row:?}"
        );
        assert_eq!(row.3, 1, "{row:?}");
        // The sale is the kept body's, never the other's.
        assert_eq!(
            (order.as_str(), *amount),
            (format!("o-{n:02}").as_str(), kept),
            "{row:?}"
        );
    }
    // A row is visible at its commit, a moment before its consumer counts it.
    testkit::eventually("every conflict in the metrics", SOON, || async {
        let counted = first.metric("webhook_consumer_conflicting_duplicates_total").await
            + second.metric("webhook_consumer_conflicting_duplicates_total").await;
        assert!(counted <= PAIRS as f64, "{counted} conflicts counted");
        (counted == PAIRS as f64).then_some(())
    })
    .await;
    first.stop().await;
    second.stop().await;
    sender.close().await;
}
