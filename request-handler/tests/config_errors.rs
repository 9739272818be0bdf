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

#[test]
fn a_bad_sources_file_names_the_source_and_field() {
    let file =
        testkit::SourcesFile::new("[[source]]\nname = \"shop\"\nscheme = \"carrier-pigeon\"\nsecrets = [\"x\"]\n");
    let refused = run_misconfigured(BINARY, &[], &[("SOURCES_FILE", file.path())]);
    assert_config_error(&refused, "SOURCES_FILE", "shop");
    assert!(refused.stderr.contains("scheme"), "{}", refused.stderr);
}
