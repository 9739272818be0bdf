//! The consumer's SQL against the real server: counting new and existing rows, refusals,
//! sales in any order of arrival, dead letters and the rejection log.

use chrono::{DateTime, Utc};
use consumer::store::{
    AnotherBody, DeadLetterRow, EventRow, Inserted, Kind, MAX_DEAD_LETTER_ERROR_CHARS, MIGRATOR, SaleChange,
    StoreError, insert_dead_letters, insert_events, insert_rejections, prune_rejections,
};
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::{MySql, QueryBuilder};
use webhook_core::rejection::RejectionRecord;

async fn migrated_pool() -> (testkit::TestDatabase, MySqlPool) {
    let database = testkit::TestDatabase::new();
    database.create().await;
    let pool = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&database.url())
        .await
        .unwrap();
    MIGRATOR.run(&pool).await.unwrap();
    (database, pool)
}

#[tokio::test]
async fn rejections_are_pruned_by_age_and_to_the_newest_rows() {
    let (_database, pool) = migrated_pool().await;
    let record = |at: &str, request_id: &str| RejectionRecord {
        at: at.to_owned(),
        source: "shop".to_owned(),
        claimed_source: None,
        reason: "signature_mismatch".to_owned(),
        status: 401,
        request_id: request_id.to_owned(),
        delivery_id: None,
        remote_addr: None,
        content_length: None,
    };
    let now = webhook_core::envelope::format_time(Utc::now());
    let old = webhook_core::envelope::format_time(Utc::now() - chrono::Duration::days(31));
    let records: Vec<RejectionRecord> = std::iter::once(record(&old, "old"))
        .chain((1..=5).map(|n| record(&now, &format!("new-{n}"))))
        .collect();
    insert_rejections(&pool, &records).await.unwrap();
    assert_eq!(prune_rejections(&pool, 30, 3).await.unwrap(), 3);
    let left: Vec<String> = sqlx::query_scalar("SELECT request_id FROM rejections ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, ["new-3", "new-4", "new-5"]);
    assert_eq!(prune_rejections(&pool, 30, 3).await.unwrap(), 0);
    // The per-day counts are of what was stored: pruning the rows does not lower them.
    let counted: i64 =
        sqlx::query_scalar("SELECT CAST(SUM(rejected) AS SIGNED) FROM vendor_health WHERE source = 'shop'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(counted, 6);
}

/// The server's side of `store::split_affected`, checked on the real server (MariaDB here, and
/// sqlx always sets CLIENT_FOUND_ROWS): a new row counts 1, an updated existing row 2, an
/// existing row left as it was 1 (found, not changed) — which is why the update must
/// always change `duplicates`.
#[tokio::test]
async fn the_server_counts_new_rows_once_and_updated_rows_twice() {
    let (_database, pool) = migrated_pool().await;
    let insert = |ids: &'static str, update: &'static str| {
        let pool = pool.clone();
        async move {
            let mut builder = QueryBuilder::<MySql>::new(
                "INSERT INTO events (source, delivery_id, event_type, body, body_sha256, received_at, stored_at) ",
            );
            builder.push_values(ids.split(','), |mut values, id| {
                values
                    .push_bind("s")
                    .push_bind(id)
                    .push_bind("t")
                    .push_bind("{}")
                    .push_bind("")
                    .push("UTC_TIMESTAMP(6)")
                    .push("UTC_TIMESTAMP(6)");
            });
            builder.push(update);
            builder.build().execute(&pool).await.unwrap().rows_affected()
        }
    };
    let changes = " ON DUPLICATE KEY UPDATE duplicates = duplicates + 1";
    assert_eq!(insert("a,b", changes).await, 2);
    assert_eq!(insert("a,b,c", changes).await, 1 + 2 * 2);
    assert_eq!(
        insert("a,d", " ON DUPLICATE KEY UPDATE duplicates = duplicates").await,
        1 + 1
    );
}

#[tokio::test]
async fn insert_events_counts_new_rows_per_source_and_existing_rows_exactly() {
    let (_database, pool) = migrated_pool().await;
    let body = "{\"x\":1}";
    let row = |source: &'static str, delivery_id: &'static str, copies: u32| EventRow {
        source,
        body,
        body_sha256: "sha",
        copies,
        ..event_row(delivery_id, None)
    };
    let first = [row("a", "1", 0), row("a", "2", 0), row("b", "1", 2)];
    let inserted = insert_events(&pool, &first).await.unwrap();
    assert_eq!(
        inserted,
        Inserted {
            new_by_source: vec![("a", 2), ("b", 1)],
            already_stored: 0,
            another_body: vec![],
            erased: vec![],
        }
    );
    let second = [row("a", "2", 0), row("a", "3", 0), row("b", "1", 1), row("c", "1", 0)];
    let inserted = insert_events(&pool, &second).await.unwrap();
    assert_eq!(
        inserted,
        Inserted {
            new_by_source: vec![("a", 1), ("b", 0), ("c", 1)],
            already_stored: 2,
            another_body: vec![],
            erased: vec![],
        }
    );
    let duplicates: Vec<(String, String, u32)> =
        sqlx::query_as("SELECT source, delivery_id, duplicates FROM events ORDER BY source, delivery_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let expected = [
        ("a", "1", 0),
        ("a", "2", 1),
        ("a", "3", 0),
        ("b", "1", 2 + 1 + 1),
        ("c", "1", 0),
    ];
    let expected: Vec<(String, String, u32)> = expected
        .iter()
        .map(|(s, d, n)| ((*s).to_owned(), (*d).to_owned(), *n))
        .collect();
    assert_eq!(duplicates, expected);
    pool.close().await;
}

#[tokio::test]
async fn a_refusal_by_the_database_is_classified_as_refused() {
    let (_database, pool) = migrated_pool().await;
    sqlx::query("ALTER TABLE events ADD CONSTRAINT no_x CHECK (event_type <> 'x')")
        .execute(&pool)
        .await
        .unwrap();
    let row = EventRow {
        source: "s",
        event_type: "x",
        ..event_row("1", None)
    };
    let error = insert_events(&pool, &[row]).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Refused(cause) if cause.to_string().contains("no_x")),
        "{error:?}"
    );
    pool.close().await;
}

