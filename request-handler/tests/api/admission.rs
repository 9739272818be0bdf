//! Admission through the HTTP endpoint: a source over its rate limit gets 429 with
//! `Retry-After`, or, with `when_limited = "accept"`, is let in and counted.

use std::time::Duration;

use testkit::{TestBroker, eventually};

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
