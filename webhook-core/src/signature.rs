//! Signature schemes: pure functions over the raw body bytes and the request headers.
//!
//! Nothing here does I/O or parses JSON: the handler verifies a signature before it looks at the
//! body in any other way. Every comparison of a computed MAC with a presented one goes through
//! `Mac::verify_slice`, which is constant time.

use crate::config::Secret;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// Case-insensitive access to request headers, so this module needs no HTTP framework.
pub trait Headers {
    /// The value of header `name` if present and valid UTF-8.
    fn get(&self, name: &str) -> Option<&str>;
}

impl Headers for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }
}

/// Why a request's signature was not accepted. Never told to the caller (who only hears
/// "invalid signature"); it goes to logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No signature header at all.
    #[error("signature header missing")]
    Missing,
    /// A signature header that cannot be parsed.
    #[error("signature header malformed")]
    Malformed,
    /// A well-formed signature that no configured secret produces.
    #[error("signature does not match")]
    Mismatch,
    /// A signed timestamp too far from now (a replay, or a badly wrong clock).
    #[error("signed timestamp outside the tolerance")]
    Stale,
}

impl Rejection {
    /// A short, stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Missing => "signature_missing",
            Rejection::Malformed => "signature_malformed",
            Rejection::Mismatch => "signature_mismatch",
            Rejection::Stale => "timestamp_out_of_tolerance",
        }
    }
}

/// A request whose signature was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Which of the source's secrets matched (0 = the first), so an operator can tell when
    /// an old secret is no longer used and can be retired.
    pub secret_index: usize,
}

/// The header GitHub sends with an HMAC-SHA256 signature: `sha256=<hex>`.
pub const HUB_SIGNATURE_256: &str = "X-Hub-Signature-256";
/// The older GitHub header: `sha256=<hex>`, `sha1=<hex>`, or bare hex (HMAC-SHA256).
pub const HUB_SIGNATURE: &str = "X-Hub-Signature";

/// A parsed GitHub-style signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubSignature {
    /// HMAC-SHA256 of the body.
    Sha256(Vec<u8>),
    /// HMAC-SHA1 of the body.
    Sha1(Vec<u8>),
}

impl HubSignature {
    /// Parses `sha256=<hex>`, `sha1=<hex>` or bare `<hex>` (HMAC-SHA256).
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let (algorithm, hex_digits) = match value.split_once('=') {
            Some((algorithm, digits)) => (algorithm, digits),
            None => ("sha256", value),
        };
        let bytes = hex::decode(hex_digits).ok()?;
        match (algorithm.to_ascii_lowercase().as_str(), bytes.len()) {
            ("sha256", 32) => Some(Self::Sha256(bytes)),
            ("sha1", 20) => Some(Self::Sha1(bytes)),
            _ => None,
        }
    }

    fn matches(&self, key: &[u8], body: &[u8]) -> bool {
        match self {
            Self::Sha256(tag) => hmac_sha256(key, body).verify_slice(tag).is_ok(),
            Self::Sha1(tag) => {
                let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
                mac.update(body);
                mac.verify_slice(tag).is_ok()
            }
        }
    }
}

fn hmac_sha256(key: &[u8], body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac
}

/// Verifies GitHub's scheme: `X-Hub-Signature-256` if present (it alone decides), else
/// `X-Hub-Signature`. Every secret is tried, so a source can rotate without downtime.
pub fn verify_github(
    secrets: &[Secret],
    headers: &(impl Headers + ?Sized),
    body: &[u8],
) -> Result<Verified, Rejection> {
    let header = headers
        .get(HUB_SIGNATURE_256)
        .or_else(|| headers.get(HUB_SIGNATURE))
        .ok_or(Rejection::Missing)?;
    let signature = HubSignature::parse(header).ok_or(Rejection::Malformed)?;
    secrets
        .iter()
        .position(|secret| signature.matches(secret.expose().as_bytes(), body))
        .map(|secret_index| Verified { secret_index })
        .ok_or(Rejection::Mismatch)
}

