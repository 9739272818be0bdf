//! TLS settings shared by the broker and the database connections: reading CA and client
//! certificate files at start (one configuration line per bad file), and telling apart why a
//! handshake failed, so that the line an operator reads names what to fix.
//!
//! Both clients use rustls with the `ring` provider and trust the system's CA certificates
//! plus, when one is given, a CA file of our own.

use std::error::Error as StdError;
use std::fmt;
use std::path::Path;

use rustls::{AlertDescription, CertificateError};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ConfigError;

/// Reads `path` as a PEM file holding at least one certificate. The error says what was
/// expected, for a [`ConfigError`] line.
///
/// The clients skip what they cannot parse without a word, so a truncated or wrong file would
/// only show up as an untrusted peer later: it is refused at start instead.
pub fn read_certificates(path: &str) -> Result<String, String> {
    let text = read_pem(path, "certificates")?;
    let parsed: Result<Vec<CertificateDer<'_>>, _> = CertificateDer::pem_slice_iter(text.as_bytes()).collect();
    match parsed {
        Ok(certificates) if !certificates.is_empty() => Ok(text),
        Ok(_) => Err("a PEM file with at least one -----BEGIN CERTIFICATE----- block".to_owned()),
        Err(why) => Err(format!("a PEM file of certificates ({why})")),
    }
}

/// Reads `path` as a PEM private key (PKCS#8, PKCS#1 or SEC1), not encrypted.
pub fn read_private_key(path: &str) -> Result<String, String> {
    let text = read_pem(path, "private key")?;
    match PrivateKeyDer::from_pem_slice(text.as_bytes()) {
        Ok(_) => Ok(text),
        Err(why) => Err(format!("a PEM file with an unencrypted private key ({why})")),
    }
}

/// [`read_certificates`] for a variable that holds the path.
pub fn certificates_in(variable: &str, path: &str) -> Result<String, ConfigError> {
    read_certificates(path).map_err(|why| ConfigError::invalid(variable, Some(path), why))
}

/// [`read_private_key`] for a variable that holds the path.
pub fn private_key_in(variable: &str, path: &str) -> Result<String, ConfigError> {
    read_private_key(path).map_err(|why| ConfigError::invalid(variable, Some(path), why))
}

fn read_pem(path: &str, what: &str) -> Result<String, String> {
    std::fs::read_to_string(Path::new(path)).map_err(|why| format!("a readable PEM file of {what} ({why})"))
}

/// Why a TLS handshake failed, as far as it matters to whoever configures the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server's certificate chains to no CA the client trusts.
    UntrustedCertificate,
    /// The server's certificate (or one in its chain) has expired.
    Expired,
    /// The server's certificate is not valid yet.
    NotValidYet,
    /// The server's certificate does not name the host the client connected to.
    WrongHost,
    /// The server refused or wanted the client's certificate.
    ClientCertificateRefused,
    /// The server does not speak TLS on that port (or something else answered).
    NotTls,
    /// Anything else rustls reported.
    Other,
}

/// A handshake failure: what kind, and rustls's own words for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeFailure {
    /// The kind.
    pub failure: Failure,
    /// rustls's message.
    pub detail: String,
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// The TLS failure somewhere in `error`'s chain of sources, if there is one.
pub fn handshake_failure(error: &(dyn StdError + 'static)) -> Option<HandshakeFailure> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(classify(tls));
        }
        // rustls errors travel inside io::Error, whose `source` is not always the inner error.
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(classify(tls));
        }
        current = error.source();
    }
    None
}

fn classify(error: &rustls::Error) -> HandshakeFailure {
    let failure = match error {
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => Failure::UntrustedCertificate,
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => Failure::Expired,
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => Failure::NotValidYet,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => Failure::WrongHost,
            _ => Failure::Other,
        },
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied,
        ) => Failure::ClientCertificateRefused,
        rustls::Error::InvalidMessage(_) => Failure::NotTls,
        _ => Failure::Other,
    };
    HandshakeFailure {
        failure,
        detail: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("webhook-core-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_missing_or_empty_certificate_file_names_the_variable() {
        let error = certificates_in("AMQP_CA_FILE", "/nonexistent/ca.pem").unwrap_err();
        assert_eq!(error.variable(), "AMQP_CA_FILE");
        assert!(
            error.to_string().contains("a readable PEM file of certificates"),
            "{error}"
        );

        let path = temp_file("empty.pem", "not a certificate\n");
        let error = certificates_in("AMQP_CA_FILE", path.to_str().unwrap()).unwrap_err();
        assert!(
            error.to_string().contains("at least one -----BEGIN CERTIFICATE-----"),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_file_without_a_key_is_not_a_private_key() {
        let path = temp_file(
            "key.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let error = private_key_in("AMQP_CLIENT_KEY", path.to_str().unwrap()).unwrap_err();
        assert_eq!(error.variable(), "AMQP_CLIENT_KEY");
        assert!(error.to_string().contains("unencrypted private key"), "{error}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn rustls_errors_are_found_inside_io_errors() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let found = handshake_failure(&io).unwrap();
        assert_eq!(found.failure, Failure::UntrustedCertificate);
        assert!(found.detail.contains("UnknownIssuer"), "{found}");
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(handshake_failure(&plain), None);
    }
}
