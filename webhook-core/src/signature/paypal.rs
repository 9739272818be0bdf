//! PayPal: `PAYPAL-TRANSMISSION-SIG` is the base64 RSA-SHA256 (PKCS#1 v1.5, `PAYPAL-AUTH-ALGO:
//! SHA256withRSA`) of `{PAYPAL-TRANSMISSION-ID}|{PAYPAL-TRANSMISSION-TIME}|{webhook id}|{crc32}`,
//! where the webhook id is the source's `webhook_id` and crc32 the CRC-32 of the raw body in
//! decimal. The key is that of PayPal's signing certificate, configured as a file
//! (`certificate_file`): nothing is downloaded at request time, so `PAYPAL-CERT-URL` is not
//! followed. The transmission time is not held to a tolerance (PayPal retries for three days
//! and its SDKs do not check it; a replay has the same event id, so it is a duplicate).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::keys::{check_public, private};
use super::{Family, KeyKind, Keys, Place, Places, Rejection, Signed, ToSign, Verified};

/// PayPal's headers.
pub const PAYPAL_TRANSMISSION_ID: &str = "PAYPAL-TRANSMISSION-ID";
/// When PayPal sent it.
pub const PAYPAL_TRANSMISSION_TIME: &str = "PAYPAL-TRANSMISSION-TIME";
/// The signature.
pub const PAYPAL_TRANSMISSION_SIG: &str = "PAYPAL-TRANSMISSION-SIG";
/// The algorithm: `SHA256withRSA`.
pub const PAYPAL_AUTH_ALGO: &str = "PAYPAL-AUTH-ALGO";

pub(super) const FAMILY: Family = Family {
    keys: KeyKind::Certificates,
    ..Family::new(
        "paypal",
        Places {
            delivery_id: Some(Place::Json("/id")),
            event_type: Some(Place::Json("/event_type")),
        },
        Places::NOWHERE,
        verify,
        sign,
    )
};

fn message(id: &str, time: &str, webhook_id: &str, body: &[u8]) -> String {
    format!("{id}|{time}|{webhook_id}|{}", crc32fast::hash(body))
}

fn verify(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    let signature = request.header(PAYPAL_TRANSMISSION_SIG)?;
    let id = request.header(PAYPAL_TRANSMISSION_ID)?;
    let time = request.header(PAYPAL_TRANSMISSION_TIME)?;
    if request.has(PAYPAL_AUTH_ALGO)
        && !request
            .header(PAYPAL_AUTH_ALGO)?
            .trim()
            .eq_ignore_ascii_case("SHA256withRSA")
    {
        return Err(Rejection::Malformed);
    }
    let signature = BASE64.decode(signature.trim()).map_err(|_| Rejection::Malformed)?;
    let message = message(
        id.trim(),
        time.trim(),
        request.webhook_id.unwrap_or_default(),
        request.body,
    );
    check_public(&keys.public, &[message.as_bytes()], &[signature])
}

