//! `consumer replay`: stored events through the current processors again, here a sales mapping
//! added after the events were stored; a second replay changes nothing.

use chrono::{NaiveDateTime, SubsecRound, Utc};
use serde_json::json;
use webhook_core::envelope::Envelope;

use crate::helpers::{MonthRow, Services, SourcesFile, TestApp, envelope};

/// `shop` sends Shopify payloads; this file says so (the consumer that stored them had none).
const SHOPIFY: &str = r#"
[[source]]
name = "shop"
scheme = "shopify"
secrets = ["s"]
[source.sales]
preset = "shopify"
"#;

/// (order id, amount, sold_at, sale event id, updated_at) of every order.
async fn orders(services: &Services) -> Vec<(String, i64, Option<NaiveDateTime>, Option<String>, NaiveDateTime)> {
    let mut connection = services.database.connect().await;
    sqlx::query_as("SELECT order_id, amount_minor, sold_at, sale_event_id, updated_at FROM sales ORDER BY order_id")
        .fetch_all(&mut connection)
        .await
        .unwrap()
}

fn paid(id: u64, price: &str, at: &str) -> String {
    json!({"id": id, "total_price": price, "currency": "EUR", "processed_at": at}).to_string()
}

#[tokio::test]
async fn a_replay_applies_a_processor_added_later_and_a_second_replay_changes_nothing() {
    let services = Services::new();
    let app = TestApp::spawn(&services.env()).await;
    let sender = services.sender().await;
    let events = [
        ("p-1", "orders/paid", paid(1001, "19.99", "2026-11-02T10:00:00Z")),
        ("p-2", "orders/paid", paid(1002, "5.00", "2026-11-03T10:00:00Z")),
        ("p-3", "orders/paid", paid(1003, "100.10", "2026-12-01T10:00:00Z")),
        ("bad", "orders/paid", json!({"id": 1004, "currency": "EUR"}).to_string()),
        ("ping", "ping", "{}".to_owned()),
    ];
    for (id, event_type, body) in &events {
        sender.event(&envelope("shop", id, event_type), body.as_bytes()).await;
    }
    // One more, long ago, whose body is purged before the replay.
    let old = Envelope {
        received_at: (Utc::now() - chrono::Duration::days(40)).trunc_subsecs(6),
        ..envelope("shop", "p-old", "orders/paid")
    };
    sender
        .event(&old, paid(999, "1.00", "2026-10-01T10:00:00Z").as_bytes())
        .await;
    services.rows_when(6).await;
    app.stop().await;
    sender.close().await;
    // Stored as the canonical format reads them: nothing is a sale.
    assert!(services.sales().await.is_empty());
    assert!(services.kept("shop").await.iter().all(|kept| kept.status == "ignored"));
    let purge = services.consumer(&["purge"], &[("RETENTION_DAYS", "30")]).await;
    assert!(
        purge.success && purge.stdout.starts_with("purged 1 bodies"),
        "{purge:?}"
    );

    let file = SourcesFile::new(SHOPIFY);
    let vars = [("SOURCES_FILE", file.path())];
    let since = (Utc::now() - chrono::Duration::days(60)).format("%Y-%m-%d").to_string();
    let until = Utc::now().format("%Y-%m-%d").to_string();
    let replay = ["replay", "--source", "shop", "--since", &since, "--until", &until];

    // A dry run says what would change, and changes nothing.
    let dry = services.consumer(&[&replay[..], &["--dry-run"]].concat(), &vars).await;
    assert!(!dry.success, "one event fails: {dry:?}");
    assert!(
        dry.stdout.starts_with(
            "dry run: examined 6, would change 3, unchanged 1, skipped 1 (purged 1, erased 0), failed 1\n"
        ),
        "{dry:?}"
    );
    assert!(
        dry.stdout
            .contains("failed delivery_id=\"bad\": orders/paid: /total_price is missing"),
        "{dry:?}"
    );
    assert!(dry.stderr.contains("replay: 6/6 examined"), "{dry:?}");
    assert!(services.sales().await.is_empty());
    assert!(services.kept("shop").await.iter().all(|kept| kept.status == "ignored"));

    let run = services.consumer(&replay, &vars).await;
    assert!(
        run.stdout
            .starts_with("examined 6, changed 3, unchanged 1, skipped 1 (purged 1, erased 0), failed 1\n"),
        "{run:?}"
    );
    let after = orders(&services).await;
    let amounts: Vec<(&str, i64, Option<&str>)> = after
        .iter()
        .map(|(order, amount, _, event, _)| (order.as_str(), *amount, event.as_deref()))
        .collect();
    assert_eq!(
        amounts,
        [
            ("1001", 1999, Some("p-1")),
            ("1002", 500, Some("p-2")),
            ("1003", 10010, Some("p-3"))
        ]
    );
    let month = |month: &str, orders: i64, gross: i64| MonthRow {
        source: "shop".to_owned(),
        month: month.to_owned(),
        currency: "EUR".to_owned(),
        orders,
        gross_minor: gross,
        refunded_minor: 0,
        net_minor: gross,
    };
    let months = services.sales_per_month().await;
    assert_eq!(months, [month("2026-11", 2, 2499), month("2026-12", 1, 10010)]);
    let statuses: Vec<(String, String)> = services
        .kept("shop")
        .await
        .into_iter()
        .map(|kept| (kept.delivery_id, kept.status))
        .collect();
    let status = |id: &str, status: &str| (id.to_owned(), status.to_owned());
    assert_eq!(
        statuses,
        [
            status("bad", "ignored"),
            status("p-1", "processed"),
            status("p-2", "processed"),
            status("p-3", "processed"),
            status("p-old", "ignored"),
            status("ping", "ignored"),
        ]
    );

    // Again: nothing changes, not even a row's updated_at, and the summary says so.
    let again = services.consumer(&replay, &vars).await;
    assert!(
        again
            .stdout
            .starts_with("examined 6, changed 0, unchanged 4, skipped 1 (purged 1, erased 0), failed 1\n"),
        "{again:?}"
    );
    assert_eq!(orders(&services).await, after);
    assert_eq!(services.sales_per_month().await, months);

    // Only one type, one day: the filters hold.
    let one_type = services
        .consumer(
            &[
                "replay", "--source", "shop", "--type", "ping", "--since", &since, "--until", &until,
            ],
            &vars,
        )
        .await;
    assert!(one_type.success, "{one_type:?}");
    assert!(
        one_type.stdout.starts_with("examined 1, changed 0, unchanged 1,"),
        "{one_type:?}"
    );
    assert!(one_type.stdout.contains("nothing changed"), "{one_type:?}");
}

