//! DocuSign Connect: one header per active HMAC key, `X-DocuSign-Signature-1`,
//! `X-DocuSign-Signature-2`, …, each the base64 HMAC-SHA256 of the raw body; any one matching
//! any secret is enough. At most [`MAX_SIGNATURE_ENTRIES`] are read: a request with a header of
//! a higher number is refused as malformed, so keep at most that many Connect keys active.

use super::{
    Encoding, Family, GenericHmac, Keys, MAX_SIGNATURE_ENTRIES, Place, Places, Rejection, Signed, ToSign, Verified,
};

fn scheme() -> &'static GenericHmac {
    static SCHEME: std::sync::LazyLock<GenericHmac> = std::sync::LazyLock::new(|| GenericHmac {
        headers: (1..=MAX_SIGNATURE_ENTRIES)
            .map(|n| format!("X-DocuSign-Signature-{n}"))
            .collect(),
        encoding: Encoding::Base64,
        ..GenericHmac::new("X-DocuSign-Signature-1")
    });
    &SCHEME
}

pub(super) const FAMILY: Family = Family::new(
    "docusign",
    // No id of its own in the JSON: a source says how its events are told apart.
    Places {
        delivery_id: None,
        event_type: Some(Place::Json("/event")),
    },
    Places::NOWHERE,
    verify,
    sign,
);

fn verify(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    if request.has(&format!("X-DocuSign-Signature-{}", MAX_SIGNATURE_ENTRIES + 1)) {
        return Err(Rejection::Malformed);
    }
    super::hmac::verify(scheme(), keys, request)
}

fn sign(secret: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
    super::hmac::sign(scheme(), secret, request)
}

#[cfg(test)]
mod tests {
    use super::super::{Scheme, secrets};
    use super::*;

    // DocuSign publishes no vector. Made by webhook-core/tests/vectors/derive.sh (OpenSSL).
    const BODY: &[u8] = br#"{"id":"evt_1","type":"push"}"#;
    const SIGNATURE: &str = "wC3ghfGvUSD7P/HruQQ/LkHQpX86R23J4mJup8ZJdiA=";

    fn docusign(headers: &[(&str, &str)]) -> Result<Verified, Rejection> {
        Scheme::Vendor(&FAMILY).verify(&secrets(&["vendor-secret"]), headers, BODY, 0, 300)
    }

    #[test]
    fn any_numbered_header_may_carry_the_matching_signature() {
        let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert_eq!(
            docusign(&[("X-DocuSign-Signature-1", SIGNATURE)]),
            Ok(Verified { secret_index: 0 })
        );
        assert_eq!(
            docusign(&[("X-DocuSign-Signature-1", wrong), ("X-DocuSign-Signature-2", SIGNATURE)]),
            Ok(Verified { secret_index: 0 })
        );
        assert_eq!(docusign(&[("X-DocuSign-Signature-1", wrong)]), Err(Rejection::Mismatch));
        assert_eq!(docusign(&[]), Err(Rejection::Missing));
    }

    #[test]
    fn more_headers_than_a_handful_are_malformed() {
        let names: Vec<String> = (1..=MAX_SIGNATURE_ENTRIES + 1)
            .map(|n| format!("X-DocuSign-Signature-{n}"))
            .collect();
        let many: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), SIGNATURE)).collect();
        assert_eq!(
            docusign(&many[..MAX_SIGNATURE_ENTRIES]),
            Ok(Verified { secret_index: 0 })
        );
        assert_eq!(docusign(&many), Err(Rejection::Malformed));
    }
}
