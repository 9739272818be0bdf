//! Mailgun: the signature is in the body. A JSON webhook carries
//! `{"signature": {"timestamp": "…", "token": "…", "signature": "<hex>"}, "event-data": {…}}`;
//! a legacy form webhook the fields `timestamp`, `token` and `signature`. The signature is the
//! hex HMAC-SHA256 of `{timestamp}{token}` under the webhook signing key; the timestamp is held
//! to the tolerance. Only those fields are read before the signature is checked.

use serde::Deserialize;

use super::{Algorithm, Family, Keys, Place, Places, Rejection, Signed, ToSign, Verified, check, text_key};

pub(super) const FAMILY: Family = Family::new(
    "mailgun",
    Places {
        delivery_id: Some(Place::Json("/event-data/id")),
        event_type: Some(Place::Json("/event-data/event")),
    },
    Places {
        delivery_id: None,
        event_type: Some(Place::Form("event")),
    },
    verify,
    sign,
);

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    signature: Fields<'a>,
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    timestamp: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    token: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    signature: std::borrow::Cow<'a, str>,
}

/// The signature fields of a JSON body, else of a form body.
fn fields(body: &[u8]) -> Option<(String, String, String)> {
    if let Ok(json) = serde_json::from_slice::<Body<'_>>(body) {
        let Fields {
            timestamp,
            token,
            signature,
        } = json.signature;
        return Some((timestamp.into_owned(), token.into_owned(), signature.into_owned()));
    }
    let text = std::str::from_utf8(body).ok()?;
    if text.trim_start().starts_with('{') {
        return None;
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    let field = |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    Some((field("timestamp")?, field("token")?, field("signature")?))
}

fn verify(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    let (timestamp, token, signature) = fields(request.body).ok_or(Rejection::Missing)?;
    let tag = hex::decode(signature.trim()).map_err(|_| Rejection::Malformed)?;
    request.timestamp(&timestamp)?;
    check(
        &keys.secrets,
        text_key,
        Algorithm::Sha256,
        &[timestamp.as_bytes(), token.as_bytes()],
        &[tag],
    )
}

/// Mailgun signs in the body, which the sender builds: no headers (see [`mailgun_signature`]).
fn sign(_secret: &str, _request: &ToSign<'_>) -> Vec<(String, String)> {
    Vec::new()
}

/// The `signature` object Mailgun puts in a JSON body signed at `timestamp` with `token`.
pub fn mailgun_signature(secret: &str, timestamp: i64, token: &str) -> serde_json::Value {
    let timestamp = timestamp.to_string();
    let tag = Algorithm::Sha256.sign(secret.as_bytes(), &[timestamp.as_bytes(), token.as_bytes()]);
    serde_json::json!({ "timestamp": timestamp, "token": token, "signature": hex::encode(tag) })
}

#[cfg(test)]
mod tests {
    use super::super::{Scheme, secrets};
    use super::*;

    // Mailgun publishes no vector. Made by webhook-core/tests/vectors/derive.sh (OpenSSL).
    const TOKEN: &str = "b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7";
    const SIGNATURE: &str = "823e3d174070c43722a5d5debcae80b00325aa5643ace5c8ff74009984da724d";

    fn mailgun(body: &str, now: i64) -> Result<Verified, Rejection> {
        let headers: &[(&str, &str)] = &[];
        Scheme::Vendor(&FAMILY).verify(
            &secrets(&["old", "mailgun-signing-key"]),
            headers,
            body.as_bytes(),
            now,
            300,
        )
    }

    fn json(timestamp: &str, token: &str, signature: &str) -> String {
        format!(
            r#"{{"signature":{{"timestamp":"{timestamp}","token":"{token}","signature":"{signature}"}},"event-data":{{"id":"e1","event":"delivered"}}}}"#
        )
    }

    #[test]
    fn the_derived_vector_is_accepted_in_json_and_form_bodies() {
        assert_eq!(
            mailgun(&json("1700000000", TOKEN, SIGNATURE), 1_700_000_100),
            Ok(Verified { secret_index: 1 })
        );
        let form = format!("timestamp=1700000000&token={TOKEN}&signature={SIGNATURE}&event=delivered");
        assert_eq!(mailgun(&form, 1_700_000_100), Ok(Verified { secret_index: 1 }));
        assert_eq!(
            mailgun_signature("mailgun-signing-key", 1_700_000_000, TOKEN)["signature"],
            SIGNATURE
        );
    }

    #[test]
    fn a_changed_field_a_stale_timestamp_or_no_signature_is_refused() {
        assert_eq!(
            mailgun(&json("1700000001", TOKEN, SIGNATURE), 1_700_000_000),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            mailgun(&json("1700000000", &TOKEN.replace('b', "c"), SIGNATURE), 1_700_000_000),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            mailgun(&json("1700000000", TOKEN, SIGNATURE), 1_700_000_301),
            Err(Rejection::Stale)
        );
        assert_eq!(
            mailgun(&json("1700000000", TOKEN, "zz"), 1_700_000_000),
            Err(Rejection::Malformed)
        );
        assert_eq!(
            mailgun(r#"{"event-data":{"id":"e1"}}"#, 1_700_000_000),
            Err(Rejection::Missing)
        );
        assert_eq!(mailgun("not json, not a form", 1_700_000_000), Err(Rejection::Missing));
    }
}