#[tokio::test]
async fn a_replay_with_a_bad_range_source_or_type_is_refused() {
    let services = Services::new();
    let app = TestApp::spawn(&services.env()).await;
    let sender = services.sender().await;
    sender.event(&envelope("shop", "d-1", "ping"), b"{}").await;
    services.rows_when(1).await;
    app.stop().await;
    sender.close().await;

    let cases: [(&[&str], &str); 5] = [
        (
            &["--source", "shop", "--since", "last week", "--until", "2026-12-31"],
            "--since \"last week\": expected an RFC 3339 time such as 2026-11-01T00:00:00Z or a date such as 2026-11-01",
        ),
        (
            &["--source", "shop", "--since", "2026-01-01", "--until", "2026-13-01"],
            "--until \"2026-13-01\": expected an RFC 3339 time",
        ),
        (
            &["--source", "shop", "--since", "2026-12-01", "--until", "2026-11-01"],
            "is not before --until",
        ),
        (
            &[
                "--source",
                "elsewhere",
                "--since",
                "2026-01-01",
                "--until",
                "2026-12-31",
            ],
            "no event of source \"elsewhere\" is stored: nothing to replay",
        ),
        (
            &[
                "--source",
                "shop",
                "--type",
                "nope",
                "--since",
                "2026-01-01",
                "--until",
                "2026-12-31",
            ],
            "no event of source \"shop\" and type \"nope\" is stored: nothing to replay",
        ),
    ];
    for (args, expected) in cases {
        let run = services.consumer(&[&["replay"][..], args].concat(), &[]).await;
        assert!(!run.success, "{args:?}: {run:?}");
        assert!(run.stderr.contains(expected), "{args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{args:?}: {run:?}");
    }
}