fn change(order_id: &str, kind: Kind, amount_minor: i64, at: &str) -> SaleChange {
    SaleChange {
        order_id: order_id.to_owned(),
        currency: "EUR".to_owned(),
        amount_minor,
        at: DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&Utc),
        kind,
    }
}

fn event_row<'a>(delivery_id: &'a str, sale: Option<&'a SaleChange>) -> EventRow<'a> {
    EventRow {
        source: "shop",
        delivery_id,
        event_type: "t",
        body: "{}",
        body_sha256: "",
        content_type: "application/json",
        received_at: Utc::now(),
        retry_count: 0,
        copies: 0,
        conflicts: &[],
        sale,
    }
}

/// (amount_minor, sold_at, sale_event_id, refunded_minor, refunded_at, refund_event_id, currency)
type SaleState = (
    i64,
    Option<String>,
    Option<String>,
    i64,
    Option<String>,
    Option<String>,
    String,
);

async fn sale_state(pool: &MySqlPool, order_id: &str) -> Option<SaleState> {
    sqlx::query_as(
        "SELECT amount_minor, DATE_FORMAT(sold_at, '%Y-%m-%d %H:%i:%s.%f'), sale_event_id, refunded_minor, \
         DATE_FORMAT(refunded_at, '%Y-%m-%d %H:%i:%s.%f'), refund_event_id, currency \
         FROM sales WHERE source = 'shop' AND order_id = ?",
    )
    .bind(order_id)
    .fetch_optional(pool)
    .await
    .unwrap()
}

