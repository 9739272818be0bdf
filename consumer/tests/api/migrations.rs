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
