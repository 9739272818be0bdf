//! The counts behind `vendor_health` and `sales_per_month` (`daily_counts`, `sales_months`,
//! kept by triggers) always say what the views used to compute from every row: after any mix
//! of writes from several connections, rolled back or not, and after an upgrade over rows
//! stored before the counts existed.

use std::path::{Path, PathBuf};

use sqlx::{Connection, Executor, MySqlConnection};
use testkit::TestDatabase;

/// `vendor_health` as the view computed it from every row, rejections of unknown sources in
/// their bucket.
const HEALTH_FROM_ROWS: &str = "SELECT source, DATE_FORMAT(day, '%Y-%m-%d'), CAST(SUM(events) AS SIGNED), \
    CAST(SUM(duplicates) AS SIGNED), CAST(SUM(retried) AS SIGNED), CAST(SUM(dead_lettered) AS SIGNED), \
    CAST(SUM(rejected) AS SIGNED), CAST(ROUND(MAX(latency_avg_ms), 3) AS CHAR), CAST(ROUND(MAX(latency_max_ms), 3) AS CHAR) \
    FROM ( \
        SELECT source, DATE(received_at) AS day, COUNT(*) AS events, SUM(duplicates) AS duplicates, \
               SUM(retry_count > 0) AS retried, 0 AS dead_lettered, 0 AS rejected, \
               AVG(TIMESTAMPDIFF(MICROSECOND, received_at, stored_at)) / 1000 AS latency_avg_ms, \
               MAX(TIMESTAMPDIFF(MICROSECOND, received_at, stored_at)) / 1000 AS latency_max_ms \
        FROM events GROUP BY source, DATE(received_at) \
        UNION ALL \
        SELECT source, DATE(dead_lettered_at), 0, 0, 0, COUNT(*), 0, NULL, NULL \
        FROM dead_letters GROUP BY source, DATE(dead_lettered_at) \
        UNION ALL \
        SELECT IF(reason = 'unknown_source', '(unknown)', source), DATE(received_at), 0, 0, 0, 0, COUNT(*), NULL, NULL \
        FROM rejections GROUP BY IF(reason = 'unknown_source', '(unknown)', source), DATE(received_at) \
    ) AS daily GROUP BY source, day ORDER BY source, day";

/// `vendor_health` as it is now.
const HEALTH: &str = "SELECT source, DATE_FORMAT(day, '%Y-%m-%d'), CAST(events AS SIGNED), CAST(duplicates AS SIGNED), \
    CAST(retried AS SIGNED), CAST(dead_lettered AS SIGNED), CAST(rejected AS SIGNED), \
    CAST(ROUND(latency_avg_ms, 3) AS CHAR), CAST(ROUND(latency_max_ms, 3) AS CHAR) \
    FROM vendor_health ORDER BY source, day";

/// `sales_per_month` as the view computed it from every order.
const SALES_FROM_ROWS: &str = "SELECT source, month, currency, CAST(SUM(orders) AS SIGNED), CAST(SUM(gross_minor) AS SIGNED), \
    CAST(SUM(refunded_minor) AS SIGNED), CAST(SUM(gross_minor) - SUM(refunded_minor) AS SIGNED) \
    FROM ( \
        SELECT source, DATE_FORMAT(sold_at, '%Y-%m') AS month, currency, 1 AS orders, amount_minor AS gross_minor, \
               0 AS refunded_minor FROM sales WHERE sold_at IS NOT NULL \
        UNION ALL \
        SELECT source, DATE_FORMAT(refunded_at, '%Y-%m') AS month, currency, 0, 0, refunded_minor \
        FROM sales WHERE refunded_at IS NOT NULL \
    ) AS movements GROUP BY source, month, currency ORDER BY source, month, currency";