fn state(sale: Option<(i64, &str, &str)>, refund: Option<(i64, &str, &str)>) -> SaleState {
    let (amount, sold_at, sale_id) = match sale {
        Some((amount, at, id)) => (amount, Some(at.to_owned()), Some(id.to_owned())),
        None => (0, None, None),
    };
    let (refunded, refunded_at, refund_id) = match refund {
        Some((amount, at, id)) => (amount, Some(at.to_owned()), Some(id.to_owned())),
        None => (0, None, None),
    };
    (
        amount,
        sold_at,
        sale_id,
        refunded,
        refunded_at,
        refund_id,
        "EUR".to_owned(),
    )
}

/// Every order of arrival of two sales, two refunds and a refund tied in time with a
/// smaller total, one transaction each, ends in the same row: the newest sale and the
/// newest (then largest) refunded total. (Assigning a time column before the columns
/// compared after it fails this test.)
#[tokio::test]
async fn sales_keep_the_newest_state_whatever_order_the_events_arrive_in() {
    let (_database, pool) = migrated_pool().await;
    let events = [
        ("sale-old", Kind::Sale, 1000, "2026-01-10T10:00:00Z"),
        // Newer but smaller: the time decides, not the amount.
        ("sale-new", Kind::Sale, 900, "2026-01-10T11:00:00.000001Z"),
        ("refund-old", Kind::Refund, 300, "2026-02-01T00:00:00Z"),
        ("refund-new", Kind::Refund, 500, "2026-03-01T00:00:00Z"),
        ("refund-tie", Kind::Refund, 400, "2026-03-01T00:00:00Z"),
    ];
    let mut orders = Vec::new();
    permutations(&mut (0..events.len()).collect(), 0, &mut orders);
    assert_eq!(orders.len(), 120);
    for (n, order) in orders.iter().enumerate() {
        let order_id = format!("o-{n}");
        for &index in order {
            let (id, kind, amount, at) = events[index];
            let sale = change(&order_id, kind, amount, at);
            let delivery_id = format!("{order_id}-{id}");
            insert_events(&pool, &[event_row(&delivery_id, Some(&sale))])
                .await
                .unwrap();
        }
    }
    for (n, order) in orders.iter().enumerate() {
        let order_id = format!("o-{n}");
        let expected = state(
            Some((900, "2026-01-10 11:00:00.000001", &format!("{order_id}-sale-new"))),
            Some((500, "2026-03-01 00:00:00.000000", &format!("{order_id}-refund-new"))),
        );
        assert_eq!(
            sale_state(&pool, &order_id).await,
            Some(expected),
            "arrival order {order:?}"
        );
    }
    pool.close().await;
}

fn permutations(items: &mut Vec<usize>, from: usize, out: &mut Vec<Vec<usize>>) {
    if from == items.len() {
        out.push(items.clone());
        return;
    }
    for index in from..items.len() {
        items.swap(from, index);
        permutations(items, from + 1, out);
        items.swap(from, index);
    }
}

#[tokio::test]
async fn a_refund_before_the_sale_creates_the_row_with_amount_zero_and_the_sale_fills_it_in() {
    let (_database, pool) = migrated_pool().await;
    let refund = change("o", Kind::Refund, 250, "2026-05-02T00:00:00Z");
    insert_events(&pool, &[event_row("r", Some(&refund))]).await.unwrap();
    assert_eq!(
        sale_state(&pool, "o").await,
        Some(state(None, Some((250, "2026-05-02 00:00:00.000000", "r"))))
    );
    // The sale, and a copy of the refund delivered again: harmless.
    let sale = change("o", Kind::Sale, 1000, "2026-05-01T00:00:00Z");
    insert_events(&pool, &[event_row("r", Some(&refund)), event_row("s", Some(&sale))])
        .await
        .unwrap();
    assert_eq!(
        sale_state(&pool, "o").await,
        Some(state(
            Some((1000, "2026-05-01 00:00:00.000000", "s")),
            Some((250, "2026-05-02 00:00:00.000000", "r"))
        ))
    );
    // The currency is the first event's.
    let mut other = change("o", Kind::Sale, 1000, "2026-05-03T00:00:00Z");
    other.currency = "USD".to_owned();
    insert_events(&pool, &[event_row("s2", Some(&other))]).await.unwrap();
    assert_eq!(sale_state(&pool, "o").await.unwrap().6, "EUR");
    pool.close().await;
}

