//! Admission through the HTTP endpoint: a source over its rate limit gets 429 with
//! `Retry-After` (or, with `when_limited = "accept"`, is let in and counted) and only signed
//! requests spend its limit, a handler past
//! `MAX_IN_FLIGHT` sheds with 503 before reading the body while health and metrics still
//! answer, a filtered event type is answered 200 and never published, and signed timestamps
//! land in the clock-skew histogram.

use std::time::Duration;

use testkit::{TcpProxy, TestBroker, eventually};
use webhook_core::envelope::Envelope;
use webhook_core::signature::sign_stripe;

use crate::helpers::{TestApp, env, json};

const SECRET: &str = "admission-secret";

/// A handler serving `sources`, with `extra` variables on top of the usual ones.
async fn app_with(sources: &str, extra: &[(&str, &str)]) -> (TestApp, testkit::SourcesFile) {
    let sources = testkit::SourcesFile::new(sources);
    let broker = TestBroker::new();
    let mut env = env(&broker).with("SOURCES_FILE", sources.path());
    for (name, value) in extra {
        env.set(name, value);
    }
    let app = TestApp::spawn_with(broker, &env).await;
    app.wait_ready().await;
    (app, sources)
}

/// POSTs a GitHub-signed event of `event_type` to `/webhooks/{source}` with a new delivery id.
async fn post_github(app: &TestApp, source: &str, event_type: &str) -> reqwest::Response {
    let body = br#"{"action":"opened"}"#;
    let signature = testkit::sign(SECRET, body);
    let delivery_id = format!("delivery-{}", testkit::unique_suffix());
    app.post(
        &format!("/webhooks/{source}"),
        body,
        &[
            ("X-Hub-Signature-256", &signature),
            ("X-GitHub-Delivery", &delivery_id),
            ("X-GitHub-Event", event_type),
        ],
    )
    .await
}