/// `sales_per_month` as it is now.
const SALES: &str = "SELECT source, month, currency, CAST(orders AS SIGNED), CAST(gross_minor AS SIGNED), \
    CAST(refunded_minor AS SIGNED), CAST(net_minor AS SIGNED) FROM sales_per_month ORDER BY source, month, currency";

type HealthRow = (String, String, i64, i64, i64, i64, i64, Option<String>, Option<String>);
type SalesRow = (String, String, String, i64, i64, i64, i64);

/// Both views equal their computation from every row; returns how many rows each has.
async fn assert_views_match_rows(connection: &mut MySqlConnection) -> (usize, usize) {
    let health: Vec<HealthRow> = sqlx::query_as(HEALTH).fetch_all(&mut *connection).await.unwrap();
    let expected: Vec<HealthRow> = sqlx::query_as(HEALTH_FROM_ROWS)
        .fetch_all(&mut *connection)
        .await
        .unwrap();
    assert_eq!(health, expected, "vendor_health");
    let sales: Vec<SalesRow> = sqlx::query_as(SALES).fetch_all(&mut *connection).await.unwrap();
    let expected: Vec<SalesRow> = sqlx::query_as(SALES_FROM_ROWS)
        .fetch_all(&mut *connection)
        .await
        .unwrap();
    assert_eq!(sales, expected, "sales_per_month");
    (health.len(), sales.len())
}

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Dice(u64);

impl Dice {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[usize::try_from(self.below(items.len() as u64)).unwrap()]
    }

    /// A time in the first eight months of 2026, many of them on the last or first day of a
    /// month, some close to midnight: orders move between months, and months empty out.
    fn time(&mut self) -> String {
        let month = 1 + self.below(8);
        let day = match self.below(3) {
            0 => 28,
            1 => 1,
            _ => 1 + self.below(28),
        };
        let seconds = if self.below(4) == 0 { 86_399 } else { self.below(86_400) };
        format!(
            "2026-{month:02}-{day:02} {:02}:{:02}:{:02}.{:06}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60,
            self.below(1_000_000)
        )
    }
}

const SOURCES: [&str; 3] = ["shop", "stripe", "(unknown)"];

