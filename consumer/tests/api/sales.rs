//! Events become sales and refunds: canonical, Stripe and Shopify payloads, in any order, once.

use chrono::{DateTime, NaiveDateTime};
use serde_json::json;
use webhook_core::envelope::header::{ERROR, RETRY_COUNT};

use crate::helpers::{MonthRow, SOON, SaleRow, Services, SourcesFile, TestApp, envelope, header};

/// A sources file as the request handler reads it, with a sales mapping for two vendors; every
/// other source (here `acme`) sends the canonical format.
const SOURCES: &str = r#"
[[source]]
name = "stripe"
scheme = "stripe"
secrets = ["whsec_test"]
[source.sales]
preset = "stripe"

[[source]]
name = "shopify"
scheme = "shopify"
secrets = ["shpss_test"]
delivery_id = { header = "X-Shopify-Webhook-Id" }
[source.sales]
preset = "shopify"

[[source]]
name = "github"
scheme = "github"
secrets = ["s"]
"#;

fn utc(text: &str) -> NaiveDateTime {
    DateTime::parse_from_rfc3339(text).unwrap().naive_utc()
}

/// A canonical event body.
fn canonical(id: &str, event_type: &str, at: &str, order_id: &str, amount: i64, currency: &str) -> String {
    json!({
        "id": id, "type": event_type, "occurred_at": at,
        "data": {"order_id": order_id, "amount": amount, "currency": currency, "customer": {"id": "c-1"}}
    })
    .to_string()
}

fn sale(
    source: &str,
    order_id: &str,
    currency: &str,
    sold: Option<(i64, &str, &str)>,
    refunded: Option<(i64, &str, &str)>,
) -> SaleRow {
    let (amount_minor, sold_at, sale_event_id) = match sold {
        Some((amount, at, id)) => (amount, Some(utc(at)), Some(id.to_owned())),
        None => (0, None, None),
    };
    let (refunded_minor, refunded_at, refund_event_id) = match refunded {
        Some((amount, at, id)) => (amount, Some(utc(at)), Some(id.to_owned())),
        None => (0, None, None),
    };
    SaleRow {
        source: source.to_owned(),
        order_id: order_id.to_owned(),
        currency: currency.to_owned(),
        amount_minor,
        sold_at,
        sale_event_id,
        refunded_minor,
        refunded_at,
        refund_event_id,
    }
}

fn month(source: &str, month: &str, currency: &str, orders: i64, gross: i64, refunded: i64) -> MonthRow {
    MonthRow {
        source: source.to_owned(),
        month: month.to_owned(),
        currency: currency.to_owned(),
        orders,
        gross_minor: gross,
        refunded_minor: refunded,
        net_minor: gross - refunded,
    }
}

fn stripe_charge(id: &str, event_type: &str, created: i64, charge: &str, amount: i64, refunded: i64) -> String {
    json!({
        "id": id, "object": "event", "api_version": "2024-06-20", "type": event_type, "created": created,
        "livemode": false,
        "data": {"object": {"id": charge, "object": "charge", "amount": amount, "amount_captured": amount,
                            "amount_refunded": refunded, "currency": "usd", "paid": true,
                            "refunded": refunded == amount}}
    })
    .to_string()
}

