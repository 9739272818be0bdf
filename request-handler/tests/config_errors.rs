//! The request-handler binary refuses every bad configuration value at start: one line naming
//! the variable, the value (unless secret) and what was expected; exit code 2.

#![allow(clippy::unwrap_used)]

use testkit::{assert_config_error, run_misconfigured};

const BINARY: &str = env!("CARGO_BIN_EXE_request-handler");

#[test]
fn each_bad_variable_is_named_in_one_line_with_exit_code_2() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "HANDLER_ADDR",
            "nowhere",
            "HANDLER_ADDR=\"nowhere\": expected a socket address",
        ),
        (
            "MAX_BODY_BYTES",
            "big",
            "MAX_BODY_BYTES=\"big\": expected an integer number of bytes from 1 to 67108864",
        ),
        ("MAX_BODY_BYTES", "0", "MAX_BODY_BYTES=\"0\": expected"),
        (
            "ENQUEUE_TIMEOUT_MS",
            "0",
            "ENQUEUE_TIMEOUT_MS=\"0\": expected an integer number of milliseconds from 1 to 600000",
        ),
        (
            "BODY_READ_TIMEOUT_MS",
            "-5",
            "BODY_READ_TIMEOUT_MS=\"-5\": expected an integer number of milliseconds",
        ),
        (
            "HANDLER_WORKERS",
            "300",
            "HANDLER_WORKERS=\"300\": expected an integer number of worker threads from 1 to 256",
        ),
        (
            "PUBLISH_CHANNELS",
            "many",
            "PUBLISH_CHANNELS=\"many\": expected an integer number of channels from 1 to 64",
        ),
        (
            "AMQP_URL",
            "http://broker",
            "AMQP_URL=\"http://broker\": expected a URL of the form amqp://",
        ),
        (
            "AMQP_PREFIX",
            "no spaces",
            "AMQP_PREFIX=\"no spaces\": expected 1 to 100 characters",
        ),
        (
            "QUEUE_TYPE",
            "stream",
            "QUEUE_TYPE=\"stream\": expected quorum or classic",
        ),
        (
            "RETRY_DELAYS",
            "1s,soon",
            "RETRY_DELAYS=\"1s,soon\": expected a comma-separated list of durations",
        ),
        (
            "SHUTDOWN_GRACE_MS",
            "forever",
            "SHUTDOWN_GRACE_MS=\"forever\": expected an integer number of milliseconds",
        ),
        (
            "MAX_IN_FLIGHT",
            "0",
            "MAX_IN_FLIGHT=\"0\": expected an integer number of requests from 1 to 1000000",
        ),
        (
            "SOURCES_FILE",
            "/nonexistent/sources.toml",
            "SOURCES_FILE=\"/nonexistent/sources.toml\": expected a readable file",
        ),
    ];
    for (variable, value, expected) in cases {
        let refused = run_misconfigured(BINARY, &[], &[("WEBHOOK_SECRET", "s"), (variable, value)]);
        assert_config_error(&refused, variable, expected);
    }
}

#[test]
fn a_missing_secret_is_named_and_a_password_in_a_url_is_not_shown() {
    let refused = run_misconfigured(BINARY, &[], &[]);
    assert_config_error(&refused, "WEBHOOK_SECRET", "WEBHOOK_SECRET is not set: expected");

    let refused = run_misconfigured(
        BINARY,
        &[],
        &[
            ("WEBHOOK_SECRET", "s"),
            ("AMQP_URL", "amqp://guest:hunter2@broker:port/"),
        ],
    );
    assert_config_error(&refused, "AMQP_URL", "AMQP_URL=\"amqp://guest:***@broker:port/\"");
    assert!(!refused.stderr.contains("hunter2"), "{}", refused.stderr);
}

/// Runs the handler with `AMQP_URL` naming two brokers that are not there, until it has logged
/// a failed connect to them, and returns what it wrote to stderr.
fn log_of_failed_connects(amqp_url: &str) -> String {
    use std::io::BufRead as _;
    let dir = std::env::temp_dir().join(format!("webhook-inbox-log-{}", testkit::unique_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = std::process::Command::new(BINARY)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WEBHOOK_SECRET", "s")
        .env("HANDLER_ADDR", "127.0.0.1:0")
        .env("AMQP_URL", amqp_url)
        .env("RUST_LOG", "debug")
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    // The reader ends when the child is killed; the deadline kills it if the line never comes.
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match seen.recv_timeout(left) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains("broker connect failed") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(log.contains("broker connect failed"), "no failed connect logged: {log}");
    log
}

#[test]
fn no_password_of_any_broker_address_reaches_the_log() {
    let closed: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let url = format!(
        "amqp://guest:first-password@127.0.0.1:{}/%2f,amqp://other:second-password@127.0.0.1:{}/%2f",
        closed[0], closed[1]
    );
    let log = log_of_failed_connects(&url);
    assert!(!log.contains("first-password"), "{log}");
    assert!(!log.contains("second-password"), "{log}");
    // Both addresses were tried, and are named.
    for port in &closed {
        assert!(
            log.contains(&format!("other:***@127.0.0.1:{port}"))
                || log.contains(&format!("guest:***@127.0.0.1:{port}")),
            "{port}: {log}"
        );
    }
}

#[test]
fn a_bad_entry_of_a_broker_list_is_named_without_its_password() {
    let refused = run_misconfigured(
        BINARY,
        &[],
        &[
            ("WEBHOOK_SECRET", "s"),
            (
                "AMQP_URL",
                "amqp://guest:pw1@a:5672/%2f,amqps-nope://guest:pw2@b:5672/%2f",
            ),
        ],
    );
    assert_config_error(&refused, "AMQP_URL", "entry 2 (\"amqps-nope://guest:***@b:5672/%2f\")");
    assert!(
        !refused.stderr.contains("pw1") && !refused.stderr.contains("pw2"),
        "{}",
        refused.stderr
    );
}

#[test]
fn a_bad_sources_file_names_the_source_and_field() {
    let file =
        testkit::SourcesFile::new("[[source]]\nname = \"shop\"\nscheme = \"carrier-pigeon\"\nsecrets = [\"x\"]\n");
    let refused = run_misconfigured(BINARY, &[], &[("SOURCES_FILE", file.path())]);
    assert_config_error(&refused, "SOURCES_FILE", "shop");
    assert!(refused.stderr.contains("scheme"), "{}", refused.stderr);
}

#[test]
fn a_bad_admission_key_names_the_source_and_field_in_one_line() {
    let cases = [
        (
            "rate_limit = { per_second = 0, burst = 10 }",
            "source \"gh\": field `rate_limit.per_second`: expected requests per second above 0",
        ),
        (
            "drop_types = [\"{ping,push}\"]",
            "source \"gh\": field `drop_types`: \"{ping,push}\": '{' is not glob syntax here",
        ),
        (
            "accept_types = [\"push\"]\ndrop_types = [\"ping\"]",
            "source \"gh\": field `drop_types`: set accept_types or drop_types, not both",
        ),
        (
            "when_limited = \"retry\"",
            "source \"gh\": field `when_limited`: \"retry\" is not \"429\" or \"accept\"",
        ),
    ];
    for (extra, expected) in cases {
        let file = testkit::SourcesFile::new(&format!(
            "[[source]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [\"x\"]\n{extra}\n"
        ));
        let refused = run_misconfigured(BINARY, &[], &[("SOURCES_FILE", file.path())]);
        assert_config_error(&refused, "SOURCES_FILE", expected);
    }
}
