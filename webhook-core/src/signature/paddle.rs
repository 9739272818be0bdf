//! Paddle Billing: `Paddle-Signature: ts=<unix>;h1=<hex>` (one `h1` per active secret while
//! rotating), the hex HMAC-SHA256 of `{ts}:{body}`; Paddle's SDKs allow 5 seconds of skew.

use super::body_hmac::preset;
use super::{Family, GenericHmac, Place, Places};

preset!(
    FAMILY_BASE,
    "paddle",
    GenericHmac {
        separator: Some(';'),
        signature_key: Some("h1".to_owned()),
        timestamp_key: Some("ts".to_owned()),
        template: Some("{timestamp}:{body}".to_owned()),
        ..GenericHmac::new("Paddle-Signature")
    },
    Places {
        delivery_id: Some(Place::Json("/event_id")),
        event_type: Some(Place::Json("/event_type")),
    },
    Places::NOWHERE
);

pub(super) const FAMILY: Family = Family {
    tolerance_secs: Some(5),
    ..FAMILY_BASE
};

#[cfg(test)]
mod tests {
    use super::super::{Rejection, Scheme, ToSign, Verified, secrets};
    use super::*;

    // paddle-node-sdk's tests (webhooks-validator), as published.
    const SECRET: &str = "VALID_SECRET";
    const BODY: &[u8] = br#"{"data": ["1", "2"]}"#;
    const HEADER: &str = "ts=1698796800;h1=a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9";

    fn paddle(header: &str, body: &[u8], now: i64) -> Result<Verified, Rejection> {
        let headers: &[(&str, &str)] = &[("Paddle-Signature", header)];
        Scheme::Vendor(&FAMILY).verify(&secrets(&[SECRET]), headers, body, now, 5)
    }

    #[test]
    fn paddles_published_vector_is_accepted_within_five_seconds() {
        assert_eq!(paddle(HEADER, BODY, 1_698_796_800), Ok(Verified { secret_index: 0 }));
        assert_eq!(paddle(HEADER, BODY, 1_698_796_805), Ok(Verified { secret_index: 0 }));
        assert_eq!(
            Scheme::Vendor(&FAMILY).sign(SECRET, &ToSign::new("", 1_698_796_800, BODY)),
            [("Paddle-Signature".to_owned(), HEADER.to_owned())]
        );
    }

    #[test]
    fn paddles_negative_cases_are_refused() {
        // The SDK's own: six seconds late, another secret, another body, no h1.
        assert_eq!(paddle(HEADER, BODY, 1_698_796_806), Err(Rejection::Stale));
        let headers: &[(&str, &str)] = &[("Paddle-Signature", HEADER)];
        assert_eq!(
            Scheme::Vendor(&FAMILY).verify(&secrets(&["INVALID_SECRET"]), headers, BODY, 1_698_796_800, 5),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            paddle(HEADER, br#"{"data": ["1", "3"]}"#, 1_698_796_800),
            Err(Rejection::Mismatch)
        );
        assert_eq!(paddle("ts=1698796800", BODY, 1_698_796_800), Err(Rejection::Malformed));
        // Rotation: two h1 entries, the right one second.
        let rotating = format!("ts=1698796800;h1={};{}", "00".repeat(32), &HEADER[14..]);
        assert_eq!(paddle(&rotating, BODY, 1_698_796_800), Ok(Verified { secret_index: 0 }));
        let flood = format!("ts=1698796800{}", ";h1=00".repeat(10_000));
        assert_eq!(paddle(&flood, BODY, 1_698_796_800), Err(Rejection::Malformed));
    }
}
