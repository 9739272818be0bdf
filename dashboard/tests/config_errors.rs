//! The dashboard binary refuses a bad configuration value at start: one line naming the
//! variable, the value (password hidden) and what was expected; exit code 2. A database that
//! refuses the login is logged at start in one line naming DATABASE_URL. No login on an address
//! other than loopback, or a users file that cannot be used, refuses to start the same way, and
//! so do the broker's variables when AMQP_URL is set.

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
    // The broker's variables, read (as the consumer reads them) when AMQP_URL is set.
    let refused = run_misconfigured(BINARY, &[], &[("AMQP_URL", "http://guest:hunter2@rabbit/")]);
    assert_config_error(&refused, "AMQP_URL", "expected a URL of the form amqp://… or amqps://…");
    assert!(!refused.stderr.contains("hunter2"), "{}", refused.stderr);
    let refused = run_misconfigured(
        BINARY,
        &[],
        &[
            ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            ("AMQP_PREFIX", "a b"),
        ],
    );
    assert_config_error(
        &refused,
        "AMQP_PREFIX",
        "AMQP_PREFIX=\"a b\": expected 1 to 100 characters",
    );
    let refused = run_misconfigured(BINARY, &[], &[("DATABASE_URL", "mysql://ro:hunter2@db:x/webhooks")]);
    assert_config_error(&refused, "DATABASE_URL", "mysql://ro:***@db:x/webhooks");
    assert!(!refused.stderr.contains("hunter2"), "{}", refused.stderr);
}

#[test]
fn no_login_on_an_address_other_than_loopback_refuses_to_start_in_one_line() {
    for addr in ["0.0.0.0:3002", "[::]:3002", "192.0.2.1:3002"] {
        let refused = run_misconfigured(BINARY, &[], &[("DASHBOARD_ADDR", addr)]);
        assert_config_error(
            &refused,
            "DASHBOARD_AUTH",
            "DASHBOARD_AUTH is not set: expected basic:FILE",
        );
        assert!(
            refused
                .stderr
                .contains(&format!("because DASHBOARD_ADDR={addr} is not a loopback address")),
            "{}",
            refused.stderr
        );
    }
}

#[test]
fn a_bad_dashboard_auth_or_users_file_is_named_in_one_line() {
    let dir = testkit::private::TempDir::new("dashboard-auth-config");
    let bad = dir.write(
        "users",
        "# operators\nann:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\nbob:hunter2\n",
    );
    let bad = bad.display().to_string();
    let empty = dir.write("empty", "# nobody yet\n").display().to_string();
    let missing = dir.path().join("absent").display().to_string();
    let cases: Vec<(String, String, String)> = vec![
        (
            "DASHBOARD_AUTH".into(),
            format!("basic:{bad}"),
            format!("a users file of user:$argon2id$… lines ({bad}: line 3: the hash is not a PHC string"),
        ),
        (
            "DASHBOARD_AUTH".into(),
            format!("basic:{empty}"),
            format!("({empty}: no users in it)"),
        ),
        (
            "DASHBOARD_AUTH".into(),
            format!("basic:{missing}"),
            format!("a readable users file ({missing}: "),
        ),
        ("DASHBOARD_AUTH".into(), "ldap".into(), "expected basic:FILE".into()),
        (
            "DASHBOARD_AUTH".into(),
            "proxy:Bad Header".into(),
            "is not a header name".into(),
        ),
    ];
    for (variable, value, expected) in &cases {
        let refused = run_misconfigured(
            BINARY,
            &[],
            &[(variable, value), ("DASHBOARD_TRUSTED_PROXIES", "10.0.0.1")],
        );
        assert_config_error(&refused, variable, expected);
        assert!(!refused.stderr.contains("hunter2"), "{}", refused.stderr);
    }
    let refused = run_misconfigured(BINARY, &[], &[("DASHBOARD_AUTH", "proxy:X-Forwarded-User")]);
    assert_config_error(
        &refused,
        "DASHBOARD_TRUSTED_PROXIES",
        "DASHBOARD_TRUSTED_PROXIES is not set",
    );
    let refused = run_misconfigured(
        BINARY,
        &[],
        &[
            ("DASHBOARD_AUTH", "proxy:X-Forwarded-User"),
            ("DASHBOARD_TRUSTED_PROXIES", "proxy.local"),
        ],
    );
    assert_config_error(
        &refused,
        "DASHBOARD_TRUSTED_PROXIES",
        "expected IP addresses or networks",
    );
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
