//! The spool and the quarantine through the real binary: a spooling source answered 200
//! "spooled" while the broker is cut, its messages forwarded byte for byte once it is back; a
//! request kept for its signature and admitted by `quarantine readmit` once the secret is
//! corrected.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use testkit::private::TempDir;
use testkit::{TcpProxy, TestBroker, eventually};

use crate::helpers::json;
use crate::process::HandlerProcess;

const SECRET: &str = "spool-secret";
/// The deadline of a spooling publish: short, so the test does not wait long per request.
const SPOOL_PUBLISH_TIMEOUT_MS: &str = "200";
const DEADLINE: Duration = Duration::from_secs(30);

fn github_headers(secret: &str, body: &[u8], delivery_id: &str) -> Vec<(String, String)> {
    vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("X-Hub-Signature-256".to_owned(), testkit::sign(secret, body)),
        ("X-GitHub-Delivery".to_owned(), delivery_id.to_owned()),
        ("X-GitHub-Event".to_owned(), "push".to_owned()),
    ]
}

async fn post(handler: &HandlerProcess, secret: &str, body: &[u8], delivery_id: &str) -> reqwest::Response {
    let headers = github_headers(secret, body, delivery_id);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    handler.post("/webhooks/gh", body, &headers).await
}

/// The handler binary behind `proxy`, its spool in `dir`, with the source `gh` that spools
/// and any `more_sources`, and these variables as well.
async fn spooling_handler(
    proxy: &TcpProxy,
    dir: &TempDir,
    more_sources: &str,
    vars: &[(&str, &str)],
) -> HandlerProcess {
    let sources = dir.write(
        "sources.toml",
        &format!(
            "[[source]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [\"{SECRET}\"]\nwhen_broker_down = \"spool\"\n{more_sources}"
        ),
    );
    let spool_dir = dir.path().join("spool");
    let amqp_url = proxy.amqp_url();
    let mut all = vec![
        ("AMQP_URL", amqp_url.as_str()),
        ("SOURCES_FILE", sources.to_str().unwrap()),
        ("SPOOL_DIR", spool_dir.to_str().unwrap()),
        ("SPOOL_PUBLISH_TIMEOUT_MS", SPOOL_PUBLISH_TIMEOUT_MS),
    ];
    all.extend_from_slice(vars);
    HandlerProcess::start(&all).await
}