#[tokio::test]
async fn canonical_stripe_and_shopify_events_become_exact_sales_per_month() {
    let services = Services::new();
    let sources = SourcesFile::new(SOURCES);
    let app = TestApp::spawn(&services.env().with("SOURCES_FILE", sources.path())).await;
    let sender = services.sender().await;

    let acme = [
        (
            "a-1",
            "sale.completed",
            canonical("a-1", "sale.completed", "2026-01-15T10:00:00Z", "o-1", 1999, "EUR"),
        ),
        (
            "a-2",
            "sale.completed",
            canonical("a-2", "sale.completed", "2026-01-20T12:00:00+01:00", "o-2", 500, "EUR"),
        ),
        (
            "a-3",
            "sale.refunded",
            canonical("a-3", "sale.refunded", "2026-02-03T09:00:00Z", "o-1", 999, "EUR"),
        ),
        (
            "a-4",
            "sale.completed",
            canonical("a-4", "sale.completed", "2026-02-01T00:00:00Z", "o-3", 1500, "JPY"),
        ),
        (
            "a-5",
            "customer.created",
            json!({"id": "a-5", "type": "customer.created"}).to_string(),
        ),
    ];
    // 2026-01-10T08:00Z, 2026-02-05T15:30Z, 2026-02-06T10:00Z, 2026-03-01T00:00Z.
    let stripe = [
        (
            "evt_1",
            "charge.succeeded",
            stripe_charge("evt_1", "charge.succeeded", 1_768_032_000, "ch_1", 2000, 0),
        ),
        (
            "evt_2",
            "charge.succeeded",
            stripe_charge("evt_2", "charge.succeeded", 1_770_305_400, "ch_2", 3000, 0),
        ),
        (
            "evt_3",
            "charge.refunded",
            stripe_charge("evt_3", "charge.refunded", 1_770_372_000, "ch_1", 2000, 500),
        ),
        (
            "evt_4",
            "charge.refunded",
            stripe_charge("evt_4", "charge.refunded", 1_772_323_200, "ch_1", 2000, 2000),
        ),
        (
            "evt_5",
            "payment_intent.created",
            json!({"id": "evt_5", "type": "payment_intent.created"}).to_string(),
        ),
    ];
    let shopify = [
        (
            "shp-1",
            "orders/paid",
            // Paid late on 31 January in UTC-2: 1 February in UTC.
            json!({"id": 1001, "name": "#1001", "total_price": "199.90", "currency": "EUR",
                   "processed_at": "2026-01-31T23:30:00-02:00", "created_at": "2026-01-31T20:00:00-02:00"})
            .to_string(),
        ),
        (
            "shp-2",
            "orders/paid",
            json!({"id": 1002, "total_price": "45.00", "currency": "EUR", "processed_at": null,
                   "created_at": "2026-01-05T10:00:00+01:00"})
            .to_string(),
        ),
        (
            "shp-3",
            "refunds/create",
            json!({"id": 77, "order_id": 1001, "created_at": "2026-02-10T12:00:00Z",
                   "transactions": [{"id": 5, "kind": "refund", "amount": "19.99", "currency": "EUR"}]})
            .to_string(),
        ),
    ];
    for (source, events) in [("acme", &acme[..]), ("stripe", &stripe[..]), ("shopify", &shopify[..])] {
        for (id, event_type, body) in events {
            sender.event(&envelope(source, id, event_type), body.as_bytes()).await;
        }
    }

    services.rows_when(13).await;
    assert_eq!(
        services.sales().await,
        vec![
            sale(
                "acme",
                "o-1",
                "EUR",
                Some((1999, "2026-01-15T10:00:00Z", "a-1")),
                Some((999, "2026-02-03T09:00:00Z", "a-3"))
            ),
            sale("acme", "o-2", "EUR", Some((500, "2026-01-20T11:00:00Z", "a-2")), None),
            sale("acme", "o-3", "JPY", Some((1500, "2026-02-01T00:00:00Z", "a-4")), None),
            sale(
                "shopify",
                "1001",
                "EUR",
                Some((19_990, "2026-02-01T01:30:00Z", "shp-1")),
                Some((1999, "2026-02-10T12:00:00Z", "shp-3"))
            ),
            sale(
                "shopify",
                "1002",
                "EUR",
                Some((4500, "2026-01-05T09:00:00Z", "shp-2")),
                None
            ),
            // The refunded total as of the latest refund event.
            sale(
                "stripe",
                "ch_1",
                "USD",
                Some((2000, "2026-01-10T08:00:00Z", "evt_1")),
                Some((2000, "2026-03-01T00:00:00Z", "evt_4"))
            ),
            sale(
                "stripe",
                "ch_2",
                "USD",
                Some((3000, "2026-02-05T15:30:00Z", "evt_2")),
                None
            ),
        ]
    );
    assert_eq!(
        services.sales_per_month().await,
        vec![
            month("acme", "2026-01", "EUR", 2, 2499, 0),
            month("acme", "2026-02", "EUR", 0, 0, 999),
            month("acme", "2026-02", "JPY", 1, 1500, 0),
            month("shopify", "2026-01", "EUR", 1, 4500, 0),
            month("shopify", "2026-02", "EUR", 1, 19_990, 1999),
            month("stripe", "2026-01", "USD", 1, 2000, 0),
            month("stripe", "2026-02", "USD", 1, 3000, 0),
            month("stripe", "2026-03", "USD", 0, 0, 2000),
        ]
    );
    let statuses = services.statuses().await;
    let ignored: Vec<&str> = statuses
        .iter()
        .filter(|(_, _, status, _)| status == "ignored")
        .map(|(_, id, _, _)| id.as_str())
        .collect();
    assert_eq!(ignored, ["a-5", "evt_5"]);
    assert!(
        statuses
            .iter()
            .all(|(_, _, status, at)| *at && (status == "processed" || status == "ignored")),
        "{statuses:?}"
    );
    app.metric_reaches("webhook_consumer_processed_total{outcome=\"processed\"}", 11.0)
        .await;
    app.metric_reaches("webhook_consumer_processed_total{outcome=\"ignored\"}", 2.0)
        .await;
    assert_eq!(
        app.metric("webhook_consumer_processed_total{outcome=\"failed\"}").await,
        0.0
    );
    app.stop().await;
    assert_eq!(services.broker.depth(".events").await, Some(0));
    sender.close().await;
}