/// One batch of writes of every kind, as the consumer and `consumer dlq` make them (and some
/// they never make: orders moved to another month, or deleted).
async fn write_some(connection: &mut MySqlConnection, dice: &mut Dice) {
    let events: Vec<String> = (0..20)
        .map(|_| {
            let received = dice.time();
            format!(
                "('{}', 'd-{}', 'ping', '{{}}', REPEAT('0', 64), '{received}', '{received}' + INTERVAL {} MICROSECOND, {}, {})",
                dice.pick(&SOURCES[..2]),
                dice.below(60),
                dice.below(5_000_000),
                dice.below(3),
                dice.below(2)
            )
        })
        .collect();
    let statement = format!(
        "INSERT INTO events (source, delivery_id, event_type, body, body_sha256, received_at, stored_at, retry_count, duplicates) \
         VALUES {} ON DUPLICATE KEY UPDATE duplicates = duplicates + VALUES(duplicates) + 1",
        events.join(", ")
    );
    connection.execute(sqlx::AssertSqlSafe(statement)).await.unwrap();
    for _ in 0..3 {
        let statement = format!(
            "INSERT INTO dead_letters (source, delivery_id, event_type, reason, error, retry_count, dead_lettered_at) \
             VALUES ('{}', 'x', 'ping', 'poison', 'e', 0, '{}')",
            dice.pick(&SOURCES),
            dice.time()
        );
        connection.execute(sqlx::AssertSqlSafe(statement)).await.unwrap();
        let (source, reason) = match dice.below(3) {
            0 => ("(unknown)", "unknown_source"),
            _ => (dice.pick(&SOURCES[..2]), "signature_mismatch"),
        };
        let statement = format!(
            "INSERT INTO rejections (received_at, source, reason, status, request_id) VALUES ('{}', '{source}', '{reason}', 401, 'r')",
            dice.time()
        );
        connection.execute(sqlx::AssertSqlSafe(statement)).await.unwrap();
    }
    for _ in 0..6 {
        let order = format!("o-{}", dice.below(25));
        let source = dice.pick(&SOURCES[..2]);
        let currency = dice.pick(&["EUR", "USD"]);
        let sold = if dice.below(5) == 0 {
            "NULL".to_owned()
        } else {
            format!("'{}'", dice.time())
        };
        let refunded = if dice.below(2) == 0 {
            "NULL".to_owned()
        } else {
            format!("'{}'", dice.time())
        };
        let (amount, refund) = (dice.below(10_000), dice.below(5_000));
        let statement = match dice.below(5) {
            // The consumer's upsert, simplified: each half replaced when given.
            0 | 1 => format!(
                "INSERT INTO sales (source, order_id, currency, amount_minor, sold_at, refunded_minor, refunded_at, updated_at) \
                 VALUES ('{source}', '{order}', '{currency}', {amount}, {sold}, {refund}, {refunded}, NOW(6)) \
                 ON DUPLICATE KEY UPDATE amount_minor = IF(VALUES(sold_at) IS NULL, amount_minor, VALUES(amount_minor)), \
                 sold_at = COALESCE(VALUES(sold_at), sold_at), \
                 refunded_minor = IF(VALUES(refunded_at) IS NULL, refunded_minor, VALUES(refunded_minor)), \
                 refunded_at = COALESCE(VALUES(refunded_at), refunded_at), updated_at = NOW(6)"
            ),
            2 => format!(
                "UPDATE sales SET sold_at = {sold}, amount_minor = {amount} WHERE source = '{source}' AND order_id = '{order}'"
            ),
            3 => format!(
                "UPDATE sales SET refunded_at = {refunded}, refunded_minor = {refund}, updated_at = NOW(6) \
                 WHERE source = '{source}' AND order_id = '{order}'"
            ),
            _ => format!("DELETE FROM sales WHERE source = '{source}' AND order_id = '{order}'"),
        };
        connection.execute(sqlx::AssertSqlSafe(statement)).await.unwrap();
    }
}

#[tokio::test]
async fn the_counts_match_every_row_after_any_mix_of_writes_from_several_connections() {
    let database = TestDatabase::new();
    database.create_migrated().await;
    let mut connections = Vec::new();
    for _ in 0..3 {
        connections.push(database.connect().await);
    }
    let mut dice = Dice(0x5eed_0fc0_0417);
    for round in 0..60 {
        let connection = &mut connections[round % 3];
        let mut transaction = connection.begin().await.unwrap();
        write_some(&mut transaction, &mut dice).await;
        // Every fourth batch is rolled back: its counts must go with it.
        if round % 4 == 3 {
            transaction.rollback().await.unwrap();
        } else {
            transaction.commit().await.unwrap();
        }
    }
    let (health, sales) = assert_views_match_rows(&mut connections[0]).await;
    assert!(health > 10 && sales > 5, "too little to compare: {health} / {sales}");
    let shards: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT shard) FROM daily_counts")
        .fetch_one(&mut connections[0])
        .await
        .unwrap();
    assert_eq!(shards, 3, "one shard per connection");
}

/// A directory with the migrations before the counts existed, removed when dropped.
struct OlderMigrations(PathBuf);

impl OlderMigrations {
    fn new() -> Self {
        let all = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let dir = std::env::temp_dir().join(format!("webhook-inbox-migrations-{}", testkit::unique_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&all).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if name.as_str() < "20261201120001" {
                std::fs::copy(&path, dir.join(&name)).unwrap();
            }
        }
        Self(dir)
    }
}

