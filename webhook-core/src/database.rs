//! `DATABASE_URL`, read the same way by the consumer and the dashboard: a `mysql://` URL that
//! sqlx accepts, whose TLS files (`ssl-ca`, `ssl-cert`, `ssl-key`) are checked at start, and
//! one line naming `DATABASE_URL` for every way a connection can fail.
//!
//! TLS follows `ssl-mode` in the URL (sqlx's default `preferred`: TLS when the server offers
//! it, unverified). `verify_ca` checks the server's certificate against the system's CA
//! certificates plus `ssl-ca`; `verify_identity` checks the host name as well. Passwords work
//! with MySQL 8's `caching_sha2_password` over TLS (sent inside the TLS session) and without it
//! (encrypted with the server's RSA key, which the server sends unauthenticated: only TLS keeps
//! the password from someone who can tamper with the connection).

use std::str::FromStr;

use sqlx::mysql::MySqlConnectOptions;

use crate::config::{ConfigError, Url, Vars};
use crate::tls::{self, Failure};

/// The variable every service reads the database from.
pub const VARIABLE: &str = "DATABASE_URL";

/// Reads `DATABASE_URL` (default `default`): scheme `mysql`, accepted by sqlx, and every TLS
/// file it names a readable PEM file of the right kind.
pub fn from_vars(vars: &Vars<'_>, default: &str) -> Result<(Url, MySqlConnectOptions), ConfigError> {
    let url = vars.url(VARIABLE, default, &["mysql"])?;
    let options = MySqlConnectOptions::from_str(url.expose()).map_err(|why| {
        ConfigError::invalid(
            VARIABLE,
            Some(&url.redacted()),
            format!("a MySQL URL such as {default} ({why})"),
        )
    })?;
    for (parameter, value) in tls_files(url.expose()) {
        let read = if parameter == "ssl-key" {
            tls::read_private_key(&value)
        } else {
            tls::read_certificates(&value)
        };
        if let Err(why) = read {
            return Err(ConfigError::invalid(
                VARIABLE,
                Some(&url.redacted()),
                format!("{parameter}={value} to be {why}"),
            ));
        }
    }
    Ok((url, options))
}

/// The TLS file parameters of `url` (`ssl-ca`, `ssl-cert`, `ssl-key` and their `sslca` …
/// spellings), named the dashed way.
fn tls_files(url: &str) -> Vec<(&'static str, String)> {
    let Some((_, query)) = url.split_once('?') else {
        return Vec::new();
    };
    form_urlencoded::parse(query.as_bytes())
        .filter_map(|(key, value)| {
            let parameter = match key.as_ref() {
                "ssl-ca" | "sslca" => "ssl-ca",
                "ssl-cert" | "sslcert" => "ssl-cert",
                "ssl-key" | "sslkey" => "ssl-key",
                _ => return None,
            };
            Some((parameter, value.into_owned()))
        })
        .collect()
}

/// One line for an error from connecting to `url`: what went wrong in terms of the settings,
/// then the driver's own words.
pub fn explain(error: &sqlx::Error, url: &Url) -> String {
    let at = format!("{VARIABLE}={}", url.redacted());
    let ca = tls_files(url.expose())
        .into_iter()
        .find(|(parameter, _)| *parameter == "ssl-ca")
        .map_or_else(
            || "the system's CA certificates (no ssl-ca in the URL)".to_owned(),
            |(_, path)| format!("ssl-ca={path} or the system's CA certificates"),
        );
    // rustls's verdict may come as `Tls` or inside `Io`, depending on where the handshake failed.
    if let Some(failure) = tls::handshake_failure(error) {
        let why = match failure.failure {
            Failure::UntrustedCertificate => format!("the database server's TLS certificate is signed by no CA in {ca}"),
            Failure::Expired => "the database server's TLS certificate has expired".to_owned(),
            Failure::NotValidYet => "the database server's TLS certificate is not valid yet".to_owned(),
            Failure::WrongHost => "the database server's TLS certificate is not issued for the host in the URL (ssl-mode=verify_ca checks the CA alone)".to_owned(),
            Failure::ClientCertificateRefused => {
                "the database server refused the client certificate (ssl-cert, ssl-key)".to_owned()
            }
            Failure::NotTls | Failure::Other => "the TLS handshake failed".to_owned(),
        };
        return format!("{at}: {why} ({failure})");
    }
    match error {
        sqlx::Error::Database(database) => {
            let number = database
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(sqlx::mysql::MySqlDatabaseError::number);
            let why = match number {
                Some(1045) => {
                    "the server refused the login (wrong user name or password, or a user that must connect with TLS)"
                }
                Some(1044) => "the user may not use that database",
                Some(1049) => "the database does not exist",
                Some(3159) => "the server accepts only TLS connections: use ssl-mode=verify_identity",
                Some(1251) => "the server wants an authentication method this client does not offer",
                _ => "the server refused",
            };
            format!("{at}: {why} ({database})")
        }
        sqlx::Error::Tls(inner) => {
            format!("{at}: TLS: {inner} (ssl-mode=disabled or preferred connects without TLS)")
        }
        sqlx::Error::Io(io) => format!("{at}: cannot reach the database server ({io})"),
        other => format!("{at}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(url: &str) -> Result<(Url, MySqlConnectOptions), ConfigError> {
        Vars::with_pairs(&[(VARIABLE, url)], |vars| {
            from_vars(vars, "mysql://root@127.0.0.1:3306/webhooks")
        })
    }

    #[test]
    fn tls_parameters_are_read_from_the_query_in_either_spelling() {
        assert_eq!(
            tls_files("mysql://u:p@db/x?ssl-mode=verify_ca&sslca=%2Fca.pem&ssl-key=k.pem"),
            [("ssl-ca", "/ca.pem".to_owned()), ("ssl-key", "k.pem".to_owned())]
        );
        assert!(tls_files("mysql://u:p@db/x").is_empty());
    }

    #[test]
    fn a_missing_ca_file_is_a_configuration_error_that_hides_the_password() {
        let error = read("mysql://app:hunter2@db/webhooks?ssl-mode=verify_ca&ssl-ca=/nonexistent/ca.pem").unwrap_err();
        let line = error.to_string();
        assert_eq!(error.variable(), VARIABLE);
        assert!(
            line.contains("expected ssl-ca=/nonexistent/ca.pem to be a readable PEM file"),
            "{line}"
        );
        assert!(!line.contains("hunter2"), "{line}");
    }

    #[test]
    fn a_bad_ssl_mode_is_refused() {
        let error = read("mysql://db/webhooks?ssl-mode=sometimes").unwrap_err();
        assert_eq!(error.variable(), VARIABLE);
        assert!(read("mysql://db/webhooks?ssl-mode=verify_identity").is_ok());
    }

    #[test]
    fn an_unreachable_server_is_explained_with_the_variable() {
        let url = Url::new("mysql://app:hunter2@db/webhooks");
        let error = sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
        let line = explain(&error, &url);
        assert!(
            line.starts_with("DATABASE_URL=mysql://app:***@db/webhooks: cannot reach"),
            "{line}"
        );
    }
}
