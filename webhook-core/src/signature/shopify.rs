//! Shopify: `X-Shopify-Hmac-Sha256` is the base64 HMAC-SHA256 of the body.

use super::{Algorithm, Encoding, Family, Keys, Place, Places, Rejection, Signed, ToSign, Verified, check, text_key};

/// Shopify's header.
pub const SHOPIFY_HMAC: &str = "X-Shopify-Hmac-Sha256";

pub(super) const FAMILY: Family = Family::new(
    "shopify",
    Places {
        delivery_id: Some(Place::Header("X-Shopify-Webhook-Id")),
        event_type: Some(Place::Header("X-Shopify-Topic")),
    },
    Places {
        delivery_id: Some(Place::Header("X-Shopify-Webhook-Id")),
        event_type: Some(Place::Header("X-Shopify-Topic")),
    },
    verify,
    sign,
);

fn verify(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    let header = request.header(SHOPIFY_HMAC)?;
    let tag = Encoding::Base64.decode(header.trim()).ok_or(Rejection::Malformed)?;
    check(&keys.secrets, text_key, Algorithm::Sha256, &[request.body], &[tag])
}

fn sign(secret: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
    let tag = Algorithm::Sha256.sign(secret.as_bytes(), &[request.body]);
    vec![(SHOPIFY_HMAC.to_owned(), Encoding::Base64.encode(&tag))]
}

#[cfg(test)]
mod tests {
    use super::super::{Scheme, secrets};
    use super::*;

    // Shopify publishes no vectors. Made with OpenSSL 3.0:
    //   printf '%s' '{"id":1,"total_price":"10.00"}' | openssl dgst -sha256 -hmac 'shpss_test' -binary | base64
    #[test]
    fn shopify_accepts_the_openssl_vector_and_rejects_tampering() {
        let body = br#"{"id":1,"total_price":"10.00"}"#;
        let shopify = |value: &str, body: &[u8]| {
            let headers: &[(&str, &str)] = &[(SHOPIFY_HMAC, value)];
            Scheme::SHOPIFY.verify(&secrets(&["shpss_test"]), headers, body, 0, 300)
        };
        let expected = "XOYu+xzdpO1Gq6RBYewNh5JiOgwmx0YUR351vB3TK+0=";
        assert_eq!(shopify(expected, body), Ok(Verified { secret_index: 0 }));
        assert_eq!(
            shopify(expected, br#"{"id":1,"total_price":"99.00"}"#),
            Err(Rejection::Mismatch)
        );
        assert_eq!(shopify("not base64!", body), Err(Rejection::Malformed));
        let signed = sign("shpss_test", &ToSign::new("", 0, body));
        assert_eq!(signed, [(SHOPIFY_HMAC.to_owned(), expected.to_owned())]);
    }
}