impl Drop for OlderMigrations {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn an_upgrade_counts_the_rows_stored_before_it() {
    let database = TestDatabase::new();
    database.create().await;
    let mut connection = database.connect().await;
    let older = OlderMigrations::new();
    sqlx::migrate::Migrator::new(older.0.clone())
        .await
        .unwrap()
        .run(&mut connection)
        .await
        .unwrap();
    let mut dice = Dice(0xdead_beef);
    for _ in 0..10 {
        write_some(&mut connection, &mut dice).await;
    }
    // What an older consumer stored for requests to made-up sources.
    connection
        .execute(
            "INSERT INTO rejections (received_at, source, reason, status, request_id) VALUES \
             ('2026-03-30 10:00:00', 'fake-1', 'unknown_source', 404, 'a'), \
             ('2026-03-30 11:00:00', 'fake-2', 'unknown_source', 404, 'b')",
        )
        .await
        .unwrap();

    let all = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    sqlx::migrate::Migrator::new(all)
        .await
        .unwrap()
        .run(&mut connection)
        .await
        .unwrap();
    let (health, sales) = assert_views_match_rows(&mut connection).await;
    assert!(health > 10 && sales > 5, "too little to compare: {health} / {sales}");
    let sources: Vec<String> = sqlx::query_scalar("SELECT DISTINCT source FROM vendor_health ORDER BY source")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    assert_eq!(sources, ["(unknown)", "shop", "stripe"]);
    // And the counts go on from there.
    write_some(&mut connection, &mut dice).await;
    assert_views_match_rows(&mut connection).await;
}

#[tokio::test]
async fn the_counts_still_match_every_row_after_a_purge_and_erasures() {
    let database = TestDatabase::new();
    database.create_migrated().await;
    let mut connection = database.connect().await;
    let mut dice = Dice(0x0e7a_5e00_0001);
    for _ in 0..10 {
        write_some(&mut connection, &mut dice).await;
    }
    // Each order's halves from events, as the consumer records them.
    connection
        .execute("UPDATE sales SET sale_event_id = CONCAT('d-', id % 60) WHERE sold_at IS NOT NULL")
        .await
        .unwrap();
    connection
        .execute("UPDATE sales SET refund_event_id = CONCAT('d-', (id + 7) % 60) WHERE refunded_at IS NOT NULL")
        .await
        .unwrap();
    assert_views_match_rows(&mut connection).await;
    let health: Vec<HealthRow> = sqlx::query_as(HEALTH).fetch_all(&mut connection).await.unwrap();
    let sales: Vec<SalesRow> = sqlx::query_as(SALES).fetch_all(&mut connection).await.unwrap();

    let pool = sqlx::MySqlPool::connect(&database.url()).await.unwrap();
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    let purged = consumer::store::purge_bodies(&pool, tomorrow, 100_000).await.unwrap();
    assert!(purged > 10, "{purged}");
    assert_eq!(
        sqlx::query_as::<_, HealthRow>(HEALTH)
            .fetch_all(&mut connection)
            .await
            .unwrap(),
        health,
        "a purge changes no count"
    );
    assert_eq!(
        sqlx::query_as::<_, SalesRow>(SALES)
            .fetch_all(&mut connection)
            .await
            .unwrap(),
        sales,
        "a purge changes no sale"
    );

    let tombstone = consumer::store::Tombstone {
        erased_by: "test",
        reason: None,
        matched_by: "delivery_id",
    };
    let mut cleared = 0;
    for n in 0..30 {
        let Some(event) = consumer::store::find_event(&pool, "shop", &format!("d-{n}"))
            .await
            .unwrap()
        else {
            continue;
        };
        if let consumer::store::Erased::Now { sales_cleared } =
            consumer::store::erase_event(&pool, "shop", event.id, &tombstone)
                .await
                .unwrap()
        {
            cleared += sales_cleared;
        }
    }
    assert!(cleared > 0, "no order came from an erased event");
    assert_views_match_rows(&mut connection).await;
    // And the counts go on from there.
    write_some(&mut connection, &mut dice).await;
    assert_views_match_rows(&mut connection).await;
}
