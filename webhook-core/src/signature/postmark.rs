//! Postmark: it cannot sign; its webhooks carry the user and password of the URL they were
//! given (`https://user:pass@…`) as HTTP Basic credentials. A secret is `user:password`,
//! compared in constant time with what `Authorization: Basic …` decodes to. Postmark's
//! addresses are published, so an `allow_ips` list is the second factor.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{Family, Keys, Place, Places, Rejection, Signed, ToSign, Verified, check_token};

pub(super) const FAMILY: Family = Family {
    check_secret: Some(check_secret),
    ..Family::new(
        "postmark",
        Places {
            delivery_id: None,
            event_type: Some(Place::Json("/RecordType")),
        },
        Places::NOWHERE,
        verify,
        sign,
    )
};

fn check_secret(secret: &str) -> Result<(), &'static str> {
    match secret.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => Ok(()),
        _ => Err("postmark secrets are `user:password`, the Basic credentials of the webhook's URL"),
    }
}

fn verify(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    let header = request.header("Authorization")?.trim();
    let (scheme, encoded) = header.split_once(' ').ok_or(Rejection::Malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Rejection::Malformed);
    }
    let credentials = BASE64.decode(encoded.trim()).map_err(|_| Rejection::Malformed)?;
    check_token(&keys.secrets, &credentials)
}

fn sign(secret: &str, _request: &ToSign<'_>) -> Vec<(String, String)> {
    vec![("Authorization".to_owned(), format!("Basic {}", BASE64.encode(secret)))]
}

#[cfg(test)]
mod tests {
    use super::super::{Scheme, secrets};
    use super::*;

    fn postmark(authorization: &str) -> Result<Verified, Rejection> {
        let headers: &[(&str, &str)] = &[("Authorization", authorization)];
        Scheme::Vendor(&FAMILY).verify(
            &secrets(&["postmark:old", "postmark:hook-password"]),
            headers,
            b"{}",
            0,
            300,
        )
    }

    // Made by webhook-core/tests/vectors/derive.sh: base64 of `postmark:hook-password`.
    #[test]
    fn basic_credentials_are_compared_with_each_secret() {
        assert_eq!(
            postmark("Basic cG9zdG1hcms6aG9vay1wYXNzd29yZA=="),
            Ok(Verified { secret_index: 1 })
        );
        assert_eq!(
            postmark("basic cG9zdG1hcms6aG9vay1wYXNzd29yZA=="),
            Ok(Verified { secret_index: 1 })
        );
        assert_eq!(
            postmark("Basic cG9zdG1hcms6aG9vay1wYXNzd29yZQ=="),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            postmark("Bearer cG9zdG1hcms6aG9vay1wYXNzd29yZA=="),
            Err(Rejection::Malformed)
        );
        assert_eq!(postmark("Basic !!"), Err(Rejection::Malformed));
        assert_eq!(
            sign("postmark:hook-password", &ToSign::new("", 0, b"{}")),
            [(
                "Authorization".to_owned(),
                "Basic cG9zdG1hcms6aG9vay1wYXNzd29yZA==".to_owned()
            )]
        );
        assert!(check_secret("no-colon").is_err());
    }
}
