//! Xero: `x-xero-signature` is the base64 HMAC-SHA256 of the raw body under the webhook key.
//! Xero proves a URL with "Intent to Receive" requests: some correctly signed, some not, each
//! a payload with no events, to be answered within 5 seconds with 200 and an empty body when
//! signed and 401 with an empty body when not. Every bad signature gets the empty 401, and a
//! signed payload without events is answered 200 empty and not stored.

use super::body_hmac::preset;
use super::{Answer, Answers, Challenge, Encoding, Family, GenericHmac, Handshake, Places};

preset!(
    FAMILY_BASE,
    "xero",
    GenericHmac {
        encoding: Encoding::Base64,
        ..GenericHmac::new("x-xero-signature")
    },
    // A batch of events: no id of its own, no type of its own.
    Places::NOWHERE,
    Places::NOWHERE
);

pub(super) const FAMILY: Family = Family {
    handshake: Some(Handshake {
        name: "intent_to_receive",
        pointers: &["/events", "/events/0"],
        answer: intent_to_receive,
    }),
    answers: Answers {
        accepted: None,
        empty_unauthorized: true,
    },
    ..FAMILY_BASE
};

fn intent_to_receive(request: &Challenge<'_>) -> Option<Result<Answer, String>> {
    let json = request.json?;
    (json.get("/events").is_some() && json.get("/events/0").is_none()).then(|| Ok(Answer::empty()))
}

#[cfg(test)]
mod tests {
    use super::super::{AsDyn, Rejection, Scheme, Verified, secrets};
    use super::*;
    use crate::payload::read_json;

    // Xero publishes no vector. Made by webhook-core/tests/vectors/derive.sh (OpenSSL).
    #[test]
    fn the_derived_vector_is_accepted() {
        let body = br#"{"id":"evt_1","type":"push"}"#;
        let verify = |signature: &str| {
            let headers: &[(&str, &str)] = &[("x-xero-signature", signature)];
            Scheme::Vendor(&FAMILY).verify(&secrets(&["vendor-secret"]), headers, body, 0, 300)
        };
        assert_eq!(
            verify("wC3ghfGvUSD7P/HruQQ/LkHQpX86R23J4mJup8ZJdiA="),
            Ok(Verified { secret_index: 0 })
        );
        assert_eq!(
            verify("wC3ghfGvUSD7P/HruQQ/LkHQpX86R23J4mJup8ZJdiB="),
            Err(Rejection::Malformed)
        );
        assert_eq!(
            verify("xC3ghfGvUSD7P/HruQQ/LkHQpX86R23J4mJup8ZJdiA="),
            Err(Rejection::Mismatch)
        );
    }

    #[test]
    fn a_payload_without_events_is_the_intent_to_receive() {
        let headers: &[(&str, &str)] = &[];
        let answer = |body: &[u8]| {
            let json = read_json(body, &["/events", "/events/0"]).unwrap();
            intent_to_receive(&Challenge {
                headers: &AsDyn(headers),
                json: Some(&json),
                secret: None,
            })
        };
        let itr = br#"{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"YSXCMKAQBJOEMGUZEPFZ"}"#;
        assert_eq!(answer(itr), Some(Ok(Answer::empty())));
        let event = br#"{"events":[{"resourceId":"r1","eventCategory":"INVOICE","eventType":"UPDATE"}],"firstEventSequence":1,"lastEventSequence":1,"entropy":"X"}"#;
        assert_eq!(answer(event), None);
    }
}
