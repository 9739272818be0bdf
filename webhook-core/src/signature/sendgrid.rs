//! SendGrid's Event Webhook: `X-Twilio-Email-Event-Webhook-Signature` is the base64 of a DER
//! ECDSA P-256 signature over SHA-256 of `{X-Twilio-Email-Event-Webhook-Timestamp}{body}`; the
//! verification key is base64 of its DER SubjectPublicKeyInfo, as SendGrid's settings show it.
//!
//! The timestamp is signed but not held to a tolerance: SendGrid resends a failed batch for up
//! to 24 hours and its own libraries do not check it; a replay is the same body, so the same
//! event (`delivery_id = "body_hash"`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::keys::{check_public, private};
use super::{Family, KeyKind, Keys, Places, PublicKey, Rejection, Signed, ToSign, Verified};

/// SendGrid's signature header.
pub const SENDGRID_SIGNATURE: &str = "X-Twilio-Email-Event-Webhook-Signature";
/// SendGrid's timestamp header.
pub const SENDGRID_TIMESTAMP: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

pub(super) const FAMILY: Family = Family {
    keys: KeyKind::PublicKeys(PublicKey::p256_spki_base64),
    // A batch of events (a JSON array): no id of its own, no type of its own.
    ..Family::new("sendgrid", Places::NOWHERE, Places::NOWHERE, verify, sign)
};

fn verify(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    let signature = request.header(SENDGRID_SIGNATURE)?;
    let timestamp = request.header(SENDGRID_TIMESTAMP)?;
    let signature = BASE64.decode(signature.trim()).map_err(|_| Rejection::Malformed)?;
    check_public(&keys.public, &[timestamp.as_bytes(), request.body], &[signature])
}

/// Signs with a PKCS#8 PEM P-256 private key.
fn sign(private_key: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
    let timestamp = request.timestamp.to_string();
    let message = [timestamp.as_bytes(), request.body].concat();
    let signature = private::p256(private_key, &message).map(|signature| BASE64.encode(signature));
    vec![
        (SENDGRID_TIMESTAMP.to_owned(), timestamp),
        (SENDGRID_SIGNATURE.to_owned(), signature.unwrap_or_default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::{AsDyn, Request, Scheme};
    use super::*;

    // sendgrid-nodejs's eventwebhook tests (packages/eventwebhook/src/eventwebhook.spec.js).
    const PUBLIC_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    const TIMESTAMP: &str = "1588788367";
    const PAYLOAD: &[u8] = br#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;
    const SIGNATURE: &str =
        "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";

    pub(crate) fn sendgrid(public: &str, signature: &str, timestamp: &str, body: &[u8]) -> Result<Verified, Rejection> {
        let keys = Keys {
            secrets: Vec::new(),
            public: vec![PublicKey::p256_spki_base64(public).unwrap()],
        };
        let headers: &[(&str, &str)] = &[(SENDGRID_SIGNATURE, signature), (SENDGRID_TIMESTAMP, timestamp)];
        let request = Request {
            headers: &AsDyn(headers),
            body,
            method: "POST",
            url: None,
            webhook_id: None,
            now: 1_700_000_000,
            tolerance: 300,
        };
        Scheme::Vendor(&FAMILY).verify_request(&keys, &request)
    }

    #[test]
    fn sendgrids_published_vector_is_accepted() {
        assert_eq!(
            sendgrid(PUBLIC_KEY, SIGNATURE, TIMESTAMP, PAYLOAD),
            Ok(Verified { secret_index: 0 })
        );
    }

    #[test]
    fn sendgrids_negative_cases_are_refused() {
        // The SDK's own: a changed payload, a changed timestamp, a changed signature.
        let tampered = br#"{"category":"example_payload","event":"test_event","message_id":"message_idx"}"#;
        assert_eq!(
            sendgrid(PUBLIC_KEY, SIGNATURE, TIMESTAMP, tampered),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            sendgrid(PUBLIC_KEY, SIGNATURE, "1588788368", PAYLOAD),
            Err(Rejection::Mismatch)
        );
        let other = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/1=";
        assert!(sendgrid(PUBLIC_KEY, other, TIMESTAMP, PAYLOAD).is_err());
        assert_eq!(
            sendgrid(PUBLIC_KEY, "not base64!", TIMESTAMP, PAYLOAD),
            Err(Rejection::Malformed)
        );
    }

    #[test]
    fn a_key_that_is_not_p256_spki_is_refused_at_start() {
        assert!(PublicKey::p256_spki_base64("not base64!").is_err());
        assert!(PublicKey::p256_spki_base64("AAAA").is_err());
    }

    // The test key pair of webhook-core/tests/vectors/keys/p256.pem (derive.sh prints its public
    // key): what the private key signs, the public key verifies.
    #[test]
    fn what_a_private_key_signs_its_public_key_verifies() {
        let pem = include_str!("../../tests/vectors/keys/p256.pem");
        let public = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMfT5+qCxqcDHpp4DANHB+X2Uu+YnL93581AQZZxHnORSvmD9W7cmV+7J0UeEapwicQdEaBKbZfveEpyf1G7M2g==";
        let signed = sign(pem, &ToSign::new("", 1_700_000_000, PAYLOAD));
        assert_eq!(
            sendgrid(public, &signed[1].1, &signed[0].1, PAYLOAD),
            Ok(Verified { secret_index: 0 })
        );
        assert_eq!(
            sendgrid(PUBLIC_KEY, &signed[1].1, &signed[0].1, PAYLOAD),
            Err(Rejection::Mismatch)
        );
    }
}