#[tokio::test]
async fn late_older_events_never_overwrite_a_newer_state() {
    let services = Services::new();
    let app = TestApp::spawn(&services.env()).await;
    let sender = services.sender().await;
    let send = |id: &'static str, event_type: &'static str, at: &'static str, amount: i64| {
        let sender = &sender;
        async move {
            let body = canonical(id, event_type, at, "o-1", amount, "EUR");
            sender.event(&envelope("acme", id, event_type), body.as_bytes()).await;
        }
    };

    // The refund arrives before the sale: the order exists, sold nothing yet.
    send("r-new", "sale.refunded", "2026-03-05T00:00:00Z", 300).await;
    services.rows_when(1).await;
    assert_eq!(
        services.sales().await,
        vec![sale(
            "acme",
            "o-1",
            "EUR",
            None,
            Some((300, "2026-03-05T00:00:00Z", "r-new"))
        )]
    );
    assert_eq!(
        services.sales_per_month().await,
        vec![month("acme", "2026-03", "EUR", 0, 0, 300)]
    );

    send("s-new", "sale.completed", "2026-01-20T00:00:00Z", 1500).await;
    services.rows_when(2).await;
    // An older sale and an older refund, each in a transaction of its own, change nothing.
    send("s-old", "sale.completed", "2026-01-10T00:00:00Z", 1000).await;
    services.rows_when(3).await;
    send("r-old", "sale.refunded", "2026-02-01T00:00:00Z", 100).await;
    services.rows_when(4).await;

    let expected = vec![sale(
        "acme",
        "o-1",
        "EUR",
        Some((1500, "2026-01-20T00:00:00Z", "s-new")),
        Some((300, "2026-03-05T00:00:00Z", "r-new")),
    )];
    assert_eq!(services.sales().await, expected);
    assert_eq!(
        services.sales_per_month().await,
        vec![
            month("acme", "2026-01", "EUR", 1, 1500, 0),
            month("acme", "2026-03", "EUR", 0, 0, 300),
        ]
    );
    app.stop().await;
    sender.close().await;
}

