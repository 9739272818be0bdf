//! The rejection log: records the handler leaves in `{P}.rejected` are stored in `rejections`;
//! an unreadable one is dropped and counted, and does not hold up the rest.

use webhook_core::rejection::RejectionRecord;

use crate::helpers::{SOON, Services, TestApp};

/// (received_at, source, reason, status, request_id, delivery_id, remote_addr, content_length)
type Row = (
    String,
    String,
    String,
    u16,
    String,
    Option<String>,
    Option<String>,
    Option<u64>,
);

fn record(request_id: &str, status: u16, delivery_id: Option<&str>) -> RejectionRecord {
    RejectionRecord {
        at: "2026-11-02T10:11:12.131415Z".to_owned(),
        source: "shop".to_owned(),
        reason: "signature_mismatch".to_owned(),
        status,
        request_id: request_id.to_owned(),
        delivery_id: delivery_id.map(str::to_owned),
        remote_addr: Some("192.0.2.7:5123".to_owned()),
        content_length: Some(42),
    }
}

#[tokio::test]
async fn rejection_records_are_stored_and_unreadable_ones_dropped() {
    let services = Services::new();
    let app = TestApp::spawn(&services.env()).await;
    let sender = services.sender().await;
    let queue = format!("{}.rejected", services.broker.prefix());
    let first = record("req-1", 401, Some("d-1"));
    sender.to_queue(&queue, &serde_json::to_vec(&first).unwrap()).await;
    sender.to_queue(&queue, b"{\"not\": \"a record\"}").await;
    sender
        .to_queue(&queue, &serde_json::to_vec(&record("req-2", 413, None)).unwrap())
        .await;

    let rows: Vec<Row> = testkit::eventually("two rows in rejections", SOON, || async {
        let mut connection = services.database.connect().await;
        let rows: Vec<_> = sqlx::query_as(
            "SELECT DATE_FORMAT(received_at, '%Y-%m-%dT%H:%i:%s.%f'), source, reason, status, request_id, \
                 delivery_id, remote_addr, content_length FROM rejections ORDER BY request_id",
        )
        .fetch_all(&mut connection)
        .await
        .ok()?;
        (rows.len() >= 2).then_some(rows)
    })
    .await;
    let expected = |request_id: &str, status: u16, delivery_id: Option<&str>| {
        (
            "2026-11-02T10:11:12.131415".to_owned(),
            "shop".to_owned(),
            "signature_mismatch".to_owned(),
            status,
            request_id.to_owned(),
            delivery_id.map(str::to_owned),
            Some("192.0.2.7:5123".to_owned()),
            Some(42),
        )
    };
    assert_eq!(
        rows,
        [expected("req-1", 401, Some("d-1")), expected("req-2", 413, None)]
    );
    testkit::eventually("the counters", SOON, || async {
        let stored = app.metric("webhook_consumer_rejections_stored_total").await;
        let unreadable = app.metric("webhook_consumer_rejections_unreadable_total").await;
        (stored == 2.0 && unreadable == 1.0).then_some(())
    })
    .await;
    sender.close().await;
    app.stop().await;
    // All three were acked: nothing comes back to the queue once the consumer is gone.
    assert_eq!(services.broker.depth(".rejected").await, Some(0));
}
