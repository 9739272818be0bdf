//! Calendly: `Calendly-Webhook-Signature: t=<unix>,v1=<hex>`, the HMAC-SHA256 of `{t}.{body}`
//! under the webhook signing key; Calendly suggests a three-minute tolerance.

use super::body_hmac::preset;
use super::{Family, GenericHmac, Place, Places};

preset!(
    FAMILY_BASE,
    "calendly",
    GenericHmac {
        separator: Some(','),
        signature_key: Some("v1".to_owned()),
        timestamp_key: Some("t".to_owned()),
        template: Some("{timestamp}.{body}".to_owned()),
        ..GenericHmac::new("Calendly-Webhook-Signature")
    },
    // No event id: a source says how its events are told apart.
    Places {
        delivery_id: None,
        event_type: Some(Place::Json("/event")),
    },
    Places::NOWHERE
);

pub(super) const FAMILY: Family = Family {
    tolerance_secs: Some(180),
    ..FAMILY_BASE
};

#[cfg(test)]
mod tests {
    use super::super::{Rejection, Scheme, Verified, secrets};
    use super::*;

    // Calendly publishes no vector. Made by webhook-core/tests/vectors/derive.sh (OpenSSL).
    const BODY: &[u8] = br#"{"event":"invitee.created","payload":{"uri":"https://api.calendly.com/x"}}"#;
    const HEADER: &str = "t=1700000000,v1=c870f3eb75032ca6bd53901d81dc4bf18bcac409926285cfcb82588bfcb56bf1";

    fn calendly(header: &str, body: &[u8], now: i64) -> Result<Verified, Rejection> {
        let headers: &[(&str, &str)] = &[("Calendly-Webhook-Signature", header)];
        Scheme::Vendor(&FAMILY).verify(&secrets(&["calendly-key"]), headers, body, now, 180)
    }

    #[test]
    fn the_derived_vector_is_accepted_within_three_minutes() {
        assert_eq!(calendly(HEADER, BODY, 1_700_000_180), Ok(Verified { secret_index: 0 }));
        assert_eq!(calendly(HEADER, BODY, 1_700_000_181), Err(Rejection::Stale));
        assert_eq!(
            calendly(HEADER, br#"{"event":"invitee.canceled"}"#, 1_700_000_000),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            calendly(&HEADER.replace("t=1700000000", "t=1700000001"), BODY, 1_700_000_000),
            Err(Rejection::Mismatch)
        );
        let flood = format!("t=1700000000{}", ",v1=00".repeat(10_000));
        assert_eq!(calendly(&flood, BODY, 1_700_000_000), Err(Rejection::Malformed));
    }
}