#[tokio::test]
async fn a_spooling_source_is_answered_spooled_while_the_broker_is_cut_and_forwarded_once_it_is_back() {
    let proxy = TcpProxy::start("127.0.0.1:5672").await;
    let dir = TempDir::new("spool-api");
    let plain = format!("\n[[source]]\nname = \"plain\"\nscheme = \"github\"\nsecrets = [\"{SECRET}\"]\n");
    let handler = spooling_handler(&proxy, &dir, &plain, &[("ENQUEUE_TIMEOUT_MS", "1500")]).await;
    // Ready already while it connects, since a source spools: wait for the broker itself.
    eventually("the broker connection", DEADLINE, || async {
        let ready = handler
            .client
            .get(format!("{}/readyz", handler.base))
            .send()
            .await
            .ok()?;
        (json(ready).await["broker"] == "connected").then_some(())
    })
    .await;
    let response = post(&handler, SECRET, br#"{"n":0}"#, "d-0").await;
    assert_eq!(
        json(response).await,
        serde_json::json!({"status": "queued", "id": "d-0"})
    );

    proxy.cut();
    // Bodies the handler must forward exactly as they came: odd spacing, non-ASCII, a newline.
    let bodies: HashMap<String, Vec<u8>> = (1..=5)
        .map(|n| {
            (
                format!("d-{n}"),
                format!("{{ \"n\" : {n}, \"s\":\"\u{e9}\"}}\n").into_bytes(),
            )
        })
        .collect();
    for (id, body) in &bodies {
        let response = post(&handler, SECRET, body, id).await;
        assert_eq!(response.status(), 200);
        assert_eq!(json(response).await, serde_json::json!({"status": "spooled", "id": id}));
    }
    // A source that does not spool still gets 500.
    let plain = br#"{"n":"plain"}"#;
    let headers = github_headers(SECRET, plain, "p-1");
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(handler.post("/webhooks/plain", plain, &headers).await.status(), 500);
    let ready = handler
        .client
        .get(format!("{}/readyz", handler.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        json(ready).await,
        serde_json::json!({"status": "ready", "broker": "spooling", "spooled": 5})
    );
    assert_eq!(handler.metric("webhook_handler_spool_messages ").await, 5.0);
    assert_eq!(
        handler
            .metric("webhook_handler_spool_spooled_total{source=\"gh\"} ")
            .await,
        5.0
    );
    assert!(handler.metric("webhook_handler_spool_bytes ").await > 0.0);

    proxy.restore();
    eventually("the spool to be forwarded", DEADLINE, || async {
        (handler.metric("webhook_handler_spool_forwarded_total ").await == 5.0
            && handler.metric("webhook_handler_spool_messages ").await == 0.0)
            .then_some(())
    })
    .await;
    let taken = handler.broker.take_all(".events").await;
    let forwarded: HashMap<String, Vec<u8>> = taken
        .into_iter()
        .map(|message| {
            (
                message.properties.message_id().clone().unwrap().to_string(),
                message.body,
            )
        })
        .collect();
    let mut expected = bodies;
    expected.insert("d-0".to_owned(), br#"{"n":0}"#.to_vec());
    assert_eq!(forwarded, expected);
    // Logged on the forwarder's next pass, after the metrics moved.
    eventually("the forwarding to be logged", DEADLINE, || async {
        handler.log().contains("spool: forwarded 5 message(s)").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_full_spool_answers_500() {
    let proxy = TcpProxy::start("127.0.0.1:5672").await;
    let dir = TempDir::new("spool-full");
    // Room for two requests of 400 bytes; MAX_BODY_BYTES plus 512 is the smallest spool.
    let limits = [("MAX_BODY_BYTES", "512"), ("SPOOL_MAX_BYTES", "1024")];
    let handler = spooling_handler(&proxy, &dir, "", &limits).await;
    proxy.cut();
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(390));
    let mut statuses = Vec::new();
    for n in 0..3 {
        statuses.push(
            post(&handler, SECRET, body.as_bytes(), &format!("f-{n}"))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 500]);
    assert_eq!(
        handler
            .metric("webhook_handler_requests_total{source=\"gh\",outcome=\"not_enqueued\",reason=\"spool_full\"} ")
            .await,
        1.0
    );
}

/// Every file under `dir`, concatenated.
fn kept_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            bytes.extend(kept_bytes(&path));
        } else {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

/// Runs `request-handler quarantine {args}` with `vars`; its stdout, and whether it succeeded.
fn quarantine(broker: &TestBroker, vars: &[(&str, &str)], args: &[&str]) -> (String, bool) {
    let output = Command::new(env!("CARGO_BIN_EXE_request-handler"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AMQP_URL", testkit::amqp_url())
        .env("AMQP_PREFIX", broker.prefix())
        .env("RUST_LOG", "warn")
        .envs(vars.iter().copied())
        .arg("quarantine")
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        output.status.success(),
    )
}

#[tokio::test]
async fn a_request_kept_for_its_signature_is_admitted_once_the_secret_is_corrected() {
    let dir = TempDir::new("quarantine-api");
    let source = |secret: &str| {
        format!(
            "[[source]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [\"{secret}\"]\nquarantine = {{ max_requests = 10 }}\n"
        )
    };
    // The vendor rotated its secret to "rotated" without telling us.
    let stale = dir.write("stale.toml", &source("stale"));
    let corrected = dir.write("corrected.toml", &source("rotated"));
    let spool_dir = dir.path().join("spool");
    let spool_dir = spool_dir.to_str().unwrap();
    let handler = HandlerProcess::start(&[("SOURCES_FILE", stale.to_str().unwrap()), ("SPOOL_DIR", spool_dir)]).await;
    let body = br#"{"zen":"kept"}"#;
    // Sent with credentials the scheme does not read: they must not be written to disk.
    let mut headers = github_headers("rotated", body, "q-1");
    headers.push(("Cookie".to_owned(), "session=cookie-credential".to_owned()));
    headers.push(("Authorization".to_owned(), "Bearer bearer-credential".to_owned()));
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(handler.post("/webhooks/gh", body, &headers).await.status(), 401);
    assert_eq!(
        post(&handler, "forged", br#"{"zen":"forged"}"#, "q-2").await.status(),
        401
    );
    eventually("both requests to be kept", DEADLINE, || async {
        (handler
            .metric("webhook_handler_quarantine_kept_total{source=\"gh\"} ")
            .await
            == 2.0)
            .then_some(())
    })
    .await;
    assert_eq!(handler.broker.depth(".events").await, Some(0));
    let files = kept_bytes(&std::path::Path::new(spool_dir).join("quarantine"));
    assert!(
        files.windows(3).any(|name| name == b"q-1"),
        "the kept request is on disk"
    );
    for credential in [&b"cookie-credential"[..], b"bearer-credential"] {
        assert!(
            !files.windows(credential.len()).any(|found| found == credential),
            "{} was written to the quarantine",
            String::from_utf8_lossy(credential)
        );
    }

    let corrected_vars = [("SOURCES_FILE", corrected.to_str().unwrap()), ("SPOOL_DIR", spool_dir)];
    let (listing, ok) = quarantine(&handler.broker, &corrected_vars, &["list"]);
    assert!(ok, "{listing}");
    assert!(
        listing.contains("\"q-1\"") && listing.contains("passes now"),
        "{listing}"
    );
    assert!(
        listing.contains("\"q-2\"") && listing.contains("still fails: signature_mismatch"),
        "{listing}"
    );

    let (report, ok) = quarantine(&handler.broker, &corrected_vars, &["readmit", "--all"]);
    assert!(ok, "{report}");
    assert!(
        report.starts_with("admitted 1 kept request(s)\nadmitted \"q-1\"\n"),
        "{report}"
    );
    let taken = handler.broker.take_all(".events").await;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].body, body);
    assert_eq!(taken[0].properties.message_id().clone().unwrap().as_str(), "q-1");

    // The admitted one is gone; the forged one stays, and is never admitted.
    let (listing, _) = quarantine(&handler.broker, &corrected_vars, &["list"]);
    assert!(!listing.contains("\"q-1\"") && listing.contains("\"q-2\""), "{listing}");
    assert!(listing.ends_with("1 kept request(s)\n"), "{listing}");
    let (report, _) = quarantine(&handler.broker, &corrected_vars, &["readmit", "--all"]);
    assert!(report.starts_with("admitted 0 kept request(s)\n"), "{report}");
    assert_eq!(handler.broker.depth(".events").await, Some(0));
}
