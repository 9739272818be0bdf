//! Discord interactions: `X-Signature-Ed25519` is the hex Ed25519 signature, by the
//! application's key, of `{X-Signature-Timestamp}{body}`; the application's public key (hex,
//! from its settings) verifies it. A PING (`"type": 1`) is answered, once signed, with
//! `{"type":1}`; Discord also sends requests with bad signatures on purpose and removes an
//! endpoint that does not refuse them with 401. Every other interaction is queued and answered
//! `{"type":5}` (a deferred response: what answers the user comes later, through the
//! interaction's token), since Discord wants an interaction response, not a receipt.

use super::keys::{check_public, private};
use super::{
    Answer, Answers, Challenge, Family, Handshake, KeyKind, Keys, Place, Places, PublicKey, Rejection, Signed, ToSign,
    Verified,
};

/// Discord's signature header.
pub const DISCORD_SIGNATURE: &str = "X-Signature-Ed25519";
/// Discord's timestamp header.
pub const DISCORD_TIMESTAMP: &str = "X-Signature-Timestamp";

pub(super) const FAMILY: Family = Family {
    keys: KeyKind::PublicKeys(PublicKey::ed25519_hex),
    handshake: Some(Handshake {
        name: "ping",
        pointers: &[],
        answer: ping,
    }),
    answers: Answers {
        accepted: Some(("application/json", r#"{"type":5}"#)),
        empty_unauthorized: false,
    },
    ..Family::new(
        "discord",
        Places {
            delivery_id: Some(Place::Json("/id")),
            event_type: Some(Place::Json("/type")),
        },
        Places::NOWHERE,
        verify,
        sign,
    )
};

fn ping(request: &Challenge<'_>) -> Option<Result<Answer, String>> {
    let kind = request.json?.get("/type")?;
    (kind.get() == "1").then(|| Ok(Answer::json(&serde_json::json!({ "type": 1 }))))
}

fn verify(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    let signature = request.header(DISCORD_SIGNATURE)?;
    let timestamp = request.header(DISCORD_TIMESTAMP)?;
    let signature = hex::decode(signature.trim()).map_err(|_| Rejection::Malformed)?;
    check_public(&keys.public, &[timestamp.as_bytes(), request.body], &[signature])
}

/// Signs with the hex seed of an Ed25519 key.
fn sign(seed: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
    let timestamp = request.timestamp.to_string();
    let signature = private::ed25519(seed, &[timestamp.as_bytes(), request.body].concat()).map(hex::encode);
    vec![
        (DISCORD_TIMESTAMP.to_owned(), timestamp),
        (DISCORD_SIGNATURE.to_owned(), signature.unwrap_or_default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::{AsDyn, Request, Scheme};
    use super::*;

    // Discord publishes no vector. Made by webhook-core/tests/vectors/derive.sh: OpenSSL signs
    // with the Ed25519 key whose seed is keys/ed25519.seed.
    const PUBLIC_KEY: &str = "44619b01692cf01a21a0c222f985aa72104e92b3f6828cfdedc3968889e7b1ba";
    const BODY: &[u8] = br#"{"id":"1180000000000000000","type":1}"#;
    const SIGNATURE: &str = "fe9cd6cec8e78f14eb811d0a42c9303328216ab04dad40825977e6ed305a09bd98a3aa3de85d1ce68edcf9721a96134b32c1c4ff9e102ce0e4ca34ddeaf9f50b";

    fn discord(signature: &str, timestamp: &str, body: &[u8]) -> Result<Verified, Rejection> {
        let keys = Keys {
            secrets: Vec::new(),
            public: vec![PublicKey::ed25519_hex(PUBLIC_KEY).unwrap()],
        };
        let headers: &[(&str, &str)] = &[(DISCORD_SIGNATURE, signature), (DISCORD_TIMESTAMP, timestamp)];
        let request = Request {
            headers: &AsDyn(headers),
            body,
            method: "POST",
            url: None,
            webhook_id: None,
            now: 0,
            tolerance: 300,
        };
        Scheme::Vendor(&FAMILY).verify_request(&keys, &request)
    }

    #[test]
    fn the_derived_vector_is_accepted_and_any_change_refused() {
        assert_eq!(discord(SIGNATURE, "1700000000", BODY), Ok(Verified { secret_index: 0 }));
        assert_eq!(discord(SIGNATURE, "1700000001", BODY), Err(Rejection::Mismatch));
        assert_eq!(
            discord(SIGNATURE, "1700000000", br#"{"id":"1180000000000000000","type":2}"#),
            Err(Rejection::Mismatch)
        );
        let flipped = format!("{}0", &SIGNATURE[..127]);
        assert_eq!(discord(&flipped, "1700000000", BODY), Err(Rejection::Mismatch));
        assert_eq!(discord("zz", "1700000000", BODY), Err(Rejection::Malformed));
        assert_eq!(discord(&SIGNATURE[..64], "1700000000", BODY), Err(Rejection::Mismatch));
        let seed = include_str!("../../tests/vectors/keys/ed25519.seed");
        let signed = sign(seed, &ToSign::new("", 1_700_000_000, BODY));
        assert_eq!(signed[1].1, SIGNATURE, "Ed25519 is deterministic");
    }

    #[test]
    fn keys_that_are_not_ed25519_are_refused_at_start() {
        assert!(PublicKey::ed25519_hex("zz").is_err());
        assert!(PublicKey::ed25519_hex(&PUBLIC_KEY[..62]).is_err());
    }
}
