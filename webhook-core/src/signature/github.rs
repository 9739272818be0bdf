//! GitHub: `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the body; the older
//! `X-Hub-Signature` (`sha1=<hex>`, the HMAC-SHA1 GitHub still sends for old integrations, or
//! `sha256=<hex>`) is read only without it. Bare hex names no algorithm and is refused.

use super::{Algorithm, Family, Keys, Place, Places, Rejection, Signed, ToSign, Verified, check, text_key};

/// The header GitHub sends with an HMAC-SHA256 signature: `sha256=<hex>`.
pub const HUB_SIGNATURE_256: &str = "X-Hub-Signature-256";
/// The older GitHub header: `sha1=<hex>` or `sha256=<hex>`.
pub const HUB_SIGNATURE: &str = "X-Hub-Signature";

pub(super) const FAMILY: Family = Family::new(
    "github",
    Places {
        delivery_id: Some(Place::Header("X-GitHub-Delivery")),
        event_type: Some(Place::Header("X-GitHub-Event")),
    },
    Places {
        delivery_id: Some(Place::Header("X-GitHub-Delivery")),
        event_type: Some(Place::Header("X-GitHub-Event")),
    },
    verify,
    sign,
);

/// A parsed GitHub-style signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubSignature {
    /// HMAC-SHA256 of the body.
    Sha256(Vec<u8>),
    /// HMAC-SHA1 of the body.
    Sha1(Vec<u8>),
}

impl HubSignature {
    /// Reads an `X-Hub-Signature-256` value: `sha256=` and 64 hex digits, nothing else.
    pub fn parse_sha256(value: &str) -> Option<Self> {
        match Self::parse(value)? {
            Self::Sha256(tag) => Some(Self::Sha256(tag)),
            Self::Sha1(_) => None,
        }
    }

    /// Reads an `X-Hub-Signature` value: `sha1=` and 40 hex digits, or `sha256=` and 64.
    pub fn parse(value: &str) -> Option<Self> {
        let (algorithm, digits) = value.trim().split_once('=')?;
        let bytes = hex::decode(digits).ok()?;
        match (algorithm, bytes.len()) {
            ("sha256", 32) => Some(Self::Sha256(bytes)),
            ("sha1", 20) => Some(Self::Sha1(bytes)),
            _ => None,
        }
    }
}

/// `X-Hub-Signature-256` if present (it alone decides), else `X-Hub-Signature`.
fn verify(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    let signature = if request.has(HUB_SIGNATURE_256) {
        HubSignature::parse_sha256(request.header(HUB_SIGNATURE_256)?)
    } else {
        HubSignature::parse(request.header(HUB_SIGNATURE)?)
    };
    let (algorithm, tag) = match signature.ok_or(Rejection::Malformed)? {
        HubSignature::Sha256(tag) => (Algorithm::Sha256, tag),
        HubSignature::Sha1(tag) => (Algorithm::Sha1, tag),
    };
    check(&keys.secrets, text_key, algorithm, &[request.body], &[tag])
}

/// The `X-Hub-Signature-256` value for `body` under `secret`: `sha256=<hex>`.
pub fn sign_github(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(Algorithm::Sha256.sign(secret, &[body])))
}