#[tokio::test]
async fn a_malformed_sale_is_retried_then_dead_lettered_and_recorded_while_its_neighbours_commit() {
    let services = Services::new();
    let sources = SourcesFile::new(SOURCES);
    let env = services
        .env()
        .with("SOURCES_FILE", sources.path())
        .with("MAX_RETRIES", 1)
        .with("RETRY_DELAYS", "100ms")
        .with("BATCH_WAIT_MS", 200);
    let app = TestApp::spawn(&env).await;
    let sender = services.sender().await;
    let started = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1);

    let good = |id: &str, order_id: &str| canonical(id, "sale.completed", "2026-04-01T00:00:00Z", order_id, 100, "EUR");
    let no_amount = json!({"id": "bad-1", "type": "sale.completed", "occurred_at": "2026-04-01T00:00:00Z",
                           "data": {"order_id": "o-2", "currency": "EUR"}})
    .to_string();
    let too_precise = json!({"id": 3003, "total_price": "12.345", "currency": "EUR",
                             "processed_at": "2026-04-01T00:00:00Z"})
    .to_string();
    sender
        .event(
            &envelope("acme", "good-1", "sale.completed"),
            good("good-1", "o-1").as_bytes(),
        )
        .await;
    sender
        .event(&envelope("acme", "bad-1", "sale.completed"), no_amount.as_bytes())
        .await;
    sender
        .event(&envelope("shopify", "bad-2", "orders/paid"), too_precise.as_bytes())
        .await;
    sender
        .event(
            &envelope("acme", "good-2", "sale.completed"),
            good("good-2", "o-3").as_bytes(),
        )
        .await;

    // The good ones commit although they shared a batch with the malformed ones.
    let rows = services.rows_when(2).await;
    let ids: Vec<&str> = rows.iter().map(|row| row.delivery_id.as_str()).collect();
    assert_eq!(ids, ["good-1", "good-2"]);
    let orders: Vec<String> = services.sales().await.into_iter().map(|row| row.order_id).collect();
    assert_eq!(orders, ["o-1", "o-3"]);

    testkit::eventually("two dead letters", SOON, || async {
        (services.broker.depth(".dead").await == Some(2)).then_some(())
    })
    .await;
    let mut dead = services.broker.take_all(".dead").await;
    dead.sort_by_key(|letter| letter.properties.message_id().as_ref().map(|id| id.to_string()));
    let errors = [
        "retries exhausted after 1: sale.completed: /data/amount is missing",
        "retries exhausted after 1: orders/paid: /total_price: \"12.345\" has more decimals than EUR allows",
    ];
    for (letter, (body, error)) in dead.iter().zip([(&no_amount, errors[0]), (&too_precise, errors[1])]) {
        assert_eq!(letter.body, body.as_bytes());
        assert_eq!(header(&letter.properties, ERROR).as_deref(), Some(error));
        assert_eq!(header(&letter.properties, RETRY_COUNT).as_deref(), Some("1"));
    }

    let records = testkit::eventually("two dead letter records", SOON, || async {
        let records = services.dead_letter_rows().await;
        (records.len() == 2).then_some(records)
    })
    .await;
    let now = chrono::Utc::now().naive_utc() + chrono::Duration::seconds(1);
    assert!(
        records.iter().all(|r| (started..now).contains(&r.dead_lettered_at)),
        "{records:?}"
    );
    let mut records: Vec<(String, String, String, String, String, u32)> = records
        .into_iter()
        .map(|r| (r.source, r.delivery_id, r.event_type, r.reason, r.error, r.retry_count))
        .collect();
    records.sort();
    assert_eq!(
        records,
        [
            ("acme", "bad-1", "sale.completed", errors[0]),
            ("shopify", "bad-2", "orders/paid", errors[1])
        ]
        .map(|(source, id, event_type, error)| (
            source.to_owned(),
            id.to_owned(),
            event_type.to_owned(),
            "retries_exhausted".to_owned(),
            error.to_owned(),
            1
        ))
    );

    // Each malformed one failed twice: first try and one retry.
    assert_eq!(
        app.metric("webhook_consumer_processed_total{outcome=\"failed\"}").await,
        4.0
    );
    app.metric_reaches("webhook_consumer_processed_total{outcome=\"processed\"}", 2.0)
        .await;
    app.metric_reaches("webhook_consumer_retried_total{attempt=\"1\"}", 2.0)
        .await;
    app.metric_reaches(
        "webhook_consumer_dead_lettered_total{reason=\"retries_exhausted\"}",
        2.0,
    )
    .await;
    assert_eq!(
        app.metric("webhook_consumer_dead_letter_records_failed_total").await,
        0.0
    );
    assert_eq!(services.rows().await.len(), 2);
    app.stop().await;
    assert_eq!(services.broker.depth(".events").await, Some(0));
    assert_eq!(services.broker.depth(".retry.1").await, Some(0));
    sender.close().await;
}