#[tokio::test]
async fn events_are_stored_processed_or_ignored_at_once() {
    let (_database, pool) = migrated_pool().await;
    let sale = change("o", Kind::Sale, 1, "2026-05-01T00:00:00Z");
    insert_events(&pool, &[event_row("a", Some(&sale)), event_row("b", None)])
        .await
        .unwrap();
    let rows: Vec<(String, String, bool, Option<String>)> = sqlx::query_as(
        "SELECT delivery_id, status, processed_at IS NOT NULL AND processed_at <= UTC_TIMESTAMP(6), error \
         FROM events ORDER BY delivery_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            ("a".to_owned(), "processed".to_owned(), true, None),
            ("b".to_owned(), "ignored".to_owned(), true, None)
        ]
    );
    pool.close().await;
}

#[tokio::test]
async fn the_event_and_its_sale_commit_together_or_not_at_all() {
    let (_database, pool) = migrated_pool().await;
    sqlx::query("ALTER TABLE sales ADD CONSTRAINT no_xxx CHECK (currency <> 'XXX')")
        .execute(&pool)
        .await
        .unwrap();
    let mut sale = change("o", Kind::Sale, 1, "2026-05-01T00:00:00Z");
    sale.currency = "XXX".to_owned();
    let error = insert_events(&pool, &[event_row("a", None), event_row("b", Some(&sale))])
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Refused(cause) if cause.to_string().contains("no_xxx")),
        "{error:?}"
    );
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    let sales: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sales")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((events, sales), (0, 0));
    pool.close().await;
}

#[tokio::test]
async fn dead_letters_are_recorded_cut_to_their_columns() {
    let (_database, pool) = migrated_pool().await;
    let long_source = "s".repeat(100);
    let long_error = "é".repeat(MAX_DEAD_LETTER_ERROR_CHARS + 10);
    let rows = [
        DeadLetterRow {
            source: "shop".to_owned(),
            delivery_id: "d-1".to_owned(),
            event_type: "orders/paid".to_owned(),
            reason: "retries_exhausted",
            error: "retries exhausted after 5: orders/paid: /total_price is missing",
            retry_count: 5,
        },
        DeadLetterRow {
            source: long_source,
            delivery_id: String::new(),
            event_type: "(unknown)".to_owned(),
            reason: "poison",
            error: &long_error,
            retry_count: 0,
        },
    ];
    insert_dead_letters(&pool, &rows).await.unwrap();
    insert_dead_letters(&pool, &[]).await.unwrap();
    let stored: Vec<(String, String, String, String, u32, i64, bool)> = sqlx::query_as(
        "SELECT source, delivery_id, event_type, reason, retry_count, CAST(CHAR_LENGTH(error) AS SIGNED), \
         dead_lettered_at <= UTC_TIMESTAMP(6) FROM dead_letters ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        stored,
        vec![
            (
                "shop".into(),
                "d-1".into(),
                "orders/paid".into(),
                "retries_exhausted".into(),
                5,
                63,
                true
            ),
            (
                "s".repeat(64),
                String::new(),
                "(unknown)".into(),
                "poison".into(),
                0,
                4000,
                true
            ),
        ]
    );
    pool.close().await;
}