fn sign(secret: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
    vec![(
        HUB_SIGNATURE_256.to_owned(),
        sign_github(secret.as_bytes(), request.body),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::{Scheme, secrets};
    use super::*;

    // GitHub's published example ("Validating webhook deliveries").
    const GITHUB_SECRET: &str = "It's a Secret to Everybody";
    const GITHUB_BODY: &[u8] = b"Hello, World!";
    const GITHUB_SIGNATURE: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn github(headers: &[(&str, &str)], keys: &[&str], body: &[u8]) -> Result<Verified, Rejection> {
        Scheme::GITHUB.verify(&secrets(keys), headers, body, 0, 300)
    }

    #[test]
    fn githubs_published_example_is_accepted() {
        assert_eq!(
            github(
                &[("x-hub-signature-256", GITHUB_SIGNATURE)],
                &[GITHUB_SECRET],
                GITHUB_BODY
            ),
            Ok(Verified { secret_index: 0 })
        );
    }

    #[test]
    fn signing_reproduces_githubs_published_example() {
        assert_eq!(sign_github(GITHUB_SECRET.as_bytes(), GITHUB_BODY), GITHUB_SIGNATURE);
    }

    #[test]
    fn githubs_example_with_a_tampered_body_is_a_mismatch() {
        assert_eq!(
            github(
                &[(HUB_SIGNATURE_256, GITHUB_SIGNATURE)],
                &[GITHUB_SECRET],
                b"Hello, World?"
            ),
            Err(Rejection::Mismatch)
        );
    }

    #[test]
    fn the_legacy_header_accepts_sha1_and_sha256() {
        let body = br#"{"zen":"Design for failure."}"#;
        let sha256 = sign_github(b"k", body);
        // Computed independently with:
        // printf '%s' '{"zen":"Design for failure."}' | openssl dgst -sha1 -hmac k
        let sha1 = "sha1=6bc7908880721e0dd0f0ae2803783c89a2cb04bf";
        for value in [sha256.as_str(), sha1] {
            assert_eq!(
                github(&[(HUB_SIGNATURE, value)], &["k"], body),
                Ok(Verified { secret_index: 0 }),
                "{value}"
            );
        }
    }

    #[test]
    fn the_sha256_header_takes_sha256_only_and_bare_hex_is_refused_everywhere() {
        let body = br#"{"zen":"Design for failure."}"#;
        let sha256 = sign_github(b"k", body);
        let bare = sha256.trim_start_matches("sha256=").to_owned();
        let upper = format!("sha256={}", bare.to_uppercase());
        assert_eq!(
            github(&[(HUB_SIGNATURE_256, &upper)], &["k"], body),
            Ok(Verified { secret_index: 0 })
        );
        let sha1 = "sha1=6bc7908880721e0dd0f0ae2803783c89a2cb04bf";
        let shouting = sha256.replace("sha256=", "SHA256=");
        for (header, value) in [
            (HUB_SIGNATURE_256, sha1),
            (HUB_SIGNATURE_256, bare.as_str()),
            (HUB_SIGNATURE_256, shouting.as_str()),
            (HUB_SIGNATURE, bare.as_str()),
        ] {
            assert_eq!(
                github(&[(header, value)], &["k"], body),
                Err(Rejection::Malformed),
                "{header}: {value}"
            );
        }
    }

    #[test]
    fn the_sha256_header_alone_decides_when_present() {
        let body = b"{}";
        let good = sign_github(b"k", body);
        assert_eq!(
            github(
                &[(HUB_SIGNATURE_256, "sha256=00"), (HUB_SIGNATURE, good.as_str())],
                &["k"],
                body
            ),
            Err(Rejection::Malformed)
        );
    }

    #[test]
    fn every_secret_is_tried_and_the_matching_index_reported() {
        let body = b"{}";
        let signature = sign_github(b"new", body);
        assert_eq!(
            github(&[(HUB_SIGNATURE_256, signature.as_str())], &["old", "new"], body),
            Ok(Verified { secret_index: 1 })
        );
    }

    #[test]
    fn missing_malformed_and_wrong_signatures_are_told_apart() {
        let body = b"{}";
        assert_eq!(github(&[], &["k"], body), Err(Rejection::Missing));
        for malformed in ["", "sha256=", "sha256=zz", "md5=00", "sha1=abcd", "sha512=00ff"] {
            assert_eq!(
                github(&[(HUB_SIGNATURE_256, malformed)], &["k"], body),
                Err(Rejection::Malformed),
                "{malformed:?}"
            );
        }
        let wrong = sign_github(b"other", body);
        assert_eq!(
            github(&[(HUB_SIGNATURE_256, wrong.as_str())], &["k"], body),
            Err(Rejection::Mismatch)
        );
    }
}
