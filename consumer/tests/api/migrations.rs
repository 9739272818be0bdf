//! `consumer migrate` started several times at once on a fresh database: every process
//! succeeds and every migration is applied once.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use consumer::store::MIGRATOR;
use testkit::TestDatabase;

/// How many processes race.
const PROCESSES: usize = 6;
/// How long each may take.
const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn several_consumers_migrating_a_fresh_database_at_once_all_succeed() {
    let database = TestDatabase::new();
    let dir = std::env::temp_dir().join(format!("consumer-migrate-{}", testkit::unique_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_consumer"))
                .arg("migrate")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("DATABASE_URL", database.url())
                .env("RUST_LOG", "info")
                // No .env here.
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outcomes = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut outcomes = Vec::new();
        for child in &mut children {
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break Some(status);
                }
                if started.elapsed() > DEADLINE {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            outcomes.push((status, stderr));
        }
        outcomes
    })
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    for (n, (status, stderr)) in outcomes.iter().enumerate() {
        assert!(
            status.is_some_and(|status| status.success()),
            "migrate process {n} of {PROCESSES} ended with {status:?}:\n{stderr}"
        );
    }
    let mut connection = database.connect().await;
    let applied: Vec<(i64, bool)> = sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    let expected: Vec<(i64, bool)> = MIGRATOR.iter().map(|migration| (migration.version, true)).collect();
    assert_eq!(applied, expected);
}

/// The ledger's last migration keyed by a hex hash alone.
const LEDGER_BY_HASH: i64 = 20261202200008;

#[tokio::test]
async fn the_ledger_rekeyed_by_time_keeps_its_settled_rows_and_counts_pending_ones_again() {
    let database = TestDatabase::new();
    database.create().await;
    let mut connection = database.connect().await;
    let before = sqlx::migrate::Migrator::with_migrations(
        MIGRATOR
            .iter()
            .filter(|migration| migration.version <= LEDGER_BY_HASH)
            .cloned()
            .collect(),
    );
    before.run(&mut connection).await.unwrap();
    // As the consumer wrote them then: a stored message, a dead letter, one in a retry queue.
    sqlx::query(
        "INSERT INTO ledger_messages (accepted_id, source, day, outcome, first_seen_at, seen_at, due_at) VALUES \
         (SHA2('a', 256), 'shop', '2026-12-01', 'stored', '2026-12-01 10:00:00.000001', '2026-12-01 10:00:02', NULL), \
         (SHA2('b', 256), 'shop', '2026-12-01', 'dead_lettered', '2026-12-01 11:00:00', '2026-12-01 11:00:00', NULL), \
         (SHA2('c', 256), 'shop', '2026-12-01', NULL, '2026-12-01 12:00:00', '2026-12-01 12:00:00', '2999-01-01 00:00:00')",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    let ledger = "SELECT accepted, stored, dead_lettered, difference, in_flight FROM ledger WHERE source = 'shop'";
    let counts: (i64, i64, i64, i64, i64) = sqlx::query_as(ledger).fetch_one(&mut connection).await.unwrap();
    assert_eq!(counts, (3, 1, 1, 1, 1));

    MIGRATOR.run(&mut connection).await.unwrap();
    let moved: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT DATE_FORMAT(received_at, '%Y-%m-%d %H:%i:%s.%f'), HEX(accepted_id), outcome \
         FROM ledger_messages ORDER BY received_at",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let unhexed = |text: &str| {
        use sha2::Digest;
        hex::encode_upper(sha2::Sha256::digest(text))
    };
    assert_eq!(
        moved,
        [
            (
                "2026-12-01 10:00:00.000001".to_owned(),
                unhexed("a"),
                Some("stored".to_owned())
            ),
            (
                "2026-12-01 11:00:00.000000".to_owned(),
                unhexed("b"),
                Some("dead_lettered".to_owned())
            ),
        ]
    );
    // The pending message is no longer counted: it is counted, with its outcome, when it comes
    // back; the balance holds meanwhile.
    let counts: (i64, i64, i64, i64, i64) = sqlx::query_as(ledger).fetch_one(&mut connection).await.unwrap();
    assert_eq!(counts, (2, 1, 1, 0, 0));
    // The triggers count on the new table.
    sqlx::query(
        "INSERT INTO ledger_messages (received_at, accepted_id, source, day, outcome, first_seen_at, seen_at) \
         VALUES ('2026-12-01 12:00:00', UNHEX(SHA2('c', 256)), 'shop', '2026-12-01', 'stored', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    let counts: (i64, i64, i64, i64, i64) = sqlx::query_as(ledger).fetch_one(&mut connection).await.unwrap();
    assert_eq!(counts, (3, 2, 1, 0, 0));
}
