//! Twilio: `X-Twilio-Signature` is the base64 HMAC-SHA1, under the account's auth token, of the
//! URL Twilio posted to (with its query string) followed by every form parameter of the body,
//! sorted by name, as name and value with nothing between. A JSON body is not in the signed
//! string: the URL carries `bodySHA256`, the hex SHA-256 of the body, which must match it.
//!
//! The URL is the source's `url` with the request's query string: the handler behind a proxy
//! does not see the scheme and host Twilio used.

use sha2::{Digest as _, Sha256};

use super::{Algorithm, Encoding, Family, Keys, Place, Places, Rejection, Signed, ToSign, Verified, check, text_key};

/// Twilio's header.
pub const TWILIO_SIGNATURE: &str = "X-Twilio-Signature";

pub(super) const FAMILY: Family = Family {
    signs_url: true,
    ..Family::new(
        "twilio",
        Places {
            delivery_id: Some(Place::Header("I-Twilio-Idempotency-Token")),
            event_type: None,
        },
        Places {
            delivery_id: Some(Place::Header("I-Twilio-Idempotency-Token")),
            event_type: None,
        },
        verify,
        sign,
    )
};

/// The `bodySHA256` of a URL's query string, if it has one.
fn body_hash(url: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "bodySHA256")
        .map(|(_, value)| value.into_owned())
}

/// The signed string's parts after the URL: the form's parameters sorted by name (and, for a
/// name given twice, by value), each name then value. A JSON body has none.
fn parameters(url: &str, body: &[u8]) -> Vec<(String, String)> {
    if body_hash(url).is_some() {
        return Vec::new();
    }
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    pairs.sort();
    pairs
}

fn verify(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    let header = request.header(TWILIO_SIGNATURE)?;
    let tag = Encoding::Base64.decode(header.trim()).ok_or(Rejection::Malformed)?;
    let url = request.url();
    if let Some(expected) = body_hash(url) {
        // Public data, so no constant-time compare is needed: the signature decides.
        if !expected.eq_ignore_ascii_case(&hex::encode(Sha256::digest(request.body))) {
            return Err(Rejection::Mismatch);
        }
    }
    let pairs = parameters(url, request.body);
    let mut parts: Vec<&[u8]> = vec![url.as_bytes()];
    for (name, value) in &pairs {
        parts.push(name.as_bytes());
        parts.push(value.as_bytes());
    }
    check(&keys.secrets, text_key, Algorithm::Sha1, &parts, &[tag])
}

/// Signs like Twilio; a JSON body's URL must carry its `bodySHA256` already (see
/// [`twilio_json_url`]).
fn sign(secret: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
    let url = request.url.unwrap_or_default();
    let pairs = parameters(url, request.body);
    let mut parts: Vec<&[u8]> = vec![url.as_bytes()];
    for (name, value) in &pairs {
        parts.push(name.as_bytes());
        parts.push(value.as_bytes());
    }
    let tag = Algorithm::Sha1.sign(secret.as_bytes(), &parts);
    vec![(TWILIO_SIGNATURE.to_owned(), Encoding::Base64.encode(&tag))]
}

/// The URL Twilio posts a JSON `body` to: `url` with `bodySHA256` added to its query.
pub fn twilio_json_url(url: &str, body: &[u8]) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}bodySHA256={}", hex::encode(Sha256::digest(body)))
}

#[cfg(test)]
mod tests {
    use super::super::{Request, Scheme, secrets};
    use super::*;

    fn twilio(url: &str, signature: &str, body: &[u8]) -> Result<Verified, Rejection> {
        let headers: &[(&str, &str)] = &[(TWILIO_SIGNATURE, signature)];
        let request = Request {
            headers: &super::super::AsDyn(headers),
            body,
            method: "POST",
            url: Some(url),
            webhook_id: None,
            now: 0,
            tolerance: 300,
        };
        Scheme::Vendor(&FAMILY).verify_request(&super::super::Keys::secrets(&secrets(&["other", "12345"])), &request)
    }

    // Twilio's published example (twilio-node's and its docs' "Validating signatures"): auth
    // token 12345, the URL with its query, these parameters.
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const FORM: &[u8] =
        b"CallSid=CA1234567890ABCDE&Caller=%2B14158675310&Digits=1234&From=%2B14158675310&To=%2B18005551212";

    #[test]
    fn twilios_published_form_example_is_accepted_in_any_parameter_order() {
        assert_eq!(
            twilio(URL, "GvWf1cFY/Q7PnoempGyD5oXAezc=", FORM),
            Ok(Verified { secret_index: 1 })
        );
        let shuffled =
            b"To=%2B18005551212&Digits=1234&CallSid=CA1234567890ABCDE&From=%2B14158675310&Caller=%2B14158675310";
        assert_eq!(
            twilio(URL, "GvWf1cFY/Q7PnoempGyD5oXAezc=", shuffled),
            Ok(Verified { secret_index: 1 })
        );
        assert_eq!(
            twilio(
                URL,
                "GvWf1cFY/Q7PnoempGyD5oXAezc=",
                b"CallSid=CA1234567890ABCDE&Digits=9999"
            ),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            twilio(
                "https://mycompany.com/myapp.php?foo=1&bar=3",
                "GvWf1cFY/Q7PnoempGyD5oXAezc=",
                FORM
            ),
            Err(Rejection::Mismatch)
        );
        let signed = sign(
            "12345",
            &ToSign {
                url: Some(URL),
                ..ToSign::new("", 0, FORM)
            },
        );
        assert_eq!(
            signed,
            [(TWILIO_SIGNATURE.to_owned(), "GvWf1cFY/Q7PnoempGyD5oXAezc=".to_owned())]
        );
    }

    // Made by webhook-core/tests/vectors/derive.sh (OpenSSL): the URL with bodySHA256, signed.
    #[test]
    fn a_json_body_is_checked_against_the_urls_body_hash() {
        let body = br#"{"data":{"status":"delivered"}}"#;
        let url = "https://example.com/webhooks/twilio?bodySHA256=5c3e54ec47516cc460cfd73281cc3bd7e1d65c80ae4acdeed1fc8aa147ed87e8";
        assert_eq!(twilio_json_url("https://example.com/webhooks/twilio", body), url);
        assert_eq!(
            twilio(url, "mZlV1VY7vLfe9my5gVJ2gp+3mn4=", body),
            Ok(Verified { secret_index: 1 })
        );
        assert_eq!(
            twilio(url, "mZlV1VY7vLfe9my5gVJ2gp+3mn4=", br#"{"data":{"status":"failed"}}"#),
            Err(Rejection::Mismatch)
        );
        assert_eq!(twilio(url, "not base64", body), Err(Rejection::Malformed));
    }
}
