//! GitLab: the webhook's secret token sent as it is in `X-Gitlab-Token`, compared in constant
//! time; or, when the hook has a signing token, Standard Webhooks' `webhook-id`,
//! `webhook-timestamp` and `webhook-signature` (`v1,<base64>` HMAC-SHA256 of
//! `{id}.{timestamp}.{body}` under the `whsec_` signing token), which then alone decides.

use super::{Family, Keys, Place, Places, Rejection, STANDARD_SIGNATURE, Signed, ToSign, Verified, check_token};

/// GitLab's token header.
pub const GITLAB_TOKEN: &str = "X-Gitlab-Token";

pub(super) const FAMILY: Family = Family::new(
    "gitlab",
    Places {
        delivery_id: Some(Place::Header("Idempotency-Key")),
        event_type: Some(Place::Header("X-Gitlab-Event")),
    },
    Places {
        delivery_id: Some(Place::Header("Idempotency-Key")),
        event_type: Some(Place::Header("X-Gitlab-Event")),
    },
    verify,
    sign,
);

fn verify(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    if request.has(STANDARD_SIGNATURE) {
        return (super::standard::FAMILY.verify)(keys, request);
    }
    let token = request.header(GITLAB_TOKEN)?;
    check_token(&keys.secrets, token.as_bytes())
}

/// A `whsec_` secret signs like Standard Webhooks; any other is sent as the token.
fn sign(secret: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
    if secret.starts_with("whsec_") {
        (super::standard::FAMILY.sign)(secret, request)
    } else {
        vec![(GITLAB_TOKEN.to_owned(), secret.to_owned())]
    }
}

#[cfg(test)]
mod tests {
    use super::super::{STANDARD_ID, STANDARD_TIMESTAMP, Scheme, secrets};
    use super::*;

    // GitLab publishes no vectors. Made by webhook-core/tests/vectors/derive.sh (OpenSSL).
    const KEY: &str = "whsec_Z2l0bGFiLXNpZ25pbmcta2V5LW9mLTMyLWJ5dGVzISE=";
    const BODY: &[u8] = br#"{"object_kind":"push"}"#;
    const SIGNATURE: &str = "v1,MDSnPcWpgUZF/dS95yUWXEri88gMegS3kx8tOTwd/S8=";

    fn gitlab(headers: &[(&str, &str)], body: &[u8], now: i64) -> Result<Verified, Rejection> {
        Scheme::Vendor(&FAMILY).verify(&secrets(&["plain-token", KEY]), headers, body, now, 300)
    }

    #[test]
    fn the_token_is_compared_as_it_is() {
        assert_eq!(
            gitlab(&[(GITLAB_TOKEN, "plain-token")], BODY, 0),
            Ok(Verified { secret_index: 0 })
        );
        for wrong in ["plain-toke", "plain-token ", "PLAIN-TOKEN", ""] {
            assert_eq!(
                gitlab(&[(GITLAB_TOKEN, wrong)], BODY, 0),
                Err(Rejection::Mismatch),
                "{wrong:?}"
            );
        }
        assert_eq!(gitlab(&[], BODY, 0), Err(Rejection::Missing));
    }

    #[test]
    fn a_signing_token_is_standard_webhooks_and_alone_decides() {
        let signed = |signature: &'static str| {
            [
                (STANDARD_ID, "d6ef1a4e-3c2e-4c4c-9e43-8b1c8f1f2a11"),
                (STANDARD_TIMESTAMP, "1700000000"),
                (STANDARD_SIGNATURE, signature),
                (GITLAB_TOKEN, "plain-token"),
            ]
        };
        assert_eq!(
            gitlab(&signed(SIGNATURE), BODY, 1_700_000_010),
            Ok(Verified { secret_index: 1 })
        );
        assert_eq!(
            gitlab(&signed(SIGNATURE), br#"{"object_kind":"tag_push"}"#, 1_700_000_010),
            Err(Rejection::Mismatch)
        );
        // A good token does not rescue a bad signature.
        assert_eq!(
            gitlab(&signed("v1,AAAA"), BODY, 1_700_000_010),
            Err(Rejection::Mismatch)
        );
        assert_eq!(gitlab(&signed(SIGNATURE), BODY, 1_700_000_301), Err(Rejection::Stale));
    }
}
