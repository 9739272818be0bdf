//! `consumer erase`: an event and what it set in `sales` are erased, a tombstone stays, and a
//! retry of the event is a duplicate that brings none of its data back.

use chrono::NaiveDateTime;

use crate::helpers::{Kept, MonthRow, Services, TestApp, canonical_sale, envelope};

/// (source, delivery id, erased_by, reason, matched_by, sales_cleared, erased_at) of every
/// tombstone.
type TombstoneRow = (String, String, String, Option<String>, String, u32, NaiveDateTime);

async fn tombstones(services: &Services) -> Vec<TombstoneRow> {
    let mut connection = services.database.connect().await;
    sqlx::query_as(
        "SELECT source, delivery_id, erased_by, reason, matched_by, sales_cleared, erased_at FROM erasures ORDER BY delivery_id",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap()
}

fn month(source: &str, month: &str, orders: i64, gross: i64, refunded: i64) -> MonthRow {
    MonthRow {
        source: source.to_owned(),
        month: month.to_owned(),
        currency: "EUR".to_owned(),
        orders,
        gross_minor: gross,
        refunded_minor: refunded,
        net_minor: gross - refunded,
    }
}

#[tokio::test]
async fn an_erased_event_leaves_a_tombstone_and_its_retry_brings_nothing_back() {
    let services = Services::new();
    let app = TestApp::spawn(&services.env()).await;
    let sender = services.sender().await;
    let sale = canonical_sale("sale.completed", "o-1", 1999, "2026-10-01T10:00:00Z", "c-1");
    let refund = canonical_sale("sale.refunded", "o-1", 500, "2026-10-03T10:00:00Z", "c-1");
    let other = canonical_sale("sale.completed", "o-2", 4200, "2026-10-05T10:00:00Z", "c-2");
    let events = [
        (envelope("shop", "d-1", "sale.completed"), &sale),
        (envelope("shop", "d-2", "sale.refunded"), &refund),
        (envelope("shop", "d-3", "sale.completed"), &other),
    ];
    for (envelope, body) in &events {
        sender.event(envelope, body.as_bytes()).await;
    }
    services.rows_when(3).await;
    assert_eq!(
        services.sales_per_month().await,
        [month("shop", "2026-10", 2, 1999 + 4200, 500)]
    );

    // Unknown ids and sources are errors that change nothing.
    let run = services
        .consumer(&["erase", "--source", "shop", "--delivery-id", "nope"], &[])
        .await;
    assert!(!run.success, "{run:?}");
    assert!(
        run.stderr
            .contains("no event of source \"shop\" with delivery id \"nope\" is stored: nothing erased"),
        "{run:?}"
    );
    let run = services
        .consumer(&["erase", "--source", "elsewhere", "--delivery-id", "d-1"], &[])
        .await;
    assert!(
        !run.success && run.stderr.contains("no event of source \"elsewhere\" is stored"),
        "{run:?}"
    );
    assert!(tombstones(&services).await.is_empty());
    assert!(services.kept("shop").await.iter().all(|kept| kept.body.is_some()));

    let run = services
        .consumer(
            &[
                "erase",
                "--source",
                "shop",
                "--delivery-id",
                "d-1",
                "--by",
                "dpo",
                "--reason",
                "request 7",
            ],
            &[],
        )
        .await;
    assert!(run.success, "{run:?}");
    assert!(
        run.stdout
            .contains("erased 1 event(s), 0 already erased before, 1 order(s) cleared in sales"),
        "{run:?}"
    );
    let erased = Kept {
        delivery_id: "d-1".to_owned(),
        body: None,
        purged: true,
        status: "erased".to_owned(),
        duplicates: 0,
    };
    assert_eq!(services.kept("shop").await[0], erased);
    let stones = tombstones(&services).await;
    assert_eq!(stones.len(), 1);
    let (source, id, by, reason, matched_by, cleared, _) = &stones[0];
    assert_eq!(
        (
            source.as_str(),
            id.as_str(),
            by.as_str(),
            reason.as_deref(),
            matched_by.as_str(),
            *cleared
        ),
        ("shop", "d-1", "dpo", Some("request 7"), "delivery_id", 1)
    );
    // The sale half of o-1 is gone; its refund (another event) stays, and the view follows.
    let sales = services.sales().await;
    assert_eq!(sales.len(), 2);
    assert_eq!(
        (
            sales[0].order_id.as_str(),
            sales[0].amount_minor,
            sales[0].sold_at,
            sales[0].sale_event_id.as_deref()
        ),
        ("o-1", 0, None, None)
    );
    assert_eq!(
        (sales[0].refunded_minor, sales[0].refund_event_id.as_deref()),
        (500, Some("d-2"))
    );
    let months = services.sales_per_month().await;
    assert_eq!(months, [month("shop", "2026-10", 1, 4200, 500)]);

    // The vendor retries d-1: a duplicate; neither its body nor its sale comes back.
    sender.event(&events[0].0, sale.as_bytes()).await;
    app.metric_reaches("webhook_consumer_duplicates_total", 1.0).await;
    assert_eq!(
        services.kept("shop").await[0],
        Kept {
            duplicates: 1,
            ..erased.clone()
        }
    );
    assert_eq!(services.sales().await, sales);
    assert_eq!(services.sales_per_month().await, months);

    // Erasing it again changes nothing.
    let run = services
        .consumer(&["erase", "--source", "shop", "--delivery-id", "d-1"], &[])
        .await;
    assert!(
        run.success && run.stdout.contains("erased 0 event(s), 1 already erased before"),
        "{run:?}"
    );
    assert_eq!(tombstones(&services).await, stones);

    app.stop().await;
    sender.close().await;
}

#[tokio::test]
async fn erasing_by_a_value_at_a_pointer_lists_first_then_erases_every_match() {
    let services = Services::new();
    let app = TestApp::spawn(&services.env()).await;
    let sender = services.sender().await;
    let bodies = [
        (
            "d-1",
            "sale.completed",
            canonical_sale("sale.completed", "o-1", 1000, "2026-10-01T10:00:00Z", "c-1"),
        ),
        (
            "d-2",
            "sale.refunded",
            canonical_sale("sale.refunded", "o-1", 300, "2026-10-02T10:00:00Z", "c-1"),
        ),
        (
            "d-3",
            "sale.completed",
            canonical_sale("sale.completed", "o-2", 2000, "2026-10-03T10:00:00Z", "c-2"),
        ),
    ];
    for (id, event_type, body) in &bodies {
        sender.event(&envelope("shop", id, event_type), body.as_bytes()).await;
    }
    services.rows_when(3).await;
    let pointer = [
        "erase",
        "--source",
        "shop",
        "--pointer",
        "/data/customer/id",
        "--value",
        "c-1",
    ];

    let dry = services.consumer(&[&pointer[..], &["--dry-run"]].concat(), &[]).await;
    assert!(dry.success, "{dry:?}");
    // One line per match, in the order they were stored, then the count.
    let mut lines: Vec<&str> = dry.stdout.lines().collect();
    assert_eq!(
        lines.pop(),
        Some("dry run: 2 event(s) would be erased; nothing was changed")
    );
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "would erase source=\"shop\" delivery_id=\"d-1\"",
            "would erase source=\"shop\" delivery_id=\"d-2\""
        ]
    );
    assert!(tombstones(&services).await.is_empty());
    assert!(services.kept("shop").await.iter().all(|kept| kept.body.is_some()));
    assert_eq!(services.sales().await.len(), 2);

    let run = services.consumer(&pointer, &[("USER", "alice")]).await;
    assert!(run.success, "{run:?}");
    assert!(run.stdout.contains("erased 2 event(s)"), "{run:?}");
    let stones = tombstones(&services).await;
    let ids: Vec<&str> = stones.iter().map(|stone| stone.1.as_str()).collect();
    assert_eq!(ids, ["d-1", "d-2"]);
    for stone in &stones {
        assert_eq!(stone.2, "alice", "the OS user, without --by");
        assert!(stone.4.starts_with("pointer /data/customer/id sha256:"), "{}", stone.4);
        assert!(!stone.4.contains("c-1"), "the tombstone does not keep the value");
    }
    // Both halves of o-1 came from erased events: its row is gone, and the view with it.
    let sales = services.sales().await;
    let orders: Vec<&str> = sales.iter().map(|sale| sale.order_id.as_str()).collect();
    assert_eq!(orders, ["o-2"]);
    assert_eq!(services.sales_per_month().await, [month("shop", "2026-10", 1, 2000, 0)]);
    let statuses: Vec<String> = services
        .kept("shop")
        .await
        .into_iter()
        .map(|kept| kept.status)
        .collect();
    assert_eq!(statuses, ["erased", "erased", "processed"]);

    // Nothing left with that value: an error.
    let run = services.consumer(&pointer, &[]).await;
    assert!(!run.success, "{run:?}");
    assert!(
        run.stderr
            .contains("no stored body of source \"shop\" has \"c-1\" at /data/customer/id"),
        "{run:?}"
    );

    // A new event for that customer (a new delivery id) is a new event: stored.
    let later = canonical_sale("sale.completed", "o-3", 700, "2026-10-09T10:00:00Z", "c-1");
    sender
        .event(&envelope("shop", "d-4", "sale.completed"), later.as_bytes())
        .await;
    let kept = testkit::eventually("the later event stored", crate::helpers::SOON, || async {
        let kept = services.kept("shop").await;
        (kept.len() == 4).then_some(kept)
    })
    .await;
    assert_eq!(kept[3].body.as_deref(), Some(later.as_str()));

    app.stop().await;
    sender.close().await;
}
