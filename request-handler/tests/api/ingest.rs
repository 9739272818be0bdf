use lapin::types::AMQPValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use webhook_core::envelope::Envelope;
use webhook_core::signature::sign_github;

use crate::helpers::{SECRET, TestApp, json};

/// Posts one good event and returns the messages now in `{P}.events`: publishes on one
/// channel are confirmed in order, so anything a rejected request had published would be
/// there too.
async fn published_after_a_marker(app: &TestApp) -> Vec<testkit::Taken> {
    let response = app
        .post_signed(br#"{"type":"marker"}"#, &[("X-GitHub-Delivery", "marker")])
        .await;
    assert_eq!(response.status(), 200);
    let taken = app.broker.take_all(".events").await;
    assert_eq!(
        taken
            .last()
            .and_then(|m| m.properties.message_id().clone())
            .unwrap()
            .as_str(),
        "marker"
    );
    taken
}

type Headers<'a> = Vec<(&'a str, &'a str)>;

async fn assert_nothing_published(app: &TestApp) {
    let taken = published_after_a_marker(app).await;
    assert_eq!(taken.len(), 1, "a rejected request was published");
}

#[tokio::test]
async fn a_signed_json_webhook_is_queued_with_its_envelope_and_exact_body() {
    let app = TestApp::spawn().await;
    let body = br#"{"action":"opened",  "number": 1, "emoji":"\u00e9 \ud83d\ude00"}"#;
    let response = app
        .post_signed(
            body,
            &[("X-GitHub-Delivery", "delivery-1"), ("X-GitHub-Event", "pull_request")],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        json(response).await,
        serde_json::json!({"status": "queued", "id": "delivery-1"})
    );

    let taken = app.broker.take_all(".events").await;
    assert_eq!(taken.len(), 1);
    let message = &taken[0];
    assert_eq!(message.body, body);
    assert_eq!(message.properties.delivery_mode(), &Some(2));
    assert_eq!(
        message.properties.content_type().as_ref().unwrap().as_str(),
        "application/json"
    );
    assert!(message.properties.timestamp().is_some());
    let envelope = Envelope::from_properties(&message.properties).unwrap();
    assert_eq!(envelope.source, "default");
    assert_eq!(envelope.delivery_id, "delivery-1");
    assert_eq!(envelope.event_type, "pull_request");
    assert_eq!(envelope.retry_count, 0);
    let headers = message.properties.headers().as_ref().unwrap();
    assert_eq!(headers.inner().get("retry-count"), Some(&AMQPValue::LongLongInt(0)));
    let age = chrono::Utc::now() - envelope.received_at;
    assert!(age >= chrono::TimeDelta::zero() && age < chrono::TimeDelta::seconds(30));
}

#[tokio::test]
async fn the_hub_signature_headers_take_what_github_sends_and_nothing_else() {
    let app = TestApp::spawn().await;
    let body = br#"{"zen":"Design for failure."}"#;
    let sha256 = sign_github(SECRET.as_bytes(), body);
    let bare = sha256.trim_start_matches("sha256=").to_owned();
    let sha1 = {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(body);
        format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
    };
    let accepted = [
        ("X-Hub-Signature-256", sha256.clone()),
        ("x-hub-signature-256", format!("sha256={}", bare.to_uppercase())),
        ("X-Hub-Signature", sha1.clone()),
        ("X-Hub-Signature", sha256.clone()),
    ];
    for (header, value) in &accepted {
        let response = app.post_signed_with(body, header, value).await;
        assert_eq!(response.status(), 200, "{header}: {value}");
    }
    // X-Hub-Signature-256 is sha256= only; bare hex names no algorithm in either header.
    let refused = [
        ("X-Hub-Signature-256", sha1),
        ("X-Hub-Signature-256", bare.clone()),
        ("X-Hub-Signature", bare),
    ];
    for (header, value) in &refused {
        let response = app.post_signed_with(body, header, value).await;
        assert_eq!(response.status(), 401, "{header}: {value}");
    }
    assert_eq!(app.broker.take_all(".events").await.len(), accepted.len());
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let line = r#"webhook_handler_requests_total{source="default",outcome="rejected",reason="signature_malformed"} 3"#;
    assert!(metrics.lines().any(|l| l == line), "missing {line} in\n{metrics}");
}

#[tokio::test]
async fn a_missing_wrong_or_tampered_signature_is_rejected_with_401_and_not_published() {
    let app = TestApp::spawn().await;
    let body = br#"{"type":"sale.completed","amount":100}"#;
    let good = sign_github(SECRET.as_bytes(), body);
    let other_secret = sign_github(b"not the secret", body);
    let cases: Vec<(&[u8], Headers<'_>)> = vec![
        (body, vec![]),
        (body, vec![("X-Hub-Signature-256", other_secret.as_str())]),
        (
            br#"{"type":"sale.completed","amount":900}"#,
            vec![("X-Hub-Signature-256", good.as_str())],
        ),
        (body, vec![("X-Hub-Signature-256", "sha256=zz")]),
        (body, vec![("X-Hub-Signature-256", "md5=abc")]),
        // X-Hub-Signature-256 alone decides when present, even if the older header is right.
        (
            body,
            vec![
                ("X-Hub-Signature-256", other_secret.as_str()),
                ("X-Hub-Signature", good.as_str()),
            ],
        ),
    ];
    for (body, headers) in cases {
        let response = app.post("/webhook", body, &headers).await;
        assert_eq!(response.status(), 401, "{headers:?}");
        assert_eq!(json(response).await, serde_json::json!({"error": "invalid signature"}));
    }
    assert_nothing_published(&app).await;
}

#[tokio::test]
async fn a_signed_body_that_is_not_json_is_rejected_with_400() {
    let app = TestApp::spawn().await;
    for body in [&b"Hello, World!"[..], b"{\"a\":1", b"", b"{\"a\":\"\xff\"}"] {
        let response = app.post_signed(body, &[]).await;
        assert_eq!(response.status(), 400, "{}", String::from_utf8_lossy(body));
        let error = json(response).await["error"].as_str().unwrap().to_owned();
        assert!(error.starts_with("body is not valid"), "{error}");
    }
    assert_nothing_published(&app).await;
}

#[tokio::test]
async fn an_unknown_or_malformed_source_is_404() {
    let app = TestApp::spawn().await;
    let body = br#"{"type":"x"}"#;
    let signature = sign_github(SECRET.as_bytes(), body);
    for path in ["/webhooks/stripe", "/webhooks/DEFAULT", "/webhooks/a%20b"] {
        let response = app.post(path, body, &[("X-Hub-Signature-256", &signature)]).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    // The default source is also reachable by name.
    let response = app
        .post(
            "/webhooks/default",
            body,
            &[("X-Hub-Signature-256", &signature), ("X-GitHub-Delivery", "by-name")],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.broker.take_all(".events").await.len(), 1);
    assert_nothing_published(&app).await;
}

#[tokio::test]
async fn bad_delivery_ids_and_event_types_are_400() {
    let app = TestApp::spawn().await;
    let body = br#"{"type":"x"}"#;
    let long_id = "i".repeat(201);
    let long_type = "t".repeat(129);
    for headers in [
        vec![("X-GitHub-Delivery", long_id.as_str())],
        vec![("X-GitHub-Delivery", "tab\there")],
        vec![("X-GitHub-Event", long_type.as_str())],
    ] {
        let response = app.post_signed(body, &headers).await;
        assert_eq!(response.status(), 400, "{headers:?}");
    }
    assert_nothing_published(&app).await;
}

#[tokio::test]
async fn the_event_type_falls_back_in_the_documented_order() {
    let app = TestApp::spawn().await;
    let cases: Vec<(&[u8], Headers<'_>, &str)> = vec![
        (br#"{"type":"t1","event":"e1"}"#, vec![], "t1"),
        (br#"{"event":"e2"}"#, vec![], "e2"),
        (br#"{"type":"t3"}"#, vec![("X-GitHub-Event", "h3")], "h3"),
        (b"[1,2,3]", vec![], "unknown"),
    ];
    for (n, (body, headers, event_type)) in cases.iter().enumerate() {
        let id = format!("d-{n}");
        let mut headers = headers.clone();
        headers.push(("X-GitHub-Delivery", &id));
        let response = app.post_signed(body, &headers).await;
        assert_eq!(response.status(), 200);
        assert_eq!(json(response).await["id"], id.as_str());
        let taken = app.broker.take_all(".events").await;
        let envelope = Envelope::from_properties(&taken[0].properties).unwrap();
        assert_eq!(
            (envelope.delivery_id.as_str(), envelope.event_type.as_str()),
            (id.as_str(), *event_type)
        );
        assert_eq!(taken[0].properties.message_id().as_ref().unwrap().as_str(), id);
    }
}

async fn raw_request(app: &TestApp, head: &str, chunks: &[&[u8]]) -> String {
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in chunks {
        // The server may answer and close before the whole body is sent.
        if stream.write_all(chunk).await.is_err() {
            break;
        }
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_whether_declared_or_chunked() {
    let broker = testkit::TestBroker::new();
    let env = crate::helpers::env(&broker).with("MAX_BODY_BYTES", 1000);
    let app = TestApp::spawn_with(broker, &env).await;
    app.wait_ready().await;

    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2000));
    let response = app.post_signed(big.as_bytes(), &[]).await;
    assert_eq!(response.status(), 413);

    // Exactly at the limit is fine.
    let exact = format!("{{\"pad\":\"{}\"}}", "x".repeat(1000 - 10));
    assert_eq!(exact.len(), 1000);
    assert_eq!(app.post_signed(exact.as_bytes(), &[]).await.status(), 200);
    assert_eq!(app.broker.take_all(".events").await.len(), 1);

    // Chunked, no Content-Length: the limit is enforced while reading.
    let signature = sign_github(SECRET.as_bytes(), big.as_bytes());
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nX-Hub-Signature-256: {signature}\r\nX-GitHub-Delivery: raw-1\r\nConnection: close\r\n\r\n"
    );
    let chunk = big.as_bytes().chunks(300).map(|part| {
        let mut framed = format!("{:x}\r\n", part.len()).into_bytes();
        framed.extend_from_slice(part);
        framed.extend_from_slice(b"\r\n");
        framed
    });
    let mut chunks: Vec<Vec<u8>> = chunk.collect();
    chunks.push(b"0\r\n\r\n".to_vec());
    let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
    let response = raw_request(&app, &head, &refs).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert_nothing_published(&app).await;
}

#[tokio::test]
async fn a_chunked_body_within_the_limit_is_accepted() {
    let app = TestApp::spawn().await;
    let body = br#"{"type":"chunked","data":"0123456789"}"#;
    let signature = sign_github(SECRET.as_bytes(), body);
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nX-Hub-Signature-256: {signature}\r\nX-GitHub-Delivery: raw-1\r\nConnection: close\r\n\r\n"
    );
    let (first, second) = body.split_at(10);
    let framed = |part: &[u8]| {
        let mut framed = format!("{:x}\r\n", part.len()).into_bytes();
        framed.extend_from_slice(part);
        framed.extend_from_slice(b"\r\n");
        framed
    };
    let (first, second) = (framed(first), framed(second));
    let response = raw_request(&app, &head, &[&first, &second, b"0\r\n\r\n"]).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let taken = app.broker.take_all(".events").await;
    assert_eq!(taken[0].body, body);
}

#[tokio::test]
async fn health_and_metrics_answer() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(json(ready).await["broker"], "connected");

    assert_eq!(app.post_signed(br#"{"type":"m"}"#, &[]).await.status(), 200);
    assert_eq!(app.post("/webhook", b"{}", &[]).await.status(), 401);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        "webhook_handler_requests_total{source=\"default\",outcome=\"queued\",reason=\"\"} 1",
        "webhook_handler_requests_total{source=\"default\",outcome=\"rejected\",reason=\"signature_missing\"} 1",
        "webhook_handler_enqueue_seconds_count 1",
        "webhook_handler_body_bytes_count 2",
        "webhook_handler_broker_connected 1",
        "webhook_handler_in_flight_requests 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line:?} in\n{metrics}");
    }
    app.stop().await;
}

#[tokio::test]
async fn githubs_published_example_is_accepted_by_the_signature_check_then_refused_as_not_json() {
    // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    let app = TestApp::spawn().await;
    let response = app
        .post(
            "/webhook",
            b"Hello, World!",
            &[(
                "X-Hub-Signature-256",
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            )],
        )
        .await;
    // 400, not 401: the signature passed and the body failed the JSON check that follows it.
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn every_rejection_leaves_a_record_without_body_or_signature() {
    let app = TestApp::spawn().await;
    let body = br#"{"type":"secret-business","card":"4242"}"#;
    let wrong = sign_github(b"rotated-away", body);
    assert_eq!(
        app.post(
            "/webhook",
            body,
            &[("X-Hub-Signature-256", &wrong), ("X-GitHub-Delivery", "d-401")]
        )
        .await
        .status(),
        401
    );
    assert_eq!(app.post("/webhooks/nobody", body, &[]).await.status(), 404);
    assert_eq!(app.post_signed(b"not json", &[]).await.status(), 400);

    testkit::eventually(
        "three rejection records",
        std::time::Duration::from_secs(10),
        || async { (app.broker.depth(".rejected").await == Some(3)).then_some(()) },
    )
    .await;
    let mut records: Vec<serde_json::Value> = app
        .broker
        .take_all(".rejected")
        .await
        .iter()
        .map(|message| serde_json::from_slice(&message.body).unwrap())
        .collect();
    records.sort_by_key(|record| record["status"].as_u64());
    let summary: Vec<(u64, &str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["status"].as_u64().unwrap(),
                r["reason"].as_str().unwrap(),
                r["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (400, "not_json", "default"),
            (401, "signature_mismatch", "default"),
            (404, "unknown_source", "(unknown)")
        ]
    );
    assert_eq!(records[1]["delivery_id"], "d-401");
    // The name a stranger chose is kept beside the bucket, never as the source.
    assert_eq!(records[2]["claimed_source"], "nobody");
    assert!(records[0].get("claimed_source").is_none(), "{}", records[0]);
    for message in records.iter().map(ToString::to_string) {
        assert!(!message.contains("4242") && !message.contains(&wrong[7..]), "{message}");
    }
}
