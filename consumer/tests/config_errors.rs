//! The consumer binary refuses every bad configuration value at start, before touching the
//! broker or the database: one line naming the variable, the value (unless secret) and what
//! was expected; exit code 2. `consumer migrate` and `consumer dlq` read the same settings.

#![allow(clippy::unwrap_used)]

use testkit::{assert_config_error, run_misconfigured};

const BINARY: &str = env!("CARGO_BIN_EXE_consumer");

#[test]
fn each_bad_variable_is_named_in_one_line_with_exit_code_2() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "DATABASE_URL",
            "postgres://db/webhooks",
            "DATABASE_URL=\"postgres://db/webhooks\": expected a URL of the form mysql://",
        ),
        (
            "DATABASE_URL",
            "mysql://root@127.0.0.1:3306",
            "expected a MySQL URL that names the database",
        ),
        ("CONSUMER_ADDR", "x", "CONSUMER_ADDR=\"x\": expected a socket address"),
        (
            "CONSUMER_WORKERS",
            "17",
            "CONSUMER_WORKERS=\"17\": expected an integer number of workers from 1 to 16",
        ),
        (
            "PREFETCH",
            "0",
            "PREFETCH=\"0\": expected an integer number of messages from 1 to 2000",
        ),
        (
            "BATCH_SIZE",
            "1200",
            "BATCH_SIZE=\"1200\": expected at most PREFETCH (1000)",
        ),
        (
            "BATCH_WAIT_MS",
            "70000",
            "BATCH_WAIT_MS=\"70000\": expected an integer number of milliseconds from 0 to 60000",
        ),
        (
            "MAX_RETRIES",
            "101",
            "MAX_RETRIES=\"101\": expected an integer number of retries from 0 to 100",
        ),
        (
            "RETENTION_DAYS",
            "0",
            "RETENTION_DAYS=\"0\": expected an integer number of days from 1 to 36500",
        ),
        (
            "RETENTION_DAYS",
            "-3",
            "RETENTION_DAYS=\"-3\": expected an integer number of days from 1 to 36500",
        ),
        (
            "DB_POOL_SIZE",
            "0",
            "DB_POOL_SIZE=\"0\": expected an integer number of connections from 1 to 100",
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
            "1s,25h",
            "RETRY_DELAYS=\"1s,25h\": expected a comma-separated list of durations",
        ),
        (
            "SHUTDOWN_GRACE_MS",
            "-1",
            "SHUTDOWN_GRACE_MS=\"-1\": expected an integer number of milliseconds",
        ),
        (
            "SOURCES_FILE",
            "/nonexistent/sources.toml",
            "SOURCES_FILE=\"/nonexistent/sources.toml\": expected a readable file",
        ),
    ];
    for args in [&[][..], &["migrate"][..], &["dlq", "list"][..]] {
        for (variable, value, expected) in cases {
            let refused = run_misconfigured(BINARY, args, &[(variable, value)]);
            assert_config_error(&refused, variable, expected);
        }
    }
}

#[test]
fn a_password_in_the_database_url_is_not_shown() {
    let refused = run_misconfigured(
        BINARY,
        &[],
        &[("DATABASE_URL", "mysql://root:hunter2@db:port/webhooks")],
    );
    assert_config_error(&refused, "DATABASE_URL", "mysql://root:***@db:port/webhooks");
    assert!(!refused.stderr.contains("hunter2"), "{}", refused.stderr);
}

#[test]
fn tls_files_are_checked_at_start() {
    let amqps = ("AMQP_URL", "amqps://guest:guest@broker:5671/%2f");
    let refused = run_misconfigured(BINARY, &[], &[amqps, ("AMQP_CA_FILE", "/nonexistent/ca.pem")]);
    assert_config_error(
        &refused,
        "AMQP_CA_FILE",
        "AMQP_CA_FILE=\"/nonexistent/ca.pem\": expected a readable PEM file of certificates",
    );
    let refused = run_misconfigured(BINARY, &[], &[("AMQP_CA_FILE", "/etc/hostname")]);
    assert_config_error(&refused, "AMQP_CA_FILE", "expected a PEM file with at least one");
    let refused = run_misconfigured(
        BINARY,
        &["migrate"],
        &[(
            "DATABASE_URL",
            "mysql://app:hunter2@db/webhooks?ssl-mode=verify_identity&ssl-ca=/nonexistent/ca.pem",
        )],
    );
    assert_config_error(
        &refused,
        "DATABASE_URL",
        "expected ssl-ca=/nonexistent/ca.pem to be a readable PEM file of certificates",
    );
    assert!(!refused.stderr.contains("hunter2"), "{}", refused.stderr);
}

#[test]
fn a_bad_sales_mapping_names_the_source_and_field() {
    let file = testkit::SourcesFile::new(
        "[[source]]\nname = \"shop\"\nscheme = \"github\"\nsecrets = [\"x\"]\n[source.sales]\npreset = \"paypal\"\n",
    );
    let refused = run_misconfigured(BINARY, &[], &[("SOURCES_FILE", file.path())]);
    assert_config_error(&refused, "SOURCES_FILE", "source \"shop\": field `sales.preset`");
}
