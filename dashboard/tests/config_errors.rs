//! The dashboard binary refuses a bad configuration value at start: one line naming the
//! variable, the value (password hidden) and what was expected; exit code 2.

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
