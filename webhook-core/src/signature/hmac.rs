//! `hmac`: a configured header, algorithm, encoding, prefix and signed template, for vendors
//! with their own convention.

use super::{Algorithm, Encoding, Rejection, Signed, ToSign, Verified, check, text_key};
use crate::config::Secret;

/// A configurable HMAC scheme for vendors with their own convention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericHmac {
    /// The header that carries the signature.
    pub header: String,
    /// The hash function.
    pub algorithm: Algorithm,
    /// How the MAC is written in the header.
    pub encoding: Encoding,
    /// Text before the MAC in the header (e.g. `sha256=`), if any.
    pub prefix: Option<String>,
    /// What is signed: `None` for the body alone, or a template where `{timestamp}` is the
    /// value of `timestamp_header` and `{body}` the raw body.
    pub template: Option<String>,
    /// The header with the Unix timestamp used in the template (checked against the tolerance).
    pub timestamp_header: Option<String>,
}

pub(super) fn verify(scheme: &GenericHmac, secrets: &[Secret], request: &Signed<'_>) -> Result<Verified, Rejection> {
    let header = request.header(&scheme.header)?.trim();
    let encoded = match &scheme.prefix {
        Some(prefix) => header.strip_prefix(prefix.as_str()).ok_or(Rejection::Malformed)?,
        None => header,
    };
    let tag = scheme.encoding.decode(encoded).ok_or(Rejection::Malformed)?;
    let timestamp = match &scheme.timestamp_header {
        Some(name) => {
            let value = request.header(name)?;
            request.timestamp(value)?;
            Some(value.trim())
        }
        None => None,
    };
    let parts = parts(scheme.template.as_deref(), timestamp.unwrap_or_default(), request.body);
    check(secrets, text_key, scheme.algorithm, &parts, &[tag])
}

/// Signs with the generic scheme: the header value.
pub fn sign_generic(scheme: &GenericHmac, secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let parts = parts(scheme.template.as_deref(), timestamp, body);
    let tag = scheme.algorithm.sign(secret, &parts);
    format!(
        "{}{}",
        scheme.prefix.as_deref().unwrap_or_default(),
        scheme.encoding.encode(&tag)
    )
}

pub(super) fn sign(scheme: &GenericHmac, secret: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
    let timestamp = request.timestamp.to_string();
    let mut headers = Vec::new();
    if let Some(name) = &scheme.timestamp_header {
        headers.push((name.clone(), timestamp.clone()));
    }
    headers.push((
        scheme.header.clone(),
        sign_generic(scheme, secret.as_bytes(), &timestamp, request.body),
    ));
    headers
}

/// The signed message as parts: the template with `{timestamp}` and `{body}` replaced, without
/// copying the body.
fn parts<'a>(template: Option<&'a str>, timestamp: &'a str, body: &'a [u8]) -> Vec<&'a [u8]> {
    let Some(mut rest) = template else {
        return vec![body];
    };
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let next = [("{timestamp}", timestamp.as_bytes()), ("{body}", body)]
            .into_iter()
            .filter_map(|(placeholder, value)| rest.find(placeholder).map(|at| (at, placeholder, value)))
            .min_by_key(|(at, _, _)| *at);
        match next {
            Some((at, placeholder, value)) => {
                parts.push(&rest.as_bytes()[..at]);
                parts.push(value);
                rest = &rest[at + placeholder.len()..];
            }
            None => {
                parts.push(rest.as_bytes());
                rest = "";
            }
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::super::{Scheme, secrets};
    use super::*;

    // Made with OpenSSL 3.0: printf '%s' '1700000000:{"a":1}' | openssl dgst -sha512 -hmac 'gen'
    #[test]
    fn the_generic_scheme_signs_a_template_with_a_timestamp() {
        let scheme = GenericHmac {
            header: "X-Signature".to_owned(),
            algorithm: Algorithm::Sha512,
            encoding: Encoding::Hex,
            prefix: Some("sha512=".to_owned()),
            template: Some("{timestamp}:{body}".to_owned()),
            timestamp_header: Some("X-Timestamp".to_owned()),
        };
        let expected = "sha512=7850a90a714df0e2dd31a3f2dca500061a64ae7b9853cb0abfd59e8855f9e0f9c914333940ef60118fffb735f18b2543bf40f6408bdd44b727ea186baa527722";
        assert_eq!(sign_generic(&scheme, b"gen", "1700000000", br#"{"a":1}"#), expected);
        let verify = |signature: &str, timestamp: &str, now: i64| {
            let headers: &[(&str, &str)] = &[("x-signature", signature), ("x-timestamp", timestamp)];
            Scheme::Hmac(scheme.clone()).verify(&secrets(&["gen"]), headers, br#"{"a":1}"#, now, 60)
        };
        assert_eq!(
            verify(expected, "1700000000", 1_700_000_030),
            Ok(Verified { secret_index: 0 })
        );
        assert_eq!(verify(expected, "1700000000", 1_700_000_061), Err(Rejection::Stale));
        assert_eq!(verify(expected, "1700000001", 1_700_000_000), Err(Rejection::Mismatch));
        assert_eq!(
            verify(expected.trim_start_matches("sha512="), "1700000000", 1_700_000_000),
            Err(Rejection::Malformed)
        );
    }

    #[test]
    fn generic_templates_split_around_placeholders() {
        let split = parts(Some("v0:{timestamp}:{body}!"), "12", b"B");
        assert_eq!(split, vec![&b"v0:"[..], b"12", b":", b"B", b"!"]);
        assert_eq!(parts(None, "12", b"B"), vec![&b"B"[..]]);
    }
}
