//! How events are told apart: each source's identity policy through the HTTP endpoint. An id
//! read as UTF-8 wherever it is, a missing or unusable id refused with its reason, and sources
//! whose vendors send no id at all.

use reqwest::header::HeaderValue;
use webhook_core::envelope::Envelope;
use webhook_core::signature::{GenericHmac, sign_generic, sign_github, sign_stripe};

use crate::helpers::{SECRET, TestApp, env, json};

const SOURCES: &str = r#"
[[source]]
name = "stripe"
scheme = "stripe"
secrets = ["whsec_stripe"]

[[source]]
name = "mollie"
scheme = "hmac"
secrets = ["mollie-secret"]
header = "X-Signature"
body_format = "form"
delivery_id = "none"

[[source]]
name = "ping"
scheme = "hmac"
secrets = ["ping-secret"]
header = "X-Signature"
delivery_id = "body_hash"

[[source]]
name = "acme"
scheme = "hmac"
secrets = ["acme-secret"]
header = "X-Signature"
delivery_id = { header = "X-Event-Id" }
"#;

async fn app() -> (TestApp, testkit::SourcesFile) {
    let sources = testkit::SourcesFile::new(SOURCES);
    let broker = testkit::TestBroker::new();
    let env = env(&broker).with("SOURCES_FILE", sources.path());
    let app = TestApp::spawn_with(broker, &env).await;
    app.wait_ready().await;
    (app, sources)
}

fn hmac_signature(secret: &[u8], body: &[u8]) -> String {
    let scheme = GenericHmac::new("X-Signature");
    sign_generic(&scheme, secret, "", body)
}

/// The ids of the events now queued, in order.
async fn queued_ids(app: &TestApp) -> Vec<String> {
    app.broker
        .take_all(".events")
        .await
        .iter()
        .map(|message| Envelope::from_properties(&message.properties).unwrap().delivery_id)
        .collect()
}

#[tokio::test]
async fn non_ascii_delivery_ids_in_headers_are_ids_not_absent() {
    let (app, _file) = app().await;
    let body = br#"{"type":"order"}"#;
    let signature = sign_github(SECRET.as_bytes(), body);
    for id in ["café-1", "café-2"] {
        let response = app
            .client
            .post(format!("{}/webhook", app.base))
            .header("X-Hub-Signature-256", &signature)
            .header("X-GitHub-Delivery", HeaderValue::from_bytes(id.as_bytes()).unwrap())
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{id}");
        assert_eq!(json(response).await["id"], id);
    }
    // Two deliveries with the same body stay two events.
    assert_eq!(queued_ids(&app).await, ["café-1", "café-2"]);

    let response = app
        .client
        .post(format!("{}/webhook", app.base))
        .header("X-Hub-Signature-256", &signature)
        .header("X-GitHub-Delivery", HeaderValue::from_bytes(b"caf\xe9-3").unwrap())
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        json(response).await,
        serde_json::json!({"error": "delivery id in header X-GitHub-Delivery is not UTF-8"})
    );
}

#[tokio::test]
async fn a_source_with_a_place_for_its_id_refuses_a_request_without_one() {
    let (app, _file) = app().await;
    let body = br#"{"type":"order"}"#;
    let signature = sign_github(SECRET.as_bytes(), body);
    // The default source reads X-GitHub-Delivery; the other common headers are no stand-in.
    let response = app
        .post(
            "/webhook",
            body,
            &[("X-Hub-Signature-256", &signature), ("Idempotency-Key", "k-1")],
        )
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        json(response).await,
        serde_json::json!({"error": "delivery id missing: no header X-GitHub-Delivery"})
    );
    let signature = hmac_signature(b"acme-secret", body);
    let response = app.post("/webhooks/acme", body, &[("X-Signature", &signature)]).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        json(response).await,
        serde_json::json!({"error": "delivery id missing: no header X-Event-Id"})
    );
    let response = app
        .post(
            "/webhooks/acme",
            body,
            &[("X-Signature", &signature), ("X-Event-Id", "acme-1")],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(queued_ids(&app).await, ["acme-1"]);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            r#"webhook_handler_requests_total{source="acme",outcome="rejected",reason="delivery_id_missing"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_json_id_that_cannot_be_read_is_refused_not_replaced_by_the_body_hash() {
    let (app, _file) = app().await;
    let now = chrono::Utc::now().timestamp();
    for (body, error) in [
        (
            &br#"{"id":{"nested":"evt_1"},"type":"charge.succeeded"}"#[..],
            "delivery id in /id in the body is not a string or an integer",
        ),
        (
            br#"{"type":"charge.succeeded"}"#,
            "delivery id missing: no /id in the body",
        ),
    ] {
        let signature = sign_stripe(b"whsec_stripe", now, body);
        let response = app
            .post("/webhooks/stripe", body, &[("Stripe-Signature", &signature)])
            .await;
        assert_eq!(response.status(), 400, "{}", String::from_utf8_lossy(body));
        assert_eq!(json(response).await, serde_json::json!({ "error": error }));
    }
    // A lone surrogate is not text: the body is not JSON that can be read in full.
    let body = br#"{"id":"\ud800","type":"charge.succeeded"}"#;
    let signature = sign_stripe(b"whsec_stripe", now, body);
    let response = app
        .post("/webhooks/stripe", body, &[("Stripe-Signature", &signature)])
        .await;
    assert_eq!(response.status(), 400);
    let error = json(response).await["error"].as_str().unwrap().to_owned();
    assert!(error.starts_with("body is not valid JSON: "), "{error}");
    assert!(queued_ids(&app).await.is_empty());
}