/// Where `max_allowed_packet` cuts, on the real server: the largest row the consumer would try
/// ([`EventRow::packet_bytes`] at the limit) is stored; a packet over the limit is refused as
/// too large (error 1153); one about twice the limit makes the server close the connection,
/// which is a lost connection, not a refusal.
#[tokio::test]
async fn max_allowed_packet_stores_the_largest_row_tried_and_refuses_a_larger_one() {
    let (_database, pool) = migrated_pool().await;
    let limit: u64 = sqlx::query_scalar("SELECT @@max_allowed_packet")
        .fetch_one(&pool)
        .await
        .unwrap();
    fn row<'a>(delivery_id: &'a str, body: &'a str) -> EventRow<'a> {
        EventRow {
            body,
            body_sha256: "0000000000000000000000000000000000000000000000000000000000000000",
            ..event_row(delivery_id, None)
        }
    }
    let body = |bytes: u64| "x".repeat(usize::try_from(bytes).unwrap());
    let fits = body(limit - row("fits", "").packet_bytes());
    assert_eq!(row("fits", &fits).packet_bytes(), limit);
    insert_events(&pool, &[row("fits", &fits)]).await.unwrap();

    let error = insert_events(&pool, &[row("over", &body(limit))]).await.unwrap_err();
    assert!(error.is_packet_too_large(), "{error:?}");

    let error = insert_events(&pool, &[row("far", &body(limit * 2))]).await.unwrap_err();
    assert!(matches!(error, StoreError::Lost(_)), "{error:?}");
    assert!(!error.is_packet_too_large());

    let stored: Vec<String> = sqlx::query_scalar("SELECT delivery_id FROM events")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored, ["fits"]);
    pool.close().await;
}

/// The same delivery id with another body, on the real server: the stored body is kept, every
/// delivery with another body is counted in `conflicts` (in the batch and against the stored
/// row), and the sale of a body that is not kept is not applied.
#[tokio::test]
async fn a_conflicting_duplicate_keeps_the_stored_body_counts_its_conflicts_and_applies_no_sale() {
    let (_database, pool) = migrated_pool().await;
    let first = change("o", Kind::Sale, 100, "2026-05-01T00:00:00Z");
    let later = change("o", Kind::Sale, 999, "2026-06-01T00:00:00Z");
    let row = |delivery_id: &'static str, sha: &'static str, copies: u32, conflicts: &'static [&'static str], sale| {
        EventRow {
            body_sha256: sha,
            copies,
            conflicts,
            ..event_row(delivery_id, sale)
        }
    };
    // A new row with one conflict of its own batch.
    let inserted = insert_events(&pool, &[row("s", "a", 1, &["b"], Some(&first))])
        .await
        .unwrap();
    assert!(inserted.another_body.is_empty());
    // Against the stored "a": "b" twice (the row and an identical copy) and "c" are conflicts,
    // "a" is not; and the same body again is a plain duplicate.
    let inserted = insert_events(
        &pool,
        &[row("s", "b", 3, &["a", "c"], Some(&later)), row("t", "x", 0, &[], None)],
    )
    .await
    .unwrap();
    assert_eq!(
        inserted.another_body,
        vec![AnotherBody {
            row: 0,
            stored_sha256: "a".to_owned(),
            conflicts: 3
        }]
    );
    insert_events(&pool, &[row("s", "a", 0, &[], Some(&first))])
        .await
        .unwrap();
    let stored: Vec<(String, String, u32, u32)> =
        sqlx::query_as("SELECT delivery_id, body_sha256, duplicates, conflicts FROM events ORDER BY delivery_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        stored,
        vec![
            ("s".to_owned(), "a".to_owned(), 1 + 4 + 1, 1 + 3),
            ("t".to_owned(), "x".to_owned(), 0, 0)
        ]
    );
    // The sale is the stored body's: 100, not the later 999.
    assert_eq!(
        sale_state(&pool, "o").await,
        Some(state(Some((100, "2026-05-01 00:00:00.000000", "s")), None))
    );
    pool.close().await;
}
