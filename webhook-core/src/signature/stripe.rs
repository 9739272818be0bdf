//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, the HMAC-SHA256 of
//! `"{t}.{body}"` with the secret string as the key.

use super::{Algorithm, Family, Keys, Place, Places, Rejection, Signed, ToSign, Verified, check, entries, text_key};

/// Stripe's header.
pub const STRIPE_SIGNATURE: &str = "Stripe-Signature";

pub(super) const FAMILY: Family = Family::new(
    "stripe",
    Places {
        delivery_id: Some(Place::Json("/id")),
        event_type: Some(Place::Json("/type")),
    },
    Places::NOWHERE,
    verify,
    sign,
);

/// Entries other than `t` and `v1` (such as `v0`) are ignored, as are entries without `=` and
/// `v1` values that are not hex; without a `t` and a hex `v1` the header is malformed.
fn verify(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    let header = request.header(STRIPE_SIGNATURE)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    // As Stripe's own libraries read it: entries other than `t` and `v1`, entries without
    // `=`, and `v1` values that are not hex (they could never match) are skipped. More than
    // MAX_SIGNATURE_ENTRIES entries are refused.
    for (key, value) in entries(header, |c| c == ',')?
        .into_iter()
        .filter_map(|item| item.split_once('='))
    {
        match key {
            "t" => timestamp = Some(value),
            "v1" => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(Rejection::Malformed)?;
    if signatures.is_empty() {
        return Err(Rejection::Malformed);
    }
    request.timestamp(timestamp)?;
    check(
        &keys.secrets,
        text_key,
        Algorithm::Sha256,
        &[timestamp.as_bytes(), b".", request.body],
        &signatures,
    )
}

/// Signs like Stripe: the `Stripe-Signature` value for `body` at `timestamp`.
pub fn sign_stripe(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let tag = Algorithm::Sha256.sign(secret, &[timestamp.as_bytes(), b".", body]);
    format!("t={timestamp},v1={}", hex::encode(tag))
}

fn sign(secret: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
    vec![(
        STRIPE_SIGNATURE.to_owned(),
        sign_stripe(secret.as_bytes(), request.timestamp, request.body),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::{Scheme, secrets};
    use super::*;

    // Stripe publishes no vectors. Made with OpenSSL 3.0:
    //   printf '%s' '1700000000.{"id":"evt_1","type":"charge.succeeded"}' \
    //     | openssl dgst -sha256 -hmac 'whsec_test_stripe'
    const STRIPE_SECRET: &str = "whsec_test_stripe";
    const STRIPE_BODY: &[u8] = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
    const STRIPE_V1: &str = "e5ae2d1aaf7191f9c3a98656906ac6e86a39addf55af2c579dc86f4fed2e2ea7";

    fn stripe(header: &str, body: &[u8], now: i64) -> Result<Verified, Rejection> {
        let headers: &[(&str, &str)] = &[(STRIPE_SIGNATURE, header)];
        Scheme::STRIPE.verify(&secrets(&["old_secret", STRIPE_SECRET]), headers, body, now, 300)
    }

    #[test]
    fn stripe_accepts_the_openssl_vector_with_any_secret_and_ignores_other_versions() {
        let header = format!("t=1700000000,v1={STRIPE_V1}");
        assert_eq!(
            sign_stripe(STRIPE_SECRET.as_bytes(), 1_700_000_000, STRIPE_BODY),
            header
        );
        assert_eq!(
            stripe(&header, STRIPE_BODY, 1_700_000_005),
            Ok(Verified { secret_index: 1 })
        );
        let several = format!("t=1700000000,v0=deadbeef,v1={},v1={STRIPE_V1}", "00".repeat(32));
        assert_eq!(
            stripe(&several, STRIPE_BODY, 1_700_000_005),
            Ok(Verified { secret_index: 1 })
        );
    }

    #[test]
    fn stripe_rejects_stale_tampered_and_malformed_headers() {
        let header = format!("t=1700000000,v1={STRIPE_V1}");
        assert_eq!(stripe(&header, STRIPE_BODY, 1_700_000_301), Err(Rejection::Stale));
        assert_eq!(
            stripe(&header, br#"{"id":"evt_2"}"#, 1_700_000_000),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            stripe(&format!("v1={STRIPE_V1}"), STRIPE_BODY, 1_700_000_000),
            Err(Rejection::Malformed)
        );
        assert_eq!(
            stripe("t=1700000000,v0=abcd", STRIPE_BODY, 1_700_000_000),
            Err(Rejection::Malformed)
        );
        assert_eq!(stripe("garbage", STRIPE_BODY, 1_700_000_000), Err(Rejection::Malformed));
        assert_eq!(
            stripe("t=1700000000,v1=zz", STRIPE_BODY, 1_700_000_000),
            Err(Rejection::Malformed)
        );
        // Stray entries around a good signature do not spoil it.
        assert_eq!(
            stripe(
                &format!("t=1700000000,v1=zz,,junk,v1={STRIPE_V1},"),
                STRIPE_BODY,
                1_700_000_000
            ),
            Ok(Verified { secret_index: 1 })
        );
        let headers: &[(&str, &str)] = &[];
        assert_eq!(
            Scheme::STRIPE.verify(&secrets(&[STRIPE_SECRET]), headers, STRIPE_BODY, 0, 300),
            Err(Rejection::Missing)
        );
    }

    #[test]
    fn more_entries_than_a_handful_are_malformed_even_around_a_good_signature() {
        let good = format!("t=1700000000,v1={STRIPE_V1}");
        let rotating = format!("{good},v1={},v0=abcd", "00".repeat(32));
        assert_eq!(
            stripe(&rotating, STRIPE_BODY, 1_700_000_000),
            Ok(Verified { secret_index: 1 })
        );
        let padded = format!("{good}{}", ",v1=".repeat(7));
        assert_eq!(stripe(&padded, STRIPE_BODY, 1_700_000_000), Err(Rejection::Malformed));
        let flood = format!("t=1700000000{}", ",v1=".repeat(10_000));
        assert_eq!(stripe(&flood, STRIPE_BODY, 1_700_000_000), Err(Rejection::Malformed));
    }
}
