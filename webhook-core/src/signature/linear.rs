//! Linear: `Linear-Signature` is the hex HMAC-SHA256 of the raw body under the webhook's
//! secret; the body's `webhookTimestamp` (Unix milliseconds) must be within a minute of now,
//! as Linear's docs and SDK check it. That one field is read before the signature is checked.

use serde::Deserialize;

use super::body_hmac::preset;
use super::{Family, GenericHmac, Keys, Place, Places, Rejection, Signed, Verified};

/// The body field with the signed time, in milliseconds.
pub const LINEAR_TIMESTAMP_FIELD: &str = "webhookTimestamp";

preset!(
    FAMILY_BASE,
    "linear",
    GenericHmac::new("Linear-Signature"),
    Places {
        delivery_id: Some(Place::Header("Linear-Delivery")),
        event_type: Some(Place::Header("Linear-Event")),
    },
    Places::NOWHERE
);

pub(super) const FAMILY: Family = Family {
    tolerance_secs: Some(60),
    ..Family { verify, ..FAMILY_BASE }
};

#[derive(Deserialize)]
struct Timestamped {
    #[serde(rename = "webhookTimestamp")]
    webhook_timestamp: i64,
}

fn verify(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    let verified = (FAMILY_BASE.verify)(keys, request)?;
    let timestamped: Timestamped = serde_json::from_slice(request.body).map_err(|_| Rejection::Malformed)?;
    request.fresh(timestamped.webhook_timestamp.div_euclid(1000))?;
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::super::{Scheme, secrets};
    use super::*;

    // Linear publishes no vector. Made by webhook-core/tests/vectors/derive.sh (OpenSSL).
    const BODY: &[u8] = br#"{"action":"create","type":"Issue","webhookTimestamp":1700000000000}"#;
    const SIGNATURE: &str = "91e919dc0fd99df1cae12efef1ca08b082cfa523f101b572ec14ed98863fdf35";

    fn linear(signature: &str, body: &[u8], now: i64) -> Result<Verified, Rejection> {
        let headers: &[(&str, &str)] = &[("Linear-Signature", signature)];
        Scheme::Vendor(&FAMILY).verify(&secrets(&["lin_wh_secret"]), headers, body, now, 60)
    }

    #[test]
    fn the_derived_vector_is_accepted_within_a_minute_of_its_body_timestamp() {
        assert_eq!(linear(SIGNATURE, BODY, 1_700_000_060), Ok(Verified { secret_index: 0 }));
        assert_eq!(linear(SIGNATURE, BODY, 1_700_000_061), Err(Rejection::Stale));
        assert_eq!(linear(SIGNATURE, BODY, 1_699_999_939), Err(Rejection::Stale));
        let later = br#"{"action":"create","type":"Issue","webhookTimestamp":1700000001000}"#;
        assert_eq!(linear(SIGNATURE, later, 1_700_000_000), Err(Rejection::Mismatch));
        // Signed, but with no time in it: refused.
        let untimed = br#"{"action":"create"}"#;
        let signature = hex::encode(super::super::Algorithm::Sha256.sign(b"lin_wh_secret", &[untimed]));
        assert_eq!(linear(&signature, untimed, 1_700_000_000), Err(Rejection::Malformed));
    }
}
