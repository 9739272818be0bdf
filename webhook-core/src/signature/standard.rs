//! Standard Webhooks (and Svix, Resend and Clerk, which send it under `svix-` header names):
//! `webhook-signature` is a space-separated list of `v1,<base64>`, the HMAC-SHA256 of
//! `"{webhook-id}.{webhook-timestamp}.{body}"` keyed with the base64-decoded secret
//! (`whsec_…`), and of `v1a,<base64>`, the same content signed with Ed25519 (public keys
//! `whpk_…`). A source may hold secrets, public keys or both.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::keys::{check_public, private};
use super::{
    Algorithm, Family, KeyKind, Keys, Place, Places, PublicKey, Rejection, Signed, ToSign, Verified, check, entries,
};

/// Standard Webhooks' id header.
pub const STANDARD_ID: &str = "webhook-id";
/// Standard Webhooks' timestamp header.
pub const STANDARD_TIMESTAMP: &str = "webhook-timestamp";
/// Standard Webhooks' signature header.
pub const STANDARD_SIGNATURE: &str = "webhook-signature";

/// The three headers of one naming.
struct Names {
    id: &'static str,
    timestamp: &'static str,
    signature: &'static str,
}

const STANDARD_NAMES: Names = Names {
    id: STANDARD_ID,
    timestamp: STANDARD_TIMESTAMP,
    signature: STANDARD_SIGNATURE,
};

const SVIX_NAMES: Names = Names {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

const fn family(name: &'static str, id: &'static str, verify: super::VerifyFn, sign: super::SignFn) -> Family {
    Family {
        keys: KeyKind::Either(PublicKey::ed25519_whpk),
        check_secret: Some(check_secret),
        ..Family::new(
            name,
            Places {
                delivery_id: Some(Place::Header(id)),
                event_type: Some(Place::Json("/type")),
            },
            Places {
                delivery_id: Some(Place::Header(id)),
                event_type: None,
            },
            verify,
            sign,
        )
    }
}

pub(super) const FAMILY: Family = family("standard", STANDARD_ID, verify, sign);
/// Svix sends Standard Webhooks under its own header names.
pub(super) const SVIX: Family = family("svix", "svix-id", verify_svix, sign_svix);
/// Resend signs through Svix.
pub(super) const RESEND: Family = family("resend", "svix-id", verify_svix, sign_svix);
/// Clerk signs through Svix.
pub(super) const CLERK: Family = family("clerk", "svix-id", verify_svix, sign_svix);

/// The key of a Standard Webhooks secret: base64 after `whsec_` (or the whole secret when it
/// has no prefix). `None` when it is not base64.
pub fn standard_key(secret: &str) -> Option<Vec<u8>> {
    BASE64.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).ok()
}

fn check_secret(secret: &str) -> Result<(), &'static str> {
    standard_key(secret)
        .map(|_| ())
        .ok_or("standard secrets are `whsec_` followed by base64")
}

fn verify(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    verify_named(&STANDARD_NAMES, keys, request)
}

fn verify_svix(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    verify_named(&SVIX_NAMES, keys, request)
}

fn verify_named(names: &Names, keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    let id = request.header(names.id)?;
    let timestamp = request.header(names.timestamp)?;
    let header = request.header(names.signature)?;
    let mut symmetric = Vec::new();
    let mut asymmetric = Vec::new();
    for item in entries(header, char::is_whitespace)? {
        if let Some(encoded) = item.strip_prefix("v1,") {
            symmetric.extend(BASE64.decode(encoded).ok());
        } else if let Some(encoded) = item.strip_prefix("v1a,") {
            asymmetric.extend(BASE64.decode(encoded).ok());
        }
    }
    if symmetric.is_empty() && asymmetric.is_empty() {
        return Err(Rejection::Malformed);
    }
    request.timestamp(timestamp)?;
    let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.trim().as_bytes(), b".", request.body];
    // A secret's v1 first, then a public key's v1a: either proves the sender.
    let by_secret = if symmetric.is_empty() {
        Err(Rejection::Mismatch)
    } else {
        check(&keys.secrets, standard_key, Algorithm::Sha256, &parts, &symmetric)
    };
    match by_secret {
        Ok(verified) => Ok(verified),
        Err(_) if !asymmetric.is_empty() => check_public(&keys.public, &parts, &asymmetric),
        Err(rejection) => Err(rejection),
    }
}

/// Signs like Standard Webhooks: one `v1,<base64>` entry.
pub fn sign_standard(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = standard_key(secret)?;
    let timestamp = timestamp.to_string();
    let tag = Algorithm::Sha256.sign(&key, &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body]);
    Some(format!("v1,{}", BASE64.encode(tag)))
}

/// Signs with a `whsk_` private key: one `v1a,<base64>` Ed25519 entry.
fn sign_asymmetric(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let message = [id.as_bytes(), b".", timestamp.to_string().as_bytes(), b".", body].concat();
    private::ed25519(secret, &message).map(|signature| format!("v1a,{}", BASE64.encode(signature)))
}

