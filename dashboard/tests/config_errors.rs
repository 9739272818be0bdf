//! The dashboard binary refuses a bad configuration value at start: one line naming the
//! variable, the value (password hidden) and what was expected; exit code 2. A database that
//! refuses the login is logged at start in one line naming DATABASE_URL.

#![allow(clippy::unwrap_used)]

use testkit::{assert_config_error, run_misconfigured};

const BINARY: &str = env!("CARGO_BIN_EXE_dashboard");

#[test]
fn each_bad_variable_is_named_in_one_line_with_exit_code_2() {
    let cases: &[(&str, &str, &str)] = &[
        ("DASHBOARD_ADDR", "x", "DASHBOARD_ADDR=\"x\": expected a socket address"),
        (
            "DATABASE_URL",
            "http://db/webhooks",
            "DATABASE_URL=\"http://db/webhooks\": expected a URL of the form mysql://",
        ),
        (
            "DATABASE_URL",
            "mysql://root@db:99999/webhooks",
            "expected a MySQL URL such as",
        ),
        (
            "DATABASE_URL",
            "mysql://root@db:3306",
            "expected a MySQL URL that names the database",
        ),
    ];
    for (variable, value, expected) in cases {
        let refused = run_misconfigured(BINARY, &[], &[(variable, value)]);
        assert_config_error(&refused, variable, expected);
    }
    let refused = run_misconfigured(BINARY, &[], &[("DATABASE_URL", "mysql://ro:hunter2@db:x/webhooks")]);
    assert_config_error(&refused, "DATABASE_URL", "mysql://ro:***@db:x/webhooks");
    assert!(!refused.stderr.contains("hunter2"), "{}", refused.stderr);
}

/// Starts the dashboard with `database_url` and returns its first log line that mentions the
/// database check, then stops it.
fn database_check_line(database_url: &str) -> String {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(BINARY)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("DASHBOARD_ADDR", "127.0.0.1:0")
        .current_dir(std::env::temp_dir())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let found = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match received.recv_timeout(left) {
            Ok(line) if line.contains("dashboard database") => break Some(line),
            Ok(_) => {}
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    found.expect("no database check line within 30 s")
}

#[test]
fn the_database_login_is_checked_at_start_and_a_refusal_is_one_line_naming_database_url() {
    use testkit::private::{PrivateMariaDb, TempDir, TestCa, Validity};
    let ca = TestCa::new("webhooks test CA");
    let server = PrivateMariaDb::start(&ca, &ca.server(Validity::Current));
    server.sql("CREATE DATABASE webhooks");
    server.add_user("dashboard", "read-only-pw", "webhooks", true);
    let dir = TempDir::new("dashboard-client");
    let query = format!(
        "?ssl-mode=verify_identity&ssl-ca={}",
        dir.write("ca.pem", ca.pem()).display()
    );

    let line = database_check_line(&server.url("dashboard", "read-only-pw", "webhooks", &query));
    assert!(line.contains("dashboard database reachable"), "{line}");

    let line = database_check_line(&server.url("dashboard", "wrong-pw", "webhooks", &query));
    assert!(
        line.contains("dashboard database check failed: DATABASE_URL=mysql://dashboard:***@127.0.0.1:"),
        "{line}"
    );
    assert!(line.contains("the server refused the login"), "{line}");
    assert!(!line.contains("wrong-pw"), "{line}");
}
