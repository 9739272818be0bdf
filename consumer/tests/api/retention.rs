//! `RETENTION_DAYS`: old bodies are cleared, by `consumer purge` and on the running consumer's
//! schedule; the rows, their dedup keys and their sales stay, so a late retry is a duplicate
//! and the sales view keeps its numbers.

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use consumer::retention::Retention;
use webhook_core::envelope::Envelope;

use crate::helpers::{Kept, SOON, Services, TestApp, canonical_sale, envelope, settings};

/// An envelope of an event received `days` days ago.
fn received_days_ago(source: &str, delivery_id: &str, event_type: &str, days: i64) -> Envelope {
    Envelope {
        received_at: (Utc::now() - chrono::Duration::days(days)).trunc_subsecs(6),
        ..envelope(source, delivery_id, event_type)
    }
}

#[tokio::test]
async fn a_purge_clears_old_bodies_keeps_dedup_and_leaves_the_sales_view_as_it_was() {
    let services = Services::new();
    let app = TestApp::spawn(&services.env()).await;
    let sender = services.sender().await;
    let old_sale = canonical_sale("sale.completed", "o-1", 1999, "2026-10-01T10:00:00Z", "c-1");
    let old_refund = canonical_sale("sale.refunded", "o-1", 500, "2026-10-03T10:00:00Z", "c-1");
    let new_sale = canonical_sale("sale.completed", "o-2", 4200, "2026-11-20T10:00:00Z", "c-2");
    let events = [
        (received_days_ago("shop", "d-1", "sale.completed", 40), &old_sale),
        (received_days_ago("shop", "d-2", "sale.refunded", 31), &old_refund),
        (received_days_ago("shop", "d-3", "ping", 35), &"{}".to_owned()),
        (received_days_ago("shop", "d-4", "sale.completed", 2), &new_sale),
    ];
    for (envelope, body) in &events {
        sender.event(envelope, body.as_bytes()).await;
    }
    services.rows_when(4).await;
    let sales = services.sales().await;
    let months = services.sales_per_month().await;
    assert_eq!(sales.len(), 2);
    assert!(!months.is_empty());

    // Without RETENTION_DAYS there is nothing to purge, and it says so.
    let refused = services.consumer(&["purge"], &[]).await;
    assert!(!refused.success, "{refused:?}");
    assert!(refused.stderr.contains("RETENTION_DAYS is not set"), "{refused:?}");
    assert!(services.kept("shop").await.iter().all(|kept| kept.body.is_some()));

    let run = services.consumer(&["purge"], &[("RETENTION_DAYS", "30")]).await;
    assert!(run.success, "{run:?}");
    assert!(
        run.stdout.starts_with("purged 3 bodies of events received before "),
        "{run:?}"
    );
    let kept = services.kept("shop").await;
    let expect = |id: &str, body: Option<&str>, status: &str, duplicates: u32| Kept {
        delivery_id: id.to_owned(),
        body: body.map(str::to_owned),
        purged: body.is_none(),
        status: status.to_owned(),
        duplicates,
    };
    assert_eq!(
        kept,
        [
            expect("d-1", None, "processed", 0),
            expect("d-2", None, "processed", 0),
            expect("d-3", None, "ignored", 0),
            expect("d-4", Some(&new_sale), "processed", 0),
        ]
    );
    assert_eq!(services.sales().await, sales, "sales stay");
    assert_eq!(
        services.sales_per_month().await,
        months,
        "the sales view keeps its numbers"
    );

    // The vendor sends the oldest again: a duplicate, its body not stored again.
    sender.event(&events[0].0, old_sale.as_bytes()).await;
    app.metric_reaches("webhook_consumer_duplicates_total", 1.0).await;
    let kept = services.kept("shop").await;
    assert_eq!(kept.len(), 4);
    assert_eq!(kept[0], expect("d-1", None, "processed", 1));
    assert_eq!(services.sales().await, sales);
    assert_eq!(services.sales_per_month().await, months);

    // A second pass finds nothing more.
    let run = services.consumer(&["purge"], &[("RETENTION_DAYS", "30")]).await;
    assert!(run.success && run.stdout.starts_with("purged 0 bodies"), "{run:?}");

    app.stop().await;
    sender.close().await;
}

#[tokio::test]
async fn the_running_consumer_purges_on_its_schedule_in_batches_and_counts_it() {
    let services = Services::new();
    let mut settings = settings(&services.env().with("RETENTION_DAYS", 7));
    assert_eq!(settings.retention.map(|retention| retention.days), Some(7));
    settings.retention = Some(Retention {
        first_after: Duration::ZERO,
        every: Duration::from_millis(200),
        batch: 2,
        ..Retention::days(7)
    });
    let app = TestApp::spawn_with(settings).await;
    let sender = services.sender().await;
    for n in 0..5 {
        sender
            .event(&received_days_ago("shop", &format!("old-{n}"), "ping", 8), b"{}")
            .await;
    }
    sender.event(&envelope("shop", "new", "ping"), b"{}").await;
    app.metric_reaches("webhook_consumer_bodies_purged_total", 5.0).await;
    let kept = testkit::eventually("five bodies purged", SOON, || async {
        let kept = services.kept("shop").await;
        (kept.len() == 6 && kept.iter().filter(|kept| kept.purged).count() == 5).then_some(kept)
    })
    .await;
    let new = kept.iter().find(|kept| kept.delivery_id == "new").unwrap();
    assert_eq!((new.body.as_deref(), new.purged), (Some("{}"), false));
    assert!(kept.iter().filter(|kept| kept.purged).all(|kept| kept.body.is_none()));
    app.stop().await;
    sender.close().await;
}
