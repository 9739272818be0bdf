//! Every signature scheme through the HTTP endpoint: a correctly signed request is queued; a
//! tampered body, a wrong secret, a stale timestamp and a malformed header are 401 and nothing
//! is published.

use webhook_core::envelope::Envelope;
use webhook_core::payload::BodyFormat;
use webhook_core::signature::{Algorithm, Encoding, GenericHmac, sign_generic, sign_slack, sign_standard, sign_stripe};

use crate::helpers::{TestApp, env, json};

const SOURCES: &str = r#"
[[source]]
name = "stripe"
scheme = "stripe"
secrets = ["whsec_old", "whsec_stripe"]

[[source]]
name = "shopify"
scheme = "shopify"
secrets = ["shpss_shop"]

[[source]]
name = "slack"
scheme = "slack"
secrets = ["slack_secret"]

[[source]]
name = "slash"
scheme = "slack"
secrets = ["slack_secret"]
body_format = "form"

[[source]]
name = "svix"
scheme = "standard"
secrets = ["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]

[[source]]
name = "custom"
scheme = "hmac"
secrets = ["custom_key"]
header = "X-Custom-Signature"
algorithm = "sha512"
encoding = "base64"
prefix = "v1="
signed = "{timestamp}.{body}"
timestamp_header = "X-Custom-Timestamp"
delivery_id = { header = "X-Custom-Id" }
event_type = { json = "/event/name" }
"#;

async fn app() -> (TestApp, testkit::SourcesFile) {
    let sources = testkit::SourcesFile::new(SOURCES);
    let broker = testkit::TestBroker::new();
    let env = env(&broker).with("SOURCES_FILE", sources.path());
    let app = TestApp::spawn_with(broker, &env).await;
    app.wait_ready().await;
    (app, sources)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Posts each rejected case, expecting 401, then one good request, expecting 200 and to be the
/// only message published.
async fn check(app: &TestApp, path: &str, good: Request, bad: Vec<Request>) -> Envelope {
    for (body, headers) in &bad {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let response = app.post(path, body, &headers).await;
        assert_eq!(response.status(), 401, "{path} {headers:?}");
        assert_eq!(json(response).await, serde_json::json!({"error": "invalid signature"}));
    }
    let (body, headers) = good;
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let response = app.post(path, &body, &headers).await;
    assert_eq!(response.status(), 200, "{path} {headers:?}");
    let taken = app.broker.take_all(".events").await;
    assert_eq!(taken.len(), 1, "{path}: a rejected request was published");
    assert_eq!(taken[0].body, body);
    Envelope::from_properties(&taken[0].properties).unwrap()
}

type Request = (Vec<u8>, Vec<(String, String)>);

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[tokio::test]
async fn stripe_signatures_are_checked_with_every_secret_and_the_timestamp() {
    let (app, _dir) = app().await;
    let body = br#"{"id":"evt_123","type":"charge.succeeded","data":{"object":{"amount":1000}}}"#.to_vec();
    let good = sign_stripe(b"whsec_stripe", now(), &body);
    let bad = vec![
        (
            br#"{"id":"evt_123","type":"charge.succeeded","data":{"object":{"amount":1}}}"#.to_vec(),
            h(&[("Stripe-Signature", &good)]),
        ),
        (
            body.clone(),
            h(&[("Stripe-Signature", &sign_stripe(b"whsec_wrong", now(), &body))]),
        ),
        (
            body.clone(),
            h(&[("Stripe-Signature", &sign_stripe(b"whsec_stripe", now() - 301, &body))]),
        ),
        (body.clone(), h(&[("Stripe-Signature", "t=abc,v1=zz")])),
    ];
    let envelope = check(
        &app,
        "/webhooks/stripe",
        (body.clone(), h(&[("Stripe-Signature", &good)])),
        bad,
    )
    .await;
    assert_eq!(
        (envelope.delivery_id.as_str(), envelope.event_type.as_str()),
        ("evt_123", "charge.succeeded")
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("webhook_handler_signatures_verified_total{source=\"stripe\",secret_index=\"1\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("source=\"stripe\",outcome=\"rejected\",reason=\"timestamp_out_of_tolerance\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn shopify_signatures_are_checked() {
    let (app, _dir) = app().await;
    let body = br#"{"id":820982911946154508,"total_price":"10.00"}"#.to_vec();
    let sign = |secret: &[u8], body: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(Algorithm::Sha256.sign(secret, &[body]))
    };
    let good = sign(b"shpss_shop", &body);
    let headers = |signature: &str| {
        h(&[
            ("X-Shopify-Hmac-Sha256", signature),
            ("X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"),
            ("X-Shopify-Topic", "orders/paid"),
        ])
    };
    let bad = vec![
        (
            br#"{"id":820982911946154508,"total_price":"0.01"}"#.to_vec(),
            headers(&good),
        ),
        (body.clone(), headers(&sign(b"other", &body))),
        (body.clone(), headers("%%%")),
    ];
    let envelope = check(&app, "/webhooks/shopify", (body, headers(&good)), bad).await;
    assert_eq!(envelope.delivery_id, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
    assert_eq!(envelope.event_type, "orders/paid");
}

#[tokio::test]
async fn slack_signatures_are_checked_with_the_timestamp() {
    let (app, _dir) = app().await;
    let body = br#"{"type":"event_callback","event_id":"Ev123","event":{"type":"message"}}"#.to_vec();
    let ts = now();
    let headers = |signature: &str, ts: i64| {
        h(&[
            ("X-Slack-Signature", signature),
            ("X-Slack-Request-Timestamp", &ts.to_string()),
        ])
    };
    let good = sign_slack(b"slack_secret", ts, &body);
    let bad = vec![
        (
            br#"{"type":"event_callback","event_id":"Ev999"}"#.to_vec(),
            headers(&good, ts),
        ),
        (body.clone(), headers(&sign_slack(b"wrong", ts, &body), ts)),
        (
            body.clone(),
            headers(&sign_slack(b"slack_secret", ts + 400, &body), ts + 400),
        ),
        (body.clone(), headers("v0=nothex", ts)),
    ];
    let envelope = check(&app, "/webhooks/slack", (body, headers(&good, ts)), bad).await;
    assert_eq!(
        (envelope.delivery_id.as_str(), envelope.event_type.as_str()),
        ("Ev123", "event_callback")
    );
}

#[tokio::test]
async fn slack_slash_commands_are_forms_signed_like_any_slack_request() {
    let (app, _dir) = app().await;
    let body = b"token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T0001&command=%2Fdeploy&text=prod+now&trigger_id=13345224609.738474920.8088930838d88f008e0".to_vec();
    let ts = now();
    let headers = |signature: &str, ts: i64| {
        h(&[
            ("X-Slack-Signature", signature),
            ("X-Slack-Request-Timestamp", &ts.to_string()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ])
    };
    let good = sign_slack(b"slack_secret", ts, &body);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b"&text=staging");
    let bad = vec![
        (tampered, headers(&good, ts)),
        (body.clone(), headers(&sign_slack(b"wrong", ts, &body), ts)),
        (
            body.clone(),
            headers(&sign_slack(b"slack_secret", ts - 301, &body), ts - 301),
        ),
        (body.clone(), headers("v1=abc", ts)),
    ];
    let envelope = check(&app, "/webhooks/slash", (body, headers(&good, ts)), bad).await;
    assert_eq!(envelope.body_format, BodyFormat::Form);
    assert_eq!(
        (envelope.delivery_id.as_str(), envelope.event_type.as_str()),
        ("13345224609.738474920.8088930838d88f008e0", "/deploy")
    );
}

#[tokio::test]
async fn a_body_in_the_wrong_format_for_its_source_is_400_and_not_queued() {
    let (app, _dir) = app().await;
    let ts = now();
    let cases: [(&str, &[u8], &str); 3] = [
        (
            "/webhooks/slash",
            b"text=caf\xe9",
            "body is not form-encoded: not valid UTF-8 (at byte 8)",
        ),
        ("/webhooks/slash", b"&&", "body is not form-encoded: it has no fields"),
        (
            "/webhooks/slack",
            b"command=%2Fdeploy",
            "body is not valid JSON: expected value at line 1 column 1",
        ),
    ];
    for (path, body, error) in cases {
        let signature = sign_slack(b"slack_secret", ts, body);
        let ts = ts.to_string();
        let response = app
            .post(
                path,
                body,
                &[("X-Slack-Signature", &signature), ("X-Slack-Request-Timestamp", &ts)],
            )
            .await;
        assert_eq!(response.status(), 400, "{path}");
        assert_eq!(json(response).await, serde_json::json!({ "error": error }), "{path}");
    }
    assert_eq!(app.broker.take_all(".events").await.len(), 0);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"webhook_handler_requests_total{source="slash",outcome="rejected",reason="not_form"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_delivery_id_from_the_body_that_ends_in_a_space_is_400() {
    // The unique key would take "evt_1 " for "evt_1" and drop it as a duplicate.
    let (app, _dir) = app().await;
    let body = br#"{"id":"evt_1 ","type":"charge.succeeded"}"#;
    let signature = sign_stripe(b"whsec_stripe", now(), body);
    let response = app
        .post("/webhooks/stripe", body, &[("Stripe-Signature", &signature)])
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        json(response).await,
        serde_json::json!({"error": "delivery id ends with a space"})
    );
    assert_eq!(app.broker.take_all(".events").await.len(), 0);
}

#[tokio::test]
async fn standard_webhooks_signatures_are_checked_with_the_timestamp() {
    let (app, _dir) = app().await;
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let body = br#"{"type":"invoice.paid","data":{"id":"in_1"}}"#.to_vec();
    let ts = now();
    let headers = |signature: &str, ts: i64| {
        h(&[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", &ts.to_string()),
            ("webhook-signature", signature),
        ])
    };
    let good = sign_standard(secret, "msg_1", ts, &body).unwrap();
    let wrong = sign_standard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_1", ts, &body).unwrap();
    let stale = sign_standard(secret, "msg_1", ts - 400, &body).unwrap();
    let bad = vec![
        (
            br#"{"type":"invoice.paid","data":{"id":"in_2"}}"#.to_vec(),
            headers(&good, ts),
        ),
        (body.clone(), headers(&wrong, ts)),
        (body.clone(), headers(&stale, ts - 400)),
        (body.clone(), headers("v1,", ts)),
    ];
    let envelope = check(&app, "/webhooks/svix", (body, headers(&good, ts)), bad).await;
    assert_eq!(
        (envelope.delivery_id.as_str(), envelope.event_type.as_str()),
        ("msg_1", "invoice.paid")
    );
}

#[tokio::test]
async fn generic_hmac_signatures_are_checked_with_configured_id_and_type() {
    let (app, _dir) = app().await;
    let scheme = GenericHmac {
        algorithm: Algorithm::Sha512,
        encoding: Encoding::Base64,
        prefix: Some("v1=".to_owned()),
        template: Some("{timestamp}.{body}".to_owned()),
        timestamp_header: Some("X-Custom-Timestamp".to_owned()),
        ..GenericHmac::new("X-Custom-Signature")
    };
    let body = br#"{"event":{"name":"order.created"},"order":7}"#.to_vec();
    let ts = now().to_string();
    let headers = |signature: &str, ts: &str| {
        h(&[
            ("X-Custom-Signature", signature),
            ("X-Custom-Timestamp", ts),
            ("X-Custom-Id", "c-7"),
        ])
    };
    let good = sign_generic(&scheme, b"custom_key", &ts, &body);
    let old = (now() - 400).to_string();
    let bad = vec![
        (
            br#"{"event":{"name":"order.created"},"order":8}"#.to_vec(),
            headers(&good, &ts),
        ),
        (body.clone(), headers(&sign_generic(&scheme, b"wrong", &ts, &body), &ts)),
        (
            body.clone(),
            headers(&sign_generic(&scheme, b"custom_key", &old, &body), &old),
        ),
        (body.clone(), headers(good.trim_start_matches("v1="), &ts)),
    ];
    let envelope = check(&app, "/webhooks/custom", (body, headers(&good, &ts)), bad).await;
    assert_eq!(
        (envelope.delivery_id.as_str(), envelope.event_type.as_str()),
        ("c-7", "order.created")
    );
}

#[tokio::test]
async fn slacks_url_verification_is_answered_only_with_a_valid_signature_and_not_queued() {
    let (app, _dir) = app().await;
    let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let ts = now();
    let signature = sign_slack(b"slack_secret", ts, body);
    let ts = ts.to_string();
    let response = app
        .post(
            "/webhooks/slack",
            body,
            &[("X-Slack-Signature", "v0=00"), ("X-Slack-Request-Timestamp", &ts)],
        )
        .await;
    assert_eq!(response.status(), 401);
    let response = app
        .post(
            "/webhooks/slack",
            body,
            &[("X-Slack-Signature", &signature), ("X-Slack-Request-Timestamp", &ts)],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        json(response).await,
        serde_json::json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
    assert_eq!(app.broker.take_all(".events").await.len(), 0);
}
