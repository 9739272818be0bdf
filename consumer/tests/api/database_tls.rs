//! MySQL over TLS with a password user, against a MariaDB server of the test's own (the shared
//! one is never reconfigured): events are stored by a user the server lets in over TLS only,
//! and a wrong password, an untrusted CA and an expired certificate each stop `consumer
//! migrate` with one line naming `DATABASE_URL`.

use sqlx::Connection as _;
use testkit::private::{PrivateMariaDb, TempDir, TestCa, Validity};
use testkit::{eventually, run_misconfigured};

use crate::helpers::{SOON, Services, TestApp, envelope};

const USER: &str = "webhooks";
const PASSWORD: &str = "s3cret-Pass";
const DATABASE: &str = "webhooks";

/// Runs `consumer migrate` with `database_url` and returns its one line on stderr.
fn migrate_fails(database_url: &str) -> String {
    let refused = run_misconfigured(
        env!("CARGO_BIN_EXE_consumer"),
        &["migrate"],
        &[("DATABASE_URL", database_url), ("RUST_LOG", "off")],
    );
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    let lines: Vec<&str> = refused.stderr.lines().filter(|line| !line.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {}", refused.stderr);
    eprintln!("{}", lines[0]);
    assert!(!lines[0].contains(PASSWORD), "{}", lines[0]);
    lines[0].to_owned()
}

/// `?ssl-mode={mode}&ssl-ca={ca}`, with `ca` written into `dir`.
fn tls_query(dir: &TempDir, mode: &str, ca: &TestCa) -> String {
    let path = dir.write(&format!("ca-{}.pem", testkit::unique_suffix()), ca.pem());
    format!("?ssl-mode={mode}&ssl-ca={}", path.display())
}

#[tokio::test]
async fn events_are_stored_over_tls_by_a_password_user_that_must_use_it() {
    let ca = TestCa::new("webhooks test CA");
    let server = PrivateMariaDb::start(&ca, &ca.server(Validity::Current));
    server.add_user(USER, PASSWORD, DATABASE, true);
    let dir = TempDir::new("mysql-client");
    let url = server.url(USER, PASSWORD, DATABASE, &tls_query(&dir, "verify_identity", &ca));

    let services = Services::new();
    let app = TestApp::spawn(&services.env().with("DATABASE_URL", &url)).await;
    services
        .sender()
        .await
        .event(&envelope("shop", "over-tls-1", "order.created"), br#"{"n":1}"#)
        .await;

    let stored: Vec<(String, String)> = eventually("the event stored over TLS", SOON, || async {
        let mut connection = sqlx::MySqlConnection::connect(&url).await.unwrap();
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT delivery_id, body FROM events")
            .fetch_all(&mut connection)
            .await
            .unwrap();
        let _ = connection.close().await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    let mut connection = sqlx::MySqlConnection::connect(&url).await.unwrap();
    assert_eq!(stored, [("over-tls-1".to_owned(), r#"{"n":1}"#.to_owned())]);
    let (_, cipher): (String, String) = sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert!(!cipher.is_empty(), "the test's own connection is not TLS");
    let _ = connection.close().await;
    app.stop().await;

    // The same user without TLS is turned away by the server, in words that say what to check.
    let line = migrate_fails(&server.url(USER, PASSWORD, DATABASE, "?ssl-mode=disabled"));
    assert!(line.contains("DATABASE_URL=mysql://webhooks:***@127.0.0.1:"), "{line}");
    assert!(line.contains("the server refused the login"), "{line}");
}

#[test]
fn a_wrong_password_an_untrusted_ca_or_host_is_one_line_naming_database_url() {
    let ca = TestCa::new("webhooks test CA");
    // Issued for `localhost` alone, so that 127.0.0.1 is a name it does not carry.
    let server = PrivateMariaDb::start(&ca, &ca.server_for(&["localhost"], Validity::Current));
    server.add_user(USER, PASSWORD, DATABASE, false);
    let dir = TempDir::new("mysql-client");

    let line = migrate_fails(&server.url(USER, "wrong", DATABASE, &tls_query(&dir, "verify_ca", &ca)));
    assert!(line.contains("DATABASE_URL=mysql://webhooks:***@127.0.0.1:"), "{line}");
    assert!(line.contains("the server refused the login"), "{line}");
    assert!(line.contains("Access denied"), "{line}");

    let other = TestCa::new("some other CA");
    let line = migrate_fails(&server.url(USER, PASSWORD, DATABASE, &tls_query(&dir, "verify_ca", &other)));
    assert!(line.contains("DATABASE_URL=mysql://webhooks:***@127.0.0.1:"), "{line}");
    assert!(line.contains("TLS certificate is signed by no CA in ssl-ca="), "{line}");

    let line = migrate_fails(&server.url(USER, PASSWORD, DATABASE, &tls_query(&dir, "verify_identity", &ca)));
    assert!(line.contains("not issued for the host in the URL"), "{line}");
}

#[test]
fn an_expired_database_certificate_is_named_as_such() {
    let ca = TestCa::new("webhooks test CA");
    let server = PrivateMariaDb::start(&ca, &ca.server(Validity::Expired));
    server.add_user(USER, PASSWORD, DATABASE, false);
    let dir = TempDir::new("mysql-client");
    let line = migrate_fails(&server.url(USER, PASSWORD, DATABASE, &tls_query(&dir, "verify_ca", &ca)));
    assert!(line.contains("DATABASE_URL=mysql://webhooks:***@127.0.0.1:"), "{line}");
    assert!(
        line.contains("the database server's TLS certificate has expired"),
        "{line}"
    );
}
