//! The page and the API over seeded data in a database of its own.

#![allow(clippy::unwrap_used)]

mod support;

use support::start_dashboard;

use sqlx::Executor;
use testkit::TestDatabase;

async fn seed(database: &TestDatabase) {
    let mut connection = database.connect().await;
    connection
        .execute(
            "INSERT INTO sales (source, order_id, currency, amount_minor, sold_at, refunded_minor, refunded_at, updated_at) VALUES \
             ('shop', 'o1', 'EUR', 10000, '2026-01-10', 0, NULL, NOW()), \
             ('shop', 'o2', 'EUR', 2550, '2026-01-20', 2550, '2026-02-02', NOW()), \
             ('shop', 'o3', 'EUR', 700, '2026-03-01', 0, NULL, NOW()), \
             ('shop', 'o4', 'USD', 999, '2026-03-05', 0, NULL, NOW()), \
             ('stripe', 's1', 'EUR', 123456, '2026-02-14', 0, NULL, NOW())",
        )
        .await
        .unwrap();
    connection
        .execute(
            "INSERT INTO dead_letters (source, delivery_id, event_type, reason, error, retry_count, dead_lettered_at) VALUES \
             ('shop', 'bad-1', 'orders/paid', 'poison', 'body is not valid JSON', 0, '2026-03-02 10:00:00')",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_api_returns_exact_monthly_sums_per_vendor_and_currency() {
    let database = TestDatabase::new();
    database.create_migrated().await;
    seed(&database).await;
    let (base, _stop) = start_dashboard(&database).await;
    let client = reqwest::Client::new();
    let body: serde_json::Value = client
        .get(format!("{base}/api/sales?vendor=shop&from=2026-01&to=2026-03"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows: Vec<(String, String, i64, i64, i64, i64)> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["month"].as_str().unwrap().to_owned(),
                r["currency"].as_str().unwrap().to_owned(),
                r["orders"].as_i64().unwrap(),
                r["gross_minor"].as_i64().unwrap(),
                r["refunded_minor"].as_i64().unwrap(),
                r["net_minor"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("2026-01".into(), "EUR".into(), 2, 12550, 0, 12550),
            ("2026-02".into(), "EUR".into(), 0, 0, 2550, -2550),
            ("2026-03".into(), "EUR".into(), 1, 700, 0, 700),
            ("2026-03".into(), "USD".into(), 1, 999, 0, 999),
        ]
    );
    let response = client
        .get(format!("{base}/api/sales?from=2026-13"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"], "from=\"2026-13\" is not a month like 2026-01");
}

#[tokio::test]
async fn the_page_shows_a_bar_per_month_with_data_totals_and_dead_letters() {
    let database = TestDatabase::new();
    database.create_migrated().await;
    seed(&database).await;
    let (base, _stop) = start_dashboard(&database).await;
    let page = reqwest::get(format!("{base}/?from=2026-01&to=2026-03"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // One chart per vendor and currency; shop/EUR has data in three months.
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 3);
    let shop_eur = page.split("data-source=\"shop\" data-currency=\"EUR\"").nth(2).unwrap();
    let shop_eur = shop_eur.split("</svg>").next().unwrap();
    assert_eq!(shop_eur.matches("<rect class=\"bar\"").count(), 3);
    assert!(page.contains("3 orders · gross 132.50 EUR · refunded 25.50 EUR · <strong>net 107.00 EUR</strong>"));
    assert!(page.contains("1,234.56 EUR"));
    assert!(page.contains("bad-1") && page.contains("body is not valid JSON"));

    let filtered = reqwest::get(format!("{base}/?vendor=stripe&from=2026-01&to=2026-03"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(filtered.matches("<svg class=\"chart\"").count(), 1);
    assert!(!filtered.contains("bad-1"));

    let empty = reqwest::get(format!("{base}/?from=2020-01&to=2020-02"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(empty.contains("No sales in this range"));
}

#[tokio::test]
async fn without_a_database_the_page_explains_and_readyz_is_503() {
    let database = TestDatabase::new(); // never created
    let (base, _stop) = start_dashboard(&database).await;
    let page = reqwest::get(format!("{base}/")).await.unwrap().text().await.unwrap();
    assert!(page.contains("The database cannot be read right now"), "{page}");
    assert_eq!(reqwest::get(format!("{base}/readyz")).await.unwrap().status(), 503);
    assert_eq!(reqwest::get(format!("{base}/healthz")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn bad_queries_unknown_paths_and_other_methods_get_the_dashboards_own_answers() {
    let database = TestDatabase::new();
    database.create_migrated().await;
    let (base, _stop) = start_dashboard(&database).await;
    let client = reqwest::Client::new();
    let content_type = |response: &reqwest::Response| {
        response.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned()
    };

    // A query string that cannot be read at all (a parameter twice): JSON under /api/ …
    let response = client
        .get(format!("{base}/api/health?vendor=shop&vendor=stripe"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(content_type(&response), "application/json");
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        error["error"],
        "the query string cannot be read: duplicate field `vendor`"
    );
    // … and the page, saying what is wrong, elsewhere.
    let response = client
        .get(format!("{base}/?from=2026-01&from=2026-02"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(content_type(&response), "text/html; charset=utf-8");
    let page = response.text().await.unwrap();
    assert!(page.contains(r#"<section class="problem" id="problem">"#), "{page}");
    assert!(page.contains("duplicate field `from`"), "{page}");
    let response = client.get(format!("{base}/?to=2026-99")).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains(r#"to="2026-99" is not a month like 2026-01"#)
    );

    let response = client.get(format!("{base}/api/nothing")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"], "not found");
    let response = client.get(format!("{base}/nothing")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(content_type(&response), "text/html; charset=utf-8");
    assert!(response.text().await.unwrap().contains("Back to the dashboard"));

    let response = client.post(format!("{base}/api/sales")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()[reqwest::header::ALLOW], "GET, HEAD");
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"], "only GET and HEAD are answered here");
}

#[tokio::test]
async fn every_answer_forbids_sniffing_scripts_and_framing_and_head_is_answered() {
    let database = TestDatabase::new();
    database.create_migrated().await;
    seed(&database).await;
    let (base, _stop) = start_dashboard(&database).await;
    let client = reqwest::Client::new();
    for path in [
        "/?from=2026-01&to=2026-03",
        "/api/sales",
        "/api/health",
        "/api/dead-letters",
        "/healthz",
        "/readyz",
        "/api/sales?from=2026-13",
        "/nothing",
    ] {
        let get = client.get(format!("{base}{path}")).send().await.unwrap();
        let headers = get.headers().clone();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(
            policy.starts_with("default-src 'none'; style-src 'sha256-"),
            "{path}: {policy}"
        );
        assert!(policy.contains("frame-ancestors 'none'"), "{path}: {policy}");
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
        let status = get.status();
        let body = get.bytes().await.unwrap();
        assert!(!body.is_empty(), "{path}");

        let head = client.head(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(head.status(), status, "HEAD {path}");
        assert_eq!(
            head.headers()[reqwest::header::CONTENT_TYPE],
            headers[reqwest::header::CONTENT_TYPE],
            "HEAD {path}"
        );
        assert_eq!(head.headers()["content-security-policy"], policy, "HEAD {path}");
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path} has a body");
    }
}

#[tokio::test]
async fn the_ledger_shows_balanced_in_flight_and_unexplained_days_and_exports_the_unexplained() {
    let database = TestDatabase::new();
    database.create_migrated().await;
    let mut connection = database.connect().await;
    // Written as the consumer writes them; the triggers count them. Today, so the metric's
    // window holds them.
    connection
        .execute(
            "INSERT INTO ledger_messages (received_at, accepted_id, source, day, outcome, first_seen_at, seen_at, due_at) VALUES \
             (UTC_DATE(), 'a1', 'shop', UTC_DATE(), 'stored', NOW(), NOW(), NULL), \
             (UTC_DATE(), 'a2', 'shop', UTC_DATE(), 'duplicate', NOW(), NOW(), NULL), \
             (UTC_DATE(), 'a3', 'shop', UTC_DATE(), 'dead_lettered', NOW(), NOW(), NULL), \
             (UTC_DATE() - INTERVAL 1 DAY, 'a4', 'shop', UTC_DATE() - INTERVAL 1 DAY, 'stored', NOW(), NOW(), NULL), \
             (UTC_DATE() - INTERVAL 1 DAY, 'a5', 'shop', UTC_DATE() - INTERVAL 1 DAY, NULL, NOW(), NOW(), UTC_TIMESTAMP() + INTERVAL 1 HOUR), \
             (UTC_DATE(), 'b1', 'stripe', UTC_DATE(), NULL, NOW(), NOW(), UTC_TIMESTAMP() - INTERVAL 1 HOUR), \
             (UTC_DATE(), 'b2', 'stripe', UTC_DATE(), 'stored', NOW(), NOW(), NULL)",
        )
        .await
        .unwrap();
    connection
        .execute(
            "INSERT INTO rejections (received_at, source, reason, status, request_id) VALUES \
             (UTC_TIMESTAMP(), 'shop', 'signature_mismatch', 401, 'r1'), \
             (UTC_TIMESTAMP(), 'shop', 'signature_mismatch', 401, 'r2'), \
             (UTC_TIMESTAMP(), 'shop', 'body_too_large', 413, 'r3')",
        )
        .await
        .unwrap();
    let (base, _stop) = start_dashboard(&database).await;
    let today = chrono::Utc::now().date_naive();
    let yesterday = today.pred_opt().unwrap();

    let body: serde_json::Value = reqwest::get(format!("{base}/api/ledger"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows: Vec<String> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} accepted={} stored={} duplicates={} dead={} difference={} in_flight={} unexplained={} rejected={} {}",
                r["day"].as_str().unwrap(),
                r["source"].as_str().unwrap(),
                r["accepted"],
                r["stored"],
                r["duplicates"],
                r["dead_lettered"],
                r["difference"],
                r["in_flight"],
                r["unexplained"],
                r["rejected"],
                r["rejected_by_reason"]
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            format!(
                "{today} shop accepted=3 stored=1 duplicates=1 dead=1 difference=0 in_flight=0 unexplained=0 rejected=3 {{\"body_too_large\":1,\"signature_mismatch\":2}}"
            ),
            format!(
                "{today} stripe accepted=2 stored=1 duplicates=0 dead=0 difference=1 in_flight=0 unexplained=1 rejected=0 {{}}"
            ),
            format!(
                "{yesterday} shop accepted=2 stored=1 duplicates=0 dead=0 difference=1 in_flight=1 unexplained=0 rejected=0 {{}}"
            ),
        ]
    );

    let page = reqwest::get(format!("{base}/")).await.unwrap().text().await.unwrap();
    let ledger = page.split("<section id=\"ledger\">").nth(1).unwrap();
    let ledger = ledger.split("</section>").next().unwrap();
    let row_of = |source: &str, day: &str| {
        let start = format!("<tr data-source=\"{source}\" data-day=\"{day}\">");
        ledger
            .split(&start)
            .nth(1)
            .unwrap()
            .split("</tr>")
            .next()
            .unwrap()
            .to_owned()
    };
    // Only the unexplained difference is red; the one in flight is not.
    assert!(row_of("stripe", &today.to_string()).contains("class=\"num bad\" data-unexplained=\"true\">1<"));
    assert!(!row_of("shop", &yesterday.to_string()).contains("bad"));
    assert!(!row_of("shop", &today.to_string()).contains("bad"));
    assert!(row_of("shop", &today.to_string()).contains("3 (body_too_large: 1, signature_mismatch: 2)"));

    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("webhook_dashboard_ledger_unexplained{source=\"stripe\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("webhook_dashboard_ledger_unexplained{source=\"shop\"} 0\n"),
        "{metrics}"
    );
    assert!(metrics.contains("webhook_dashboard_ledger_up 1\n"), "{metrics}");
    let read = std::time::Instant::now();

    // One more unexplained message: a flood of scrapes within the next seconds is served from
    // the reading above (one query per 5 s, however many strangers scrape), and a later scrape
    // sees the new difference.
    connection
        .execute(
            "INSERT INTO ledger_messages (received_at, accepted_id, source, day, outcome, first_seen_at, seen_at, due_at) VALUES \
             (UTC_DATE(), 'b3', 'stripe', UTC_DATE(), NULL, NOW(), NOW(), UTC_TIMESTAMP() - INTERVAL 1 HOUR)",
        )
        .await
        .unwrap();
    let scrapes = (0..50).map(|_| async {
        reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let flood = futures_util::future::join_all(scrapes).await;
    if read.elapsed() < std::time::Duration::from_secs(4) {
        for metrics in &flood {
            assert!(
                metrics.contains("webhook_dashboard_ledger_unexplained{source=\"stripe\"} 1\n"),
                "a scrape within 5 s of a reading read the view again: {metrics}"
            );
        }
    }
    testkit::eventually(
        "the next reading of the ledger",
        std::time::Duration::from_secs(20),
        || async {
            let metrics = reqwest::get(format!("{base}/metrics")).await.ok()?.text().await.ok()?;
            metrics
                .contains("webhook_dashboard_ledger_unexplained{source=\"stripe\"} 2\n")
                .then_some(())
        },
    )
    .await;
}