fn sign_named(names: &Names, secret: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
    let signature = if secret.starts_with("whsk_") {
        sign_asymmetric(secret, request.delivery_id, request.timestamp, request.body)
    } else {
        sign_standard(secret, request.delivery_id, request.timestamp, request.body)
    };
    vec![
        (names.id.to_owned(), request.delivery_id.to_owned()),
        (names.timestamp.to_owned(), request.timestamp.to_string()),
        (names.signature.to_owned(), signature.unwrap_or_default()),
    ]
}

/// A secret that is not `whsec_` + base64 (nor a `whsk_` private key) signs nothing (a source
/// cannot be configured with one).
fn sign(secret: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
    sign_named(&STANDARD_NAMES, secret, request)
}

fn sign_svix(secret: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
    sign_named(&SVIX_NAMES, secret, request)
}

#[cfg(test)]
mod tests {
    use super::super::{Scheme, secrets};
    use super::*;

    // The Standard Webhooks reference library's own test vectors
    // (standard-webhooks/standard-webhooks, libraries/rust/src/lib.rs).
    const STANDARD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const STANDARD_ID_VALUE: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const STANDARD_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;

    #[test]
    fn standard_webhooks_reference_signature_is_reproduced_and_accepted() {
        let expected = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        assert_eq!(
            sign_standard(STANDARD_SECRET, STANDARD_ID_VALUE, 1_649_367_553, STANDARD_BODY).as_deref(),
            Some(expected)
        );
        let headers: &[(&str, &str)] = &[
            (STANDARD_ID, STANDARD_ID_VALUE),
            (STANDARD_TIMESTAMP, "1649367553"),
            (STANDARD_SIGNATURE, expected),
        ];
        let verified =
            Scheme::STANDARD.verify(&secrets(&[STANDARD_SECRET]), headers, STANDARD_BODY, 1_649_367_553, 300);
        assert_eq!(verified, Ok(Verified { secret_index: 0 }));
    }

    #[test]
    fn standard_webhooks_reference_negative_cases_are_rejected() {
        let now = 1_700_000_000;
        let ts = now.to_string();
        let verify = |signature: &str, timestamp: &str| {
            let headers: &[(&str, &str)] = &[
                (STANDARD_ID, STANDARD_ID_VALUE),
                (STANDARD_TIMESTAMP, timestamp),
                (STANDARD_SIGNATURE, signature),
            ];
            Scheme::STANDARD.verify(&secrets(&[STANDARD_SECRET]), headers, STANDARD_BODY, now, 300)
        };
        // test_no_verify
        assert_eq!(
            verify("v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=", &ts),
            Err(Rejection::Mismatch)
        );
        // test_no_verify_with_multiple_signatures
        let others = "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=";
        assert_eq!(verify(others, &ts), Err(Rejection::Mismatch));
        // test_verify_with_multiple_signatures: the right one among wrong ones passes.
        let right = sign_standard(STANDARD_SECRET, STANDARD_ID_VALUE, now, STANDARD_BODY).unwrap();
        let mixed = format!(
            "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= {right} v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE="
        );
        assert_eq!(verify(&mixed, &ts), Ok(Verified { secret_index: 0 }));
        // test_verify_incorrect_timestamp: both ways.
        assert_eq!(verify(&right, &(now - 301).to_string()), Err(Rejection::Stale));
        assert_eq!(verify(&right, &(now + 301).to_string()), Err(Rejection::Stale));
        // test_missing_headers
        let headers: &[(&str, &str)] = &[(STANDARD_ID, STANDARD_ID_VALUE), (STANDARD_SIGNATURE, &right)];
        assert_eq!(
            Scheme::STANDARD.verify(&secrets(&[STANDARD_SECRET]), headers, STANDARD_BODY, now, 300),
            Err(Rejection::Missing)
        );
    }

    #[test]
    fn more_signatures_than_a_handful_are_malformed() {
        let now = 1_700_000_000;
        let right = sign_standard(STANDARD_SECRET, STANDARD_ID_VALUE, now, STANDARD_BODY).unwrap();
        let verify = |signature: &str| {
            let ts = now.to_string();
            let headers: &[(&str, &str)] = &[
                (STANDARD_ID, STANDARD_ID_VALUE),
                (STANDARD_TIMESTAMP, &ts),
                (STANDARD_SIGNATURE, signature),
            ];
            Scheme::STANDARD.verify(&secrets(&[STANDARD_SECRET]), headers, STANDARD_BODY, now, 300)
        };
        assert_eq!(
            verify(&format!("{} {right}", "v1,AAAA ".repeat(7))),
            Ok(Verified { secret_index: 0 })
        );
        assert_eq!(
            verify(&format!("{} {right}", "v1,AAAA ".repeat(8))),
            Err(Rejection::Malformed)
        );
        assert_eq!(verify(&"v1, ".repeat(10_000)), Err(Rejection::Malformed));
    }

    #[test]
    fn only_whsec_base64_secrets_are_keys() {
        assert_eq!(check_secret(STANDARD_SECRET), Ok(()));
        assert!(check_secret("whsec_!!").is_err());
    }
}
