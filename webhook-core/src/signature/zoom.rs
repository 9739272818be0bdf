//! Zoom: `x-zm-signature: v0=<hex>`, the HMAC-SHA256 under the app's secret token of
//! `v0:{x-zm-request-timestamp}:{body}`. The `endpoint.url_validation` request (when the URL is
//! set and every 72 hours) is answered, once signed, with its `plainToken` and the hex
//! HMAC-SHA256 of it under the same secret, `encryptedToken`.

use super::body_hmac::preset;
use super::{Algorithm, Answer, Challenge, Family, GenericHmac, Handshake, Place, Places};

preset!(
    FAMILY_BASE,
    "zoom",
    GenericHmac {
        prefix: Some("v0=".to_owned()),
        template: Some("v0:{timestamp}:{body}".to_owned()),
        timestamp_header: Some("x-zm-request-timestamp".to_owned()),
        ..GenericHmac::new("x-zm-signature")
    },
    Places {
        delivery_id: None,
        event_type: Some(Place::Json("/event")),
    },
    Places::NOWHERE
);

pub(super) const FAMILY: Family = Family {
    handshake: Some(Handshake {
        name: "endpoint.url_validation",
        pointers: &["/payload/plainToken"],
        answer: url_validation,
    }),
    ..FAMILY_BASE
};

fn url_validation(request: &Challenge<'_>) -> Option<Result<Answer, String>> {
    let json = request.json?;
    if json.text("/event").as_deref() != Some("endpoint.url_validation") {
        return None;
    }
    let (Some(token), Some(secret)) = (json.text("/payload/plainToken"), request.secret) else {
        return Some(Err("endpoint.url_validation without a payload.plainToken".to_owned()));
    };
    let encrypted = hex::encode(Algorithm::Sha256.sign(secret.expose().as_bytes(), &[token.as_bytes()]));
    Some(Ok(Answer::json(
        &serde_json::json!({ "plainToken": token, "encryptedToken": encrypted }),
    )))
}

#[cfg(test)]
mod tests {
    use super::super::{Rejection, Scheme, Verified, secrets};
    use super::*;
    use crate::config::Secret;
    use crate::payload::read_json;

    // Zoom publishes no vector. Made by webhook-core/tests/vectors/derive.sh (OpenSSL).
    const BODY: &[u8] = br#"{"event":"meeting.started","event_ts":1700000000000,"payload":{"account_id":"a1"}}"#;
    const SIGNATURE: &str = "v0=316f6b735cc76de4dd6352adadaeab909a46151d197c1b0a5abef9cc79c8316b";

    fn zoom(signature: &str, timestamp: &str, body: &[u8], now: i64) -> Result<Verified, Rejection> {
        let headers: &[(&str, &str)] = &[("x-zm-signature", signature), ("x-zm-request-timestamp", timestamp)];
        Scheme::Vendor(&FAMILY).verify(&secrets(&["zoom-secret"]), headers, body, now, 300)
    }

    #[test]
    fn the_derived_vector_is_accepted_and_tampering_refused() {
        assert_eq!(
            zoom(SIGNATURE, "1700000000", BODY, 1_700_000_100),
            Ok(Verified { secret_index: 0 })
        );
        assert_eq!(
            zoom(SIGNATURE, "1700000001", BODY, 1_700_000_100),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            zoom(SIGNATURE, "1700000000", BODY, 1_700_000_301),
            Err(Rejection::Stale)
        );
        assert_eq!(
            zoom(&SIGNATURE[3..], "1700000000", BODY, 1_700_000_000),
            Err(Rejection::Malformed)
        );
    }

    #[test]
    fn url_validation_is_answered_with_the_hmac_of_the_plain_token() {
        let body = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
        let json = read_json(body, &["/payload/plainToken"]).unwrap();
        let secret = Secret::new("zoom-secret");
        let headers: &[(&str, &str)] = &[];
        let challenge = Challenge {
            headers: &super::super::AsDyn(headers),
            json: Some(&json),
            secret: Some(&secret),
        };
        let answer = url_validation(&challenge).unwrap().unwrap();
        let value: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        // encryptedToken from derive.sh (OpenSSL).
        assert_eq!(
            value,
            serde_json::json!({
                "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
                "encryptedToken": "b17f0320a1322a509340a1a835b3d9edbc491f0b0790ed2d20d0604d39dfe922"
            })
        );
        let event = read_json(BODY, &["/payload/plainToken"]).unwrap();
        let other = Challenge {
            json: Some(&event),
            ..challenge
        };
        assert!(url_validation(&other).is_none(), "an event is not a handshake");
    }
}