fn github_source(name: &str, extra: &str) -> String {
    format!("[[source]]\nname = \"{name}\"\nscheme = \"github\"\nsecrets = [\"{SECRET}\"]\n{extra}\n")
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("Retry-After")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_source_over_its_rate_limit_gets_429_with_retry_after_and_nothing_is_published() {
    // One token per 100 s: the third request finds the bucket empty for about that long.
    let sources = github_source("gh", "rate_limit = { per_second = 0.01, burst = 2 }") + &github_source("other", "");
    let (app, _file) = app_with(&sources, &[]).await;
    for _ in 0..2 {
        assert_eq!(post_github(&app, "gh", "push").await.status(), 200);
    }
    let refused = post_github(&app, "gh", "push").await;
    assert_eq!(refused.status(), 429);
    let wait = retry_after(&refused);
    assert!((1..=100).contains(&wait), "Retry-After: {wait}");
    assert_eq!(
        json(refused).await,
        serde_json::json!({"error": "rate limit of this source exceeded"})
    );
    // Another source is not held back by this one's limit.
    assert_eq!(post_github(&app, "other", "push").await.status(), 200);

    assert_eq!(app.broker.take_all(".events").await.len(), 3);
    assert_eq!(
        app.metric("webhook_handler_requests_total{source=\"gh\",outcome=\"rejected\",reason=\"rate_limited\"}")
            .await,
        1.0
    );
    // Counted like every rejection: a record in `{P}.rejected` too.
    eventually("the rejection record", Duration::from_secs(10), || async {
        (app.broker.depth(".rejected").await == Some(1)).then_some(())
    })
    .await;
    let records = app.broker.take_all(".rejected").await;
    assert_eq!(records.len(), 1);
    let record: serde_json::Value = serde_json::from_slice(&records[0].body).unwrap();
    assert_eq!(
        (record["reason"].as_str(), record["status"].as_u64()),
        (Some("rate_limited"), Some(429))
    );
}

#[tokio::test]
async fn unsigned_requests_do_not_spend_a_sources_rate_limit() {
    let sources = github_source("gh", "rate_limit = { per_second = 0.01, burst = 2 }");
    let (app, _file) = app_with(&sources, &[]).await;
    // A stranger's flood: twenty requests with a wrong signature, each refused for it, none
    // for the limit.
    let body = br#"{"action":"opened"}"#;
    let forged = testkit::sign("not-the-secret", body);
    for attempt in 0..20 {
        let response = app
            .post(
                "/webhooks/gh",
                body,
                &[
                    ("X-Hub-Signature-256", &forged),
                    ("X-GitHub-Delivery", &format!("forged-{attempt}")),
                    ("X-GitHub-Event", "push"),
                ],
            )
            .await;
        assert_eq!(response.status(), 401, "forged request {attempt}");
    }
    // The vendor still has its whole burst, and then the limit holds.
    for _ in 0..2 {
        assert_eq!(post_github(&app, "gh", "push").await.status(), 200);
    }
    assert_eq!(post_github(&app, "gh", "push").await.status(), 429);
    assert_eq!(app.broker.take_all(".events").await.len(), 2);
}

#[tokio::test]
async fn an_accept_source_over_its_rate_limit_is_still_queued_and_counted() {
    let sources = github_source(
        "hook",
        "rate_limit = { per_second = 0.01, burst = 1 }\nwhen_limited = \"accept\"",
    );
    let (app, _file) = app_with(&sources, &[]).await;
    for _ in 0..3 {
        let response = post_github(&app, "hook", "push").await;
        assert_eq!(response.status(), 200);
        assert_eq!(json(response).await["status"], "queued");
    }
    assert_eq!(app.broker.take_all(".events").await.len(), 3);
    assert_eq!(
        app.metric("webhook_handler_admitted_over_limit_total{source=\"hook\",reason=\"rate_limited\"}")
            .await,
        2.0
    );
    assert_eq!(
        app.metric("webhook_handler_requests_total{source=\"hook\",outcome=\"queued\",reason=\"\"}")
            .await,
        3.0
    );
}

#[tokio::test]
async fn past_max_in_flight_requests_are_shed_with_503_while_health_and_metrics_answer() {
    // The broker behind a proxy that can go silent: publishes are written and never
    // confirmed, so the requests that got in stay in work as long as the test wants.
    let broker = TestBroker::new();
    let proxy = TcpProxy::start("127.0.0.1:5672").await;
    let file =
        testkit::SourcesFile::new(&(github_source("gh", "") + &github_source("hook", "when_limited = \"accept\"")));
    let env = env(&broker)
        .with("AMQP_URL", proxy.amqp_url())
        .with("SOURCES_FILE", file.path())
        .with("MAX_IN_FLIGHT", 2)
        .with("ENQUEUE_TIMEOUT_MS", 120_000);
    let app = std::sync::Arc::new(TestApp::spawn_with(broker, &env).await);
    app.wait_ready().await;
    proxy.stall();

    let held: Vec<_> = (0..2)
        .map(|_| {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move { post_github(&app, "gh", "push").await.status() })
        })
        .collect();
    eventually("both requests to be in work", Duration::from_secs(20), || async {
        (app.metric("webhook_handler_in_work_requests").await == 2.0).then_some(())
    })
    .await;

    for _ in 0..5 {
        let shed = post_github(&app, "gh", "push").await;
        assert_eq!(shed.status(), 503);
        assert_eq!(retry_after(&shed), 1);
        assert_eq!(
            json(shed).await,
            serde_json::json!({"error": "too many requests in flight"})
        );
    }
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/metrics").await.status(), 200);
    assert_eq!(
        app.metric("webhook_handler_requests_total{source=\"gh\",outcome=\"rejected\",reason=\"overloaded\"}")
            .await,
        5.0
    );
    // A source whose vendor never resends is let in past the cap, and counted.
    let let_in = {
        let app = std::sync::Arc::clone(&app);
        tokio::spawn(async move { post_github(&app, "hook", "push").await.status() })
    };
    eventually(
        "the accept source's request to be let in",
        Duration::from_secs(20),
        || async {
            (app.metric("webhook_handler_admitted_over_limit_total{source=\"hook\",reason=\"overloaded\"}")
                .await
                == 1.0)
                .then_some(())
        },
    )
    .await;

    proxy.restore();
    for request in held {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(let_in.await.unwrap(), 200);
    assert_eq!(app.broker.take_all(".events").await.len(), 3);
}

#[tokio::test]
async fn a_filtered_event_type_is_verified_answered_200_and_never_published() {
    let sources = github_source("drops", "drop_types = [\"ping\", \"*.updated\"]")
        + &github_source("keeps", "accept_types = [\"orders/*\"]");
    let (app, _file) = app_with(&sources, &[]).await;

    for (source, event_type) in [("drops", "ping"), ("drops", "customer.updated"), ("keeps", "push")] {
        let response = post_github(&app, source, event_type).await;
        assert_eq!(response.status(), 200, "{source} {event_type}");
        let answer = json(response).await;
        assert_eq!(answer["status"], "filtered", "{source} {event_type}");
        assert!(answer["id"].as_str().unwrap().starts_with("delivery-"));
    }
    // Verified first: an unsigned event of a dropped type is still refused.
    let unsigned = app
        .post(
            "/webhooks/drops",
            br#"{}"#,
            &[("X-GitHub-Delivery", "d-1"), ("X-GitHub-Event", "ping")],
        )
        .await;
    assert_eq!(unsigned.status(), 401);
    for (source, event_type) in [("drops", "push"), ("keeps", "orders/paid")] {
        let response = post_github(&app, source, event_type).await;
        assert_eq!(json(response).await["status"], "queued", "{source} {event_type}");
    }

    let mut published: Vec<(String, String)> = app
        .broker
        .take_all(".events")
        .await
        .iter()
        .map(|taken| {
            let envelope = Envelope::from_properties(&taken.properties).unwrap();
            (envelope.source.to_string(), envelope.event_type.to_string())
        })
        .collect();
    published.sort();
    let expected = [("drops", "push"), ("keeps", "orders/paid")]
        .map(|(source, event_type)| (source.to_owned(), event_type.to_owned()));
    assert_eq!(published, expected);
    assert_eq!(
        app.metric("webhook_handler_requests_total{source=\"drops\",outcome=\"filtered\",reason=\"drop_types\"}")
            .await,
        2.0
    );
    assert_eq!(
        app.metric("webhook_handler_requests_total{source=\"keeps\",outcome=\"filtered\",reason=\"accept_types\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn signed_timestamps_behind_and_ahead_land_in_the_clock_skew_histogram() {
    let sources = "[[source]]\nname = \"stripe\"\nscheme = \"stripe\"\nsecrets = [\"whsec_skew\"]\n".to_owned()
        + &github_source("gh", "");
    let (app, _file) = app_with(&sources, &[]).await;
    let now = chrono::Utc::now().timestamp();
    for (n, offset) in [(1, -100), (2, 50)] {
        let body = format!(r#"{{"id":"evt_{n}","type":"charge.succeeded"}}"#);
        let signature = sign_stripe(b"whsec_skew", now + offset, body.as_bytes());
        let response = app
            .post("/webhooks/stripe", body.as_bytes(), &[("Stripe-Signature", &signature)])
            .await;
        assert_eq!(response.status(), 200);
    }
    // A source without a signed timestamp has no skew to report.
    assert_eq!(post_github(&app, "gh", "push").await.status(), 200);

    let metrics = app.get("/metrics").await.text().await.unwrap();
    let value = |series: &str| crate::helpers::metric_value(&metrics, series);
    assert_eq!(
        value("webhook_handler_clock_skew_seconds_count{source=\"stripe\"}"),
        2.0,
        "{metrics}"
    );
    // 100 s behind (now − t = +100, give or take the second the requests took) and 50 s ahead.
    assert_eq!(
        value("webhook_handler_clock_skew_seconds_bucket{le=\"-30.0\",source=\"stripe\"}"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        value("webhook_handler_clock_skew_seconds_bucket{le=\"60.0\",source=\"stripe\"}"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        value("webhook_handler_clock_skew_seconds_bucket{le=\"120.0\",source=\"stripe\"}"),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        value("webhook_handler_timestamp_tolerance_seconds{source=\"stripe\"}"),
        300.0,
        "{metrics}"
    );
    assert!(
        !metrics.contains("clock_skew_seconds_count{source=\"gh\"}"),
        "{metrics}"
    );
}