/// The `X-Hub-Signature-256` value for `body` under `secret`: `sha256=<hex>`.
pub fn sign_github(secret: &[u8], body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret, body).finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GITHUB_SECRET: &str = "It's a Secret to Everybody";
    const GITHUB_BODY: &[u8] = b"Hello, World!";
    const GITHUB_SIGNATURE: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn secrets(values: &[&str]) -> Vec<Secret> {
        values.iter().map(|value| Secret::new(*value)).collect()
    }

    #[test]
    fn githubs_published_example_is_accepted() {
        let headers: &[(&str, &str)] = &[("x-hub-signature-256", GITHUB_SIGNATURE)];
        assert_eq!(
            verify_github(&secrets(&[GITHUB_SECRET]), headers, GITHUB_BODY),
            Ok(Verified { secret_index: 0 })
        );
    }

    #[test]
    fn signing_reproduces_githubs_published_example() {
        assert_eq!(sign_github(GITHUB_SECRET.as_bytes(), GITHUB_BODY), GITHUB_SIGNATURE);
    }

    #[test]
    fn githubs_example_with_a_tampered_body_is_a_mismatch() {
        let headers: &[(&str, &str)] = &[(HUB_SIGNATURE_256, GITHUB_SIGNATURE)];
        assert_eq!(
            verify_github(&secrets(&[GITHUB_SECRET]), headers, b"Hello, World?"),
            Err(Rejection::Mismatch)
        );
    }

    #[test]
    fn the_legacy_header_accepts_sha256_sha1_and_bare_hex() {
        let body = br#"{"zen":"Design for failure."}"#;
        let sha256 = sign_github(b"k", body);
        let bare = sha256.trim_start_matches("sha256=").to_owned();
        // Computed independently with:
        // printf '%s' '{"zen":"Design for failure."}' | openssl dgst -sha1 -hmac k
        let sha1 = "sha1=6bc7908880721e0dd0f0ae2803783c89a2cb04bf";
        for value in [sha256.as_str(), bare.as_str(), sha1] {
            let headers: &[(&str, &str)] = &[(HUB_SIGNATURE, value)];
            assert_eq!(
                verify_github(&secrets(&["k"]), headers, body),
                Ok(Verified { secret_index: 0 }),
                "{value}"
            );
        }
    }

    #[test]
    fn the_sha256_header_alone_decides_when_present() {
        let body = b"{}";
        let good = sign_github(b"k", body);
        let headers: &[(&str, &str)] = &[(HUB_SIGNATURE_256, "sha256=00"), (HUB_SIGNATURE, good.as_str())];
        assert_eq!(
            verify_github(&secrets(&["k"]), headers, body),
            Err(Rejection::Malformed)
        );
    }

    #[test]
    fn every_secret_is_tried_and_the_matching_index_reported() {
        let body = b"{}";
        let signature = sign_github(b"new", body);
        let headers: &[(&str, &str)] = &[(HUB_SIGNATURE_256, signature.as_str())];
        assert_eq!(
            verify_github(&secrets(&["old", "new"]), headers, body),
            Ok(Verified { secret_index: 1 })
        );
    }

    #[test]
    fn missing_malformed_and_wrong_signatures_are_told_apart() {
        let body = b"{}";
        let none: &[(&str, &str)] = &[];
        assert_eq!(verify_github(&secrets(&["k"]), none, body), Err(Rejection::Missing));
        for malformed in ["", "sha256=", "sha256=zz", "md5=00", "sha1=abcd", "sha512=00ff"] {
            let headers: &[(&str, &str)] = &[(HUB_SIGNATURE_256, malformed)];
            assert_eq!(
                verify_github(&secrets(&["k"]), headers, body),
                Err(Rejection::Malformed),
                "{malformed:?}"
            );
        }
        let wrong = sign_github(b"other", body);
        let headers: &[(&str, &str)] = &[(HUB_SIGNATURE_256, wrong.as_str())];
        assert_eq!(verify_github(&secrets(&["k"]), headers, body), Err(Rejection::Mismatch));
    }
}