/// Signs with a PKCS#8 PEM RSA private key (the pair of a test certificate).
fn sign(private_key: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
    let time = chrono::DateTime::from_timestamp(request.timestamp, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let message = message(
        request.delivery_id,
        &time,
        request.webhook_id.unwrap_or_default(),
        request.body,
    );
    let signature = private::rsa(private_key, message.as_bytes()).map(|signature| BASE64.encode(signature));
    vec![
        (PAYPAL_TRANSMISSION_ID.to_owned(), request.delivery_id.to_owned()),
        (PAYPAL_TRANSMISSION_TIME.to_owned(), time),
        (PAYPAL_AUTH_ALGO.to_owned(), "SHA256withRSA".to_owned()),
        (PAYPAL_TRANSMISSION_SIG.to_owned(), signature.unwrap_or_default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::{AsDyn, PublicKey, Request, Scheme};
    use super::*;

    // PayPal publishes no vector that can be checked offline (its certificates expire and its
    // samples' signatures are over its own bodies). Made by webhook-core/tests/vectors/derive.sh:
    // OpenSSL signs with keys/rsa.pem, whose certificate is keys/paypal-cert.pem; Python's zlib
    // computes the CRC-32.
    const CERTIFICATE: &str = include_str!("../../tests/vectors/keys/paypal-cert.pem");
    const BODY: &[u8] = br#"{"id":"WH-1","event_type":"PAYMENT.CAPTURE.COMPLETED"}"#;
    const SIGNATURE: &str = "WyH/wTwi4q+R9s4EjOKmMOUb+j9JetEv23Iu2f+GhIbEASdj6YM5suo3ngZWW7kmal9M0+8TXmX24fD4STv2WkR2oVCnV+IfG7UzxOVJjDIv4hyTJnnV2dPoDDu/9UoE/UcbQ4N9UGJFCOJKGDw8RRiWm3C3OfcyxkXf85w/Tes6xpkvGYKjBJl94ZoqcijVQrjD4eKKe/l/MgG+tyXgO6ez3OIfs/fXa23H08CPIdypBmjx0x0is+2k/14oydietQP5xRfGQ/Y9ycfvX0MjlwShV8r5jKsJyoHSWVv+/+ABTm3SoLFk5S4H8VL0ZvjVKiDft/+yXxMTQ/k/wyNh5Q==";

    fn paypal(headers: &[(&str, &str)], body: &[u8], webhook_id: &str) -> Result<Verified, Rejection> {
        let (key, _) = PublicKey::rsa_certificate_pem(CERTIFICATE).unwrap();
        let keys = Keys {
            secrets: Vec::new(),
            public: vec![key],
        };
        let request = Request {
            headers: &AsDyn(headers),
            body,
            method: "POST",
            url: None,
            webhook_id: Some(webhook_id),
            now: 0,
            tolerance: 300,
        };
        Scheme::Vendor(&FAMILY).verify_request(&keys, &request)
    }

    fn headers(signature: &str) -> [(&'static str, String); 4] {
        [
            (
                PAYPAL_TRANSMISSION_ID,
                "69cd13f0-d67a-11e5-baa3-778b53f4ae55".to_owned(),
            ),
            (PAYPAL_TRANSMISSION_TIME, "2023-11-14T22:13:20Z".to_owned()),
            (PAYPAL_AUTH_ALGO, "SHA256withRSA".to_owned()),
            (PAYPAL_TRANSMISSION_SIG, signature.to_owned()),
        ]
    }

    fn pairs<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        headers.iter().map(|(name, value)| (*name, value.as_str())).collect()
    }

    #[test]
    fn the_derived_vector_is_accepted_and_its_crc_is_pythons() {
        assert_eq!(crc32fast::hash(BODY), 2_325_436_976);
        assert_eq!(
            paypal(&pairs(&headers(SIGNATURE)), BODY, "WH-ID-1"),
            Ok(Verified { secret_index: 0 })
        );
    }

    #[test]
    fn another_body_webhook_id_time_or_algorithm_is_refused() {
        let good = headers(SIGNATURE);
        assert_eq!(
            paypal(
                &pairs(&good),
                br#"{"id":"WH-2","event_type":"PAYMENT.CAPTURE.COMPLETED"}"#,
                "WH-ID-1"
            ),
            Err(Rejection::Mismatch)
        );
        assert_eq!(paypal(&pairs(&good), BODY, "WH-ID-2"), Err(Rejection::Mismatch));
        let mut later = good.clone();
        later[1].1 = "2023-11-14T22:13:21Z".to_owned();
        assert_eq!(paypal(&pairs(&later), BODY, "WH-ID-1"), Err(Rejection::Mismatch));
        let mut sha1 = good.clone();
        sha1[2].1 = "SHA1withRSA".to_owned();
        assert_eq!(paypal(&pairs(&sha1), BODY, "WH-ID-1"), Err(Rejection::Malformed));
        assert_eq!(
            paypal(&pairs(&headers("!!")), BODY, "WH-ID-1"),
            Err(Rejection::Malformed)
        );
    }

    #[test]
    fn what_the_test_key_signs_its_certificate_verifies() {
        let pem = include_str!("../../tests/vectors/keys/rsa.pem");
        let signed = sign(
            pem,
            &ToSign {
                webhook_id: Some("WH-ID-1"),
                ..ToSign::new("69cd13f0-d67a-11e5-baa3-778b53f4ae55", 1_700_000_000, BODY)
            },
        );
        assert_eq!(signed[3].1, SIGNATURE, "RSA PKCS#1 v1.5 is deterministic");
        let pairs: Vec<(&str, &str)> = signed
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(paypal(&pairs, BODY, "WH-ID-1"), Ok(Verified { secret_index: 0 }));
    }

    #[test]
    fn a_file_that_is_not_a_certificate_is_refused_at_start() {
        assert!(
            PublicKey::rsa_certificate_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----").is_err()
        );
        let (_, not_after) = PublicKey::rsa_certificate_pem(CERTIFICATE).unwrap();
        assert!(not_after > 4_000_000_000, "the test certificate is valid for 100 years");
    }
}
