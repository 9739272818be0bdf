use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use webhook_core::signature::sign_github;

use crate::helpers::{SECRET, TestApp};

#[tokio::test]
async fn on_shutdown_a_request_in_flight_still_gets_its_true_answer_and_new_ones_are_refused() {
    let app = TestApp::spawn().await;
    let body = br#"{"type":"in-flight","n":1}"#;
    let signature = sign_github(SECRET.as_bytes(), body);
    let address = app.base.trim_start_matches("http://").to_owned();

    // Headers and half the body now, the rest after shutdown has begun.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\nX-Hub-Signature-256: {signature}\r\nX-GitHub-Delivery: raw-1\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (first, rest) = body.split_at(10);
    stream.write_all(first).await.unwrap();

    // Shutdown drops connections a worker has not picked up yet; wait until this one is a
    // request being handled.
    testkit::eventually("the request to be in flight", Duration::from_secs(10), || async {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        metrics
            .lines()
            .any(|line| line == "webhook_handler_in_flight_requests 1")
            .then_some(())
    })
    .await;
    let stopping = tokio::spawn(app.stop_and_wait());
    // New connections are refused once the listener is closed.
    testkit::eventually("the listener to close", Duration::from_secs(10), || {
        let address = address.clone();
        async move { tokio::net::TcpStream::connect(&address).await.is_err().then_some(()) }
    })
    .await;

    stream.write_all(rest).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let broker = stopping.await.unwrap();
    let taken = broker.take_all(".events").await;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].body, body);
}
