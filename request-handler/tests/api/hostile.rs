//! What strangers can send, through the real binary: signature headers built to multiply the
//! work of a check, bodies large enough to hold a worker, and the requests a vendor must still
//! get answered meanwhile.

use std::time::Duration;

use testkit::SourcesFile;
use webhook_core::signature::sign_github;

use crate::process::HandlerProcess;

const SECRET: &str = "hostile-default-secret";
const STANDARD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A JSON body of `bytes` bytes.
fn body_of(bytes: usize) -> Vec<u8> {
    format!("{{\"pad\":\"{}\"}}", "x".repeat(bytes - 10)).into_bytes()
}

fn sources(extra: &str) -> SourcesFile {
    SourcesFile::new(&format!(
        "[[source]]\nname = \"stripe\"\nscheme = \"stripe\"\nsecrets = [\"whsec_old\", \"whsec_new\"]\n\n\
         [[source]]\nname = \"svix\"\nscheme = \"standard\"\nsecrets = [\"{STANDARD_SECRET}\", \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n\n{extra}"
    ))
}

/// A small request signed for the `default` source.
async fn post_valid(handler: &HandlerProcess, id: &str) -> u16 {
    let body = format!("{{\"type\":\"ping\",\"id\":\"{id}\"}}");
    let signature = sign_github(SECRET.as_bytes(), body.as_bytes());
    handler
        .post(
            "/webhook",
            body.as_bytes(),
            &[("X-Hub-Signature-256", &signature), ("X-GitHub-Delivery", id)],
        )
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn ten_thousand_signature_entries_are_refused_at_once_while_a_valid_request_is_served() {
    let file = sources("");
    let handler = HandlerProcess::start(&[
        ("WEBHOOK_SECRET", SECRET),
        ("SOURCES_FILE", file.path()),
        ("HANDLER_WORKERS", "1"),
    ])
    .await;
    let body = body_of(1 << 20);
    let stripe = format!("t={}{}", now(), ",v1=".repeat(10_000));
    let standard = "v1, ".repeat(10_000);
    let ts = now().to_string();
    let mut floods = Vec::new();
    for n in 0..3 {
        let (client, base, body) = (handler.client.clone(), handler.base.clone(), body.clone());
        let (stripe, standard, ts) = (stripe.clone(), standard.clone(), ts.clone());
        floods.push(tokio::spawn(async move {
            let request = if n % 2 == 0 {
                client
                    .post(format!("{base}/webhooks/stripe"))
                    .header("Stripe-Signature", stripe)
            } else {
                client
                    .post(format!("{base}/webhooks/svix"))
                    .header("webhook-id", "msg_1")
                    .header("webhook-timestamp", ts)
                    .header("webhook-signature", standard)
            };
            let response = request.body(body).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }));
    }
    // One HTTP worker serves the floods and this request: it is answered within the deadline.
    let valid = tokio::time::timeout(Duration::from_secs(10), post_valid(&handler, "valid-1")).await;
    assert_eq!(
        valid.ok(),
        Some(200),
        "a valid request was not served beside the floods; the log:\n{}",
        handler.log()
    );
    for flood in floods {
        let (status, body) = tokio::time::timeout(Duration::from_secs(10), flood)
            .await
            .expect("a flooded signature header was not refused in time")
            .unwrap();
        assert_eq!((status, body.as_str()), (401, r#"{"error":"invalid signature"}"#));
    }
    for source in ["stripe", "svix"] {
        let series = format!(
            "webhook_handler_requests_total{{source=\"{source}\",outcome=\"rejected\",reason=\"signature_malformed\"}}"
        );
        assert!(handler.metric(&series).await >= 1.0, "{series}");
    }
}

/// CPU the handler spends on `requests`, each refused with 401.
async fn cpu_of(handler: &HandlerProcess, requests: &[(String, Vec<(String, String)>)], body: &[u8]) -> u64 {
    let before = handler.cpu_ticks();
    for (path, headers) in requests {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(
            handler.post(path, body, &headers).await.status(),
            401,
            "{path} {headers:?}"
        );
    }
    handler.cpu_ticks() - before
}

#[tokio::test]
async fn the_cpu_a_refused_request_costs_does_not_grow_with_the_signatures_it_carries() {
    let file = sources("");
    let handler = HandlerProcess::start(&[("WEBHOOK_SECRET", SECRET), ("SOURCES_FILE", file.path())]).await;
    let body = body_of(128 << 10);
    let wrong_hex = "00".repeat(32);
    let wrong_base64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let stripe = |signatures: usize| {
        let header = format!("t={}{}", now(), format!(",v1={wrong_hex}").repeat(signatures));
        (
            "/webhooks/stripe".to_owned(),
            vec![("Stripe-Signature".to_owned(), header)],
        )
    };
    // About 50 KB: 10,000 empty entries.
    let flood = || {
        let header = format!("t={}{}", now(), ",v1=".repeat(10_000));
        (
            "/webhooks/stripe".to_owned(),
            vec![("Stripe-Signature".to_owned(), header)],
        )
    };
    let standard = |signatures: usize| {
        let header = vec![format!("v1,{wrong_base64}"); signatures].join(" ");
        (
            "/webhooks/svix".to_owned(),
            vec![
                ("webhook-id".to_owned(), "msg_1".to_owned()),
                ("webhook-timestamp".to_owned(), now().to_string()),
                ("webhook-signature".to_owned(), header),
            ],
        )
    };
    const N: usize = 30;
    for (scheme, one, many) in [
        ("stripe", vec![stripe(1); N], vec![stripe(7); N]),
        ("standard", vec![standard(1); N], vec![standard(8); N]),
    ] {
        let plain = cpu_of(&handler, &one, &body).await;
        let amplified = cpu_of(&handler, &many, &body).await;
        // Each secret's MAC is computed once per request, whatever the number of signatures:
        // the same work, give or take the noise of a process's other threads.
        eprintln!("{scheme}: {N} requests with one signature cost {plain} ticks, with several {amplified}");
        assert!(
            2 * amplified <= 3 * plain + 20,
            "{scheme}: {N} requests with several signatures cost {amplified} ticks, with one {plain}"
        );
    }
    // Past the cap nothing is computed at all.
    let flooded = cpu_of(&handler, &vec![flood(); 3], &body).await;
    let single = cpu_of(&handler, &vec![stripe(1); 3], &body).await;
    assert!(
        flooded <= single + 20,
        "3 flooded headers cost {flooded} ticks, 3 plain {single}"
    );
}

#[tokio::test]
async fn large_bodies_are_checked_off_the_http_worker_while_small_requests_are_served() {
    // Sixteen secrets and a 1 MiB body: each check computes sixteen MACs of the body.
    let secrets: Vec<String> = (0..16).map(|n| format!("\"heavy-{n}\"")).collect();
    let file = sources(&format!(
        "[[source]]\nname = \"heavy\"\nscheme = \"github\"\nsecrets = [{}]\n",
        secrets.join(", ")
    ));
    let handler = HandlerProcess::start(&[
        ("WEBHOOK_SECRET", SECRET),
        ("SOURCES_FILE", file.path()),
        ("HANDLER_WORKERS", "1"),
        ("MAX_BODY_BYTES", "2097152"),
    ])
    .await;
    let body = body_of(1 << 20);
    let wrong = sign_github(b"not one of them", &body);
    let mut heavy = Vec::new();
    for _ in 0..4 {
        let (client, base, body, wrong) = (
            handler.client.clone(),
            handler.base.clone(),
            body.clone(),
            wrong.clone(),
        );
        heavy.push(tokio::spawn(async move {
            let response = client
                .post(format!("{base}/webhooks/heavy"))
                .header("X-Hub-Signature-256", wrong)
                .body(body)
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }));
    }
    // Once a large body is in, its check is running or waiting: small requests still get
    // their answer on the one HTTP worker.
    testkit::eventually("a large body to be read", Duration::from_secs(60), || async {
        (handler.metric("webhook_handler_body_bytes_count").await >= 1.0).then_some(())
    })
    .await;
    for n in 0..3 {
        let valid = tokio::time::timeout(Duration::from_secs(2), post_valid(&handler, &format!("beside-{n}"))).await;
        assert_eq!(valid.ok(), Some(200), "a small request waited for the large ones");
    }
    for request in heavy {
        assert_eq!(request.await.unwrap(), 401);
    }
}

/// Writes `request` to the handler as it is and returns the status line of the answer.
async fn send_raw(handler: &HandlerProcess, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(handler.base.trim_start_matches("http://"))
        .await
        .unwrap();
    // The handler may answer and close before all of it is written.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn requests_refused_before_routing_are_counted_and_not_logged_as_errors() {
    let handler = HandlerProcess::start(&[("WEBHOOK_SECRET", SECRET)]).await;
    // actix-web reads a request head of up to 128 KiB.
    let huge = format!(
        "POST /webhook HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "p".repeat(200_000)
    );
    for (request, status) in [
        (&b"GARBAGE\r\n\r\n"[..], "HTTP/1.1 400"),
        (
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (huge.as_bytes(), "HTTP/1.1 431"),
    ] {
        let answer = send_raw(&handler, request).await;
        assert!(answer.starts_with(status), "{answer:?}");
    }
    testkit::eventually(
        "the refused requests to be counted",
        Duration::from_secs(10),
        || async {
            let malformed = handler
                .metric(r#"webhook_handler_refused_http_requests_total{reason="malformed"}"#)
                .await;
            let too_large = handler
                .metric(r#"webhook_handler_refused_http_requests_total{reason="head_too_large"}"#)
                .await;
            (malformed == 2.0 && too_large == 1.0).then_some(())
        },
    )
    .await;
    // Counted as the line is logged; the line reaches the test through the pipe after that.
    let log = testkit::eventually("the refusal logged at INFO", Duration::from_secs(10), || async {
        let log = handler.log();
        log.lines()
            .any(|line| line.contains(" INFO ") && line.contains("stream error: request parse error"))
            .then_some(log)
    })
    .await;
    assert!(!log.lines().any(|line| line.contains(" ERROR ")), "{log}");
}

#[tokio::test]
async fn what_a_stranger_sends_reaches_the_log_escaped() {
    let handler = HandlerProcess::start(&[("WEBHOOK_SECRET", SECRET)]).await;
    // A source name is the one thing from the URL a log line shows: with a line break and a
    // terminal escape in it, it must not start a line of its own nor reach the terminal raw.
    let response = handler
        .post(
            "/webhooks/x%0A%5B2026-01-01T00:00:00Z%20ERROR%20forged%5D%1B%5B2J",
            b"{}",
            &[],
        )
        .await;
    assert_eq!(response.status(), 404);
    let body = "{\"type\":\"x\",\"note\":\"\\n[forged] \\u001b[2J\"}";
    let response = handler
        .post("/webhook", body.as_bytes(), &[("X-Hub-Signature-256", "sha256=00")])
        .await;
    assert_eq!(response.status(), 401);
    testkit::eventually("both rejections logged", Duration::from_secs(10), || async {
        (handler.log().matches("rejected request_id=").count() == 2).then_some(())
    })
    .await;
    let log = handler.log();
    assert!(
        !log.lines()
            .any(|line| line.starts_with("[2026-01-01T00:00:00Z ERROR forged]")),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'), "a raw escape reached the log: {log:?}");
    assert!(!log.contains("[forged]"), "{log}");
    assert!(
        log.contains(r#"source="x\n[2026-01-01T00:00:00Z ERROR forged]\u{1b}[2J""#),
        "{log}"
    );
}