#[tokio::test]
async fn duplicated_deliveries_and_resends_do_not_double_count() {
    let services = Services::new();
    let app = TestApp::spawn(&services.env()).await;
    let sender = services.sender().await;
    let sold = canonical("d-1", "sale.completed", "2026-06-01T10:00:00Z", "o-1", 1000, "EUR");
    let refunded = canonical("r-1", "sale.refunded", "2026-06-02T10:00:00Z", "o-1", 200, "EUR");

    for _ in 0..3 {
        sender
            .event(&envelope("acme", "d-1", "sale.completed"), sold.as_bytes())
            .await;
    }
    for _ in 0..2 {
        sender
            .event(&envelope("acme", "r-1", "sale.refunded"), refunded.as_bytes())
            .await;
    }
    // The vendor resends the same sale under a new delivery id: a new event, the same order.
    sender
        .event(&envelope("acme", "d-1-resent", "sale.completed"), sold.as_bytes())
        .await;
    testkit::eventually("every copy counted", SOON, || async {
        let rows = services.rows().await;
        let duplicates: u32 = rows.iter().map(|row| row.duplicates).sum();
        (rows.len() == 3 && duplicates == 3).then_some(())
    })
    .await;
    // Once more, surely in a batch of its own (already stored).
    sender
        .event(&envelope("acme", "d-1", "sale.completed"), sold.as_bytes())
        .await;
    testkit::eventually("a fourth duplicate", SOON, || async {
        let duplicates: u32 = services.rows().await.iter().map(|row| row.duplicates).sum();
        (duplicates == 4).then_some(())
    })
    .await;

    assert_eq!(
        services.sales().await,
        // Of two events tied in time and amount, the greater event id wins, whatever came first.
        vec![sale(
            "acme",
            "o-1",
            "EUR",
            Some((1000, "2026-06-01T10:00:00Z", "d-1-resent")),
            Some((200, "2026-06-02T10:00:00Z", "r-1"))
        )]
    );
    assert_eq!(
        services.sales_per_month().await,
        vec![month("acme", "2026-06", "EUR", 1, 1000, 200)]
    );
    app.stop().await;
    sender.close().await;
}

#[tokio::test]
async fn a_bad_sales_mapping_stops_the_consumer_at_start_with_one_line() {
    let services = Services::new();
    let sources = SourcesFile::new(
        "[[source]]\nname = \"shop\"\nscheme = \"shopify\"\n[source.sales]\npreset = \"shopify\"\namount = \"total_price\"\n",
    );
    let env = services.env().with("SOURCES_FILE", sources.path());
    let lookup = env.lookup();
    let error = consumer::Settings::from_vars(&webhook_core::config::Vars::new(&lookup))
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        format!(
            "invalid configuration: SOURCES_FILE={:?}: expected a valid sources file: source \"shop\": field `sales.amount`: \"total_price\" is not a JSON pointer (it must start with '/', e.g. \"/data/amount\")",
            sources.path()
        )
    );
}
