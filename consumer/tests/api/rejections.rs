//! The rejection log: records the handler leaves in `{P}.rejected` are stored in `rejections`;
//! an unreadable one is dropped and counted, and does not hold up the rest; a record of a source
//! the consumer does not know is stored under the one bucket, whoever published it.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use webhook_core::rejection::RejectionRecord;

use crate::helpers::{SOON, Services, SourcesFile, TestApp};

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

/// When the records say they were rejected: an hour ago, well inside the log's retention (a
/// fixed date would be pruned once it is older than RETENTION_DAYS).
static AT: LazyLock<DateTime<Utc>> = LazyLock::new(|| Utc::now() - chrono::Duration::hours(1));

fn record(request_id: &str, status: u16, delivery_id: Option<&str>) -> RejectionRecord {
    RejectionRecord {
        at: AT.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        source: "shop".to_owned(),
        claimed_source: None,
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
    let sources = SourcesFile::new("[[source]]\nname = \"shop\"\nscheme = \"shopify\"\nsecrets = [\"s\"]\n");
    let app = TestApp::spawn(&services.env().with("SOURCES_FILE", sources.path())).await;
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
            AT.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
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

#[tokio::test]
async fn records_of_sources_the_consumer_does_not_know_share_one_bucket_whoever_sent_them() {
    let services = Services::new();
    let sources = SourcesFile::new("[[source]]\nname = \"shop\"\nscheme = \"shopify\"\nsecrets = [\"s\"]\n");
    let app = TestApp::spawn(&services.env().with("SOURCES_FILE", sources.path())).await;
    let sender = services.sender().await;
    let queue = format!("{}.rejected", services.broker.prefix());
    // Straight to the broker, as anyone with access to it could: made-up names, with a reason
    // other than unknown_source, and one with a terminal escape in it.
    for n in 0..30 {
        let mut stranger = record(&format!("stranger-{n:02}"), 401, None);
        stranger.source = format!("0made-up-{n:02}");
        sender.to_queue(&queue, &serde_json::to_vec(&stranger).unwrap()).await;
    }
    let mut escape = record("escape", 404, None);
    escape.source = "x\u{1b}[2J".to_owned();
    escape.reason = "unknown_source".to_owned();
    sender.to_queue(&queue, &serde_json::to_vec(&escape).unwrap()).await;
    sender
        .to_queue(&queue, &serde_json::to_vec(&record("real", 401, None)).unwrap())
        .await;

    testkit::eventually("32 rows in rejections", SOON, || async {
        let mut connection = services.database.connect().await;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rejections")
            .fetch_one(&mut connection)
            .await
            .ok()?;
        (count == 32).then_some(())
    })
    .await;
    let mut connection = services.database.connect().await;
    let sources: Vec<(String, String)> =
        sqlx::query_as("SELECT request_id, source FROM rejections ORDER BY request_id")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    let expected = |request_id: &str, source: &str| (request_id.to_owned(), source.to_owned());
    let mut strangers: Vec<_> = (0..30)
        .map(|n| expected(&format!("stranger-{n:02}"), "(unknown)"))
        .collect();
    strangers.splice(0..0, [expected("escape", "(unknown)"), expected("real", "shop")]);
    assert_eq!(sources, strangers);
    // The names they claimed are kept beside the bucket, escaped.
    let claimed: Vec<Option<String>> = sqlx::query_scalar("SELECT claimed_source FROM rejections ORDER BY request_id")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    let mut expected: Vec<Option<String>> = (0..30).map(|n| Some(format!("0made-up-{n:02}"))).collect();
    expected.splice(0..0, [Some("x\\u{1b}[2J".to_owned()), None]);
    assert_eq!(claimed, expected);
    let health: Vec<(String, i64)> = sqlx::query_as(
        "SELECT source, CAST(SUM(rejected) AS SIGNED) FROM vendor_health GROUP BY source ORDER BY source",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    assert_eq!(health, [("(unknown)".to_owned(), 31), ("shop".to_owned(), 1)]);
    sender.close().await;
    app.stop().await;
}