#[tokio::test]
async fn a_source_without_ids_stores_every_delivery_and_a_body_hash_source_each_body_once() {
    let (app, _file) = app().await;
    // Mollie-style: every status change posts the same `id=tr_…`.
    let body = b"id=tr_WDqYK6vllg";
    let signature = hmac_signature(b"mollie-secret", body);
    let mut answered = Vec::new();
    for _ in 0..2 {
        let response = app.post("/webhooks/mollie", body, &[("X-Signature", &signature)]).await;
        assert_eq!(response.status(), 200);
        answered.push(json(response).await["id"].as_str().unwrap().to_owned());
    }
    assert_ne!(answered[0], answered[1], "each delivery is an event of its own");
    assert_eq!(queued_ids(&app).await, answered);

    let body = br#"{"type":"ping"}"#;
    let signature = hmac_signature(b"ping-secret", body);
    for _ in 0..2 {
        let response = app.post("/webhooks/ping", body, &[("X-Signature", &signature)]).await;
        assert_eq!(response.status(), 200);
    }
    let ids = queued_ids(&app).await;
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "the same body is the same event");
}

#[tokio::test]
async fn a_body_the_processors_could_not_read_is_refused_at_ingest() {
    let (app, _file) = app().await;
    let sale = |data: &str| {
        format!(
            r#"{{"type":"sale.completed","occurred_at":"2026-11-01T10:00:00Z","data":{{"order_id":"o-1","amount":1999,"currency":"EUR"{data}}}}}"#
        )
    };
    let deep = sale(&format!(r#","meta":{}1{}"#, "[".repeat(200), "]".repeat(200)));
    let long = sale(&format!(r#","ref":1{}"#, "0".repeat(100_000)));
    let huge = sale(r#","rate":1e400"#);
    let surrogate = sale(r#","note":"\udc00""#);
    let readable = sale("");
    for (body, status) in [
        (deep.as_str(), 400),
        (long.as_str(), 400),
        (huge.as_str(), 400),
        (surrogate.as_str(), 400),
        (readable.as_str(), 200),
    ] {
        let response = app.post_signed(body.as_bytes(), &[]).await;
        assert_eq!(response.status(), status, "{}", &body[..body.len().min(120)]);
        if status == 400 {
            let error = json(response).await["error"].as_str().unwrap().to_owned();
            assert!(error.starts_with("body is not"), "{error}");
        }
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        r#"webhook_handler_requests_total{source="default",outcome="rejected",reason="json_limit"} 2"#,
        r#"webhook_handler_requests_total{source="default",outcome="rejected",reason="not_json"} 2"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line} in\n{metrics}");
    }
    // A Stripe body whose id sits past the depth limit is refused, not given the body hash.
    let stripe = format!(
        r#"{{"id":"evt_1","type":"charge.succeeded","data":{}{{"id":"x"}}{}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let signature = sign_stripe(b"whsec_stripe", chrono::Utc::now().timestamp(), stripe.as_bytes());
    let response = app
        .post(
            "/webhooks/stripe",
            stripe.as_bytes(),
            &[("Stripe-Signature", &signature)],
        )
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(queued_ids(&app).await.len(), 1, "only the readable sale was queued");
}
