//! Vendors whose signature is an HMAC of the raw body in one header, and nothing else: each a
//! fixed description of the generic scheme ([`GenericHmac`]) with the vendor's places.
//!
//! - Bitbucket Cloud: `X-Hub-Signature: sha256=<hex>`.
//! - Intercom: `X-Hub-Signature: sha1=<hex>` (HMAC-SHA1 with the app's client secret).
//! - Jira (admin webhooks with a secret): `X-Hub-Signature: sha256=<hex>`.
//! - Typeform: `Typeform-Signature: sha256=<base64>`.
//! - WooCommerce: `X-WC-Webhook-Signature: <base64>`.
//! - Razorpay: `X-Razorpay-Signature: <hex>`.

use super::{Algorithm, Encoding, Family, GenericHmac, Place, Places};

/// A body-HMAC preset: `header` with `prefix`, the MAC in `encoding`.
fn spec(header: &str, algorithm: Algorithm, encoding: Encoding, prefix: Option<&str>) -> GenericHmac {
    GenericHmac {
        algorithm,
        encoding,
        prefix: prefix.map(str::to_owned),
        ..GenericHmac::new(header)
    }
}

/// One family over a lazily built [`GenericHmac`].
macro_rules! preset {
    ($family:ident, $name:literal, $spec:expr, $json:expr, $form:expr) => {
        pub(super) const $family: Family = {
            fn scheme() -> &'static GenericHmac {
                static SCHEME: std::sync::LazyLock<GenericHmac> = std::sync::LazyLock::new(|| $spec);
                &SCHEME
            }
            fn verify(keys: &super::Keys, request: &super::Signed<'_>) -> Result<super::Verified, super::Rejection> {
                super::hmac::verify(scheme(), keys, request)
            }
            fn sign(secret: &str, request: &super::ToSign<'_>) -> Vec<(String, String)> {
                super::hmac::sign(scheme(), secret, request)
            }
            Family::new($name, $json, $form, verify, sign)
        };
    };
}

pub(super) use preset;

const fn headers(delivery_id: &'static str, event_type: &'static str) -> Places {
    Places {
        delivery_id: Some(Place::Header(delivery_id)),
        event_type: Some(Place::Header(event_type)),
    }
}

preset!(
    BITBUCKET,
    "bitbucket",
    spec("X-Hub-Signature", Algorithm::Sha256, Encoding::Hex, Some("sha256=")),
    headers("X-Request-UUID", "X-Event-Key"),
    headers("X-Request-UUID", "X-Event-Key")
);

preset!(
    INTERCOM,
    "intercom",
    spec("X-Hub-Signature", Algorithm::Sha1, Encoding::Hex, Some("sha1=")),
    Places {
        delivery_id: Some(Place::Json("/id")),
        event_type: Some(Place::Json("/topic")),
    },
    Places::NOWHERE
);

preset!(
    JIRA,
    "jira",
    spec("X-Hub-Signature", Algorithm::Sha256, Encoding::Hex, Some("sha256=")),
    Places {
        delivery_id: Some(Place::Header("X-Atlassian-Webhook-Identifier")),
        event_type: Some(Place::Json("/webhookEvent")),
    },
    Places::NOWHERE
);

preset!(
    TYPEFORM,
    "typeform",
    spec(
        "Typeform-Signature",
        Algorithm::Sha256,
        Encoding::Base64,
        Some("sha256=")
    ),
    Places {
        delivery_id: Some(Place::Json("/event_id")),
        event_type: Some(Place::Json("/event_type")),
    },
    Places::NOWHERE
);

preset!(
    WOOCOMMERCE,
    "woocommerce",
    spec("X-WC-Webhook-Signature", Algorithm::Sha256, Encoding::Base64, None),
    headers("X-WC-Webhook-Delivery-ID", "X-WC-Webhook-Topic"),
    headers("X-WC-Webhook-Delivery-ID", "X-WC-Webhook-Topic")
);

preset!(
    RAZORPAY,
    "razorpay",
    spec("X-Razorpay-Signature", Algorithm::Sha256, Encoding::Hex, None),
    Places {
        delivery_id: Some(Place::Header("X-Razorpay-Event-Id")),
        event_type: Some(Place::Json("/event")),
    },
    Places::NOWHERE
);

#[cfg(test)]
mod tests {
    use super::super::{Rejection, Scheme, Verified, secrets};
    use super::*;

    // Vendors that publish no vectors: each was made with OpenSSL by
    // webhook-core/tests/vectors/derive.sh, which says how.
    const BODY: &[u8] = br#"{"id":"evt_1","type":"push"}"#;

    fn verify(family: &'static Family, header: &str, value: &str, body: &[u8]) -> Result<Verified, Rejection> {
        let headers: &[(&str, &str)] = &[(header, value)];
        Scheme::Vendor(family).verify(&secrets(&["old", "vendor-secret"]), headers, body, 0, 300)
    }

    #[test]
    fn each_body_hmac_vendor_accepts_its_derived_vector_and_refuses_a_changed_body() {
        let cases: [(&Family, &str, &str); 6] = [
            (
                &BITBUCKET,
                "X-Hub-Signature",
                "sha256=c02de085f1af5120fb3ff1ebb9043f2e41d0a57f3a476dc9e2626ea7c6497620",
            ),
            (
                &INTERCOM,
                "X-Hub-Signature",
                "sha1=864b62cd919ceb87503097724b35a4c26b187c85",
            ),
            (
                &JIRA,
                "X-Hub-Signature",
                "sha256=c02de085f1af5120fb3ff1ebb9043f2e41d0a57f3a476dc9e2626ea7c6497620",
            ),
            (
                &TYPEFORM,
                "Typeform-Signature",
                "sha256=wC3ghfGvUSD7P/HruQQ/LkHQpX86R23J4mJup8ZJdiA=",
            ),
            (
                &WOOCOMMERCE,
                "X-WC-Webhook-Signature",
                "wC3ghfGvUSD7P/HruQQ/LkHQpX86R23J4mJup8ZJdiA=",
            ),
            (
                &RAZORPAY,
                "X-Razorpay-Signature",
                "c02de085f1af5120fb3ff1ebb9043f2e41d0a57f3a476dc9e2626ea7c6497620",
            ),
        ];
        for (family, header, value) in cases {
            assert_eq!(
                verify(family, header, value, BODY),
                Ok(Verified { secret_index: 1 }),
                "{}",
                family.name
            );
            assert_eq!(
                verify(family, header, value, br#"{"id":"evt_2","type":"push"}"#),
                Err(Rejection::Mismatch),
                "{}",
                family.name
            );
            let signed = Scheme::Vendor(family).sign("vendor-secret", &super::super::ToSign::new("d", 0, BODY));
            assert_eq!(signed, [(header.to_owned(), value.to_owned())], "{}", family.name);
        }
    }

    #[test]
    fn a_prefix_is_required_where_the_vendor_sends_one() {
        assert_eq!(
            verify(
                &BITBUCKET,
                "X-Hub-Signature",
                "c02de085f1af5120fb3ff1ebb9043f2e41d0a57f3a476dc9e2626ea7c6497620",
                BODY
            ),
            Err(Rejection::Malformed)
        );
        assert_eq!(
            verify(
                &INTERCOM,
                "X-Hub-Signature",
                "sha256=c02de085f1af5120fb3ff1ebb9043f2e41d0a57f3a476dc9e2626ea7c6497620",
                BODY
            ),
            Err(Rejection::Malformed)
        );
    }
}
