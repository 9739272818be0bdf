//! Twitch EventSub: `Twitch-Eventsub-Message-Signature: sha256=<hex>`, the HMAC-SHA256 of
//! `{Twitch-Eventsub-Message-Id}{Twitch-Eventsub-Message-Timestamp}{body}` (the timestamp in
//! RFC 3339 as sent); Twitch tells receivers to refuse messages older than 10 minutes. A
//! `webhook_callback_verification` message is answered, once signed, with its raw `challenge`
//! as `text/plain`.

use super::body_hmac::preset;
use super::{Answer, Challenge, Family, GenericHmac, Handshake, Place, Places, TimestampFormat};

/// The header that says what kind of message it is.
pub const TWITCH_MESSAGE_TYPE: &str = "Twitch-Eventsub-Message-Type";

preset!(
    FAMILY_BASE,
    "twitch",
    GenericHmac {
        prefix: Some("sha256=".to_owned()),
        template: Some("{id}{timestamp}{body}".to_owned()),
        id_header: Some("Twitch-Eventsub-Message-Id".to_owned()),
        timestamp_header: Some("Twitch-Eventsub-Message-Timestamp".to_owned()),
        timestamp_format: TimestampFormat::Rfc3339,
        ..GenericHmac::new("Twitch-Eventsub-Message-Signature")
    },
    Places {
        delivery_id: Some(Place::Header("Twitch-Eventsub-Message-Id")),
        event_type: Some(Place::Header("Twitch-Eventsub-Subscription-Type")),
    },
    Places::NOWHERE
);

pub(super) const FAMILY: Family = Family {
    tolerance_secs: Some(600),
    handshake: Some(Handshake {
        name: "webhook_callback_verification",
        pointers: &["/challenge"],
        answer: callback_verification,
    }),
    ..FAMILY_BASE
};

fn callback_verification(request: &Challenge<'_>) -> Option<Result<Answer, String>> {
    if request.headers.get(TWITCH_MESSAGE_TYPE) != Some("webhook_callback_verification") {
        return None;
    }
    Some(
        request
            .json
            .and_then(|json| json.text("/challenge"))
            .map(Answer::text)
            .ok_or_else(|| "webhook_callback_verification without a challenge".to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::super::{Rejection, Scheme, ToSign, Verified, secrets};
    use super::*;

    // Twitch publishes no vector. Made by webhook-core/tests/vectors/derive.sh (OpenSSL).
    const ID: &str = "e76c6bd4-55c9-4987-8304-da1588d8988b";
    const TIMESTAMP: &str = "2023-11-14T22:13:20.123456789Z";
    const BODY: &[u8] = br#"{"subscription":{"type":"channel.follow"},"event":{"user_id":"1"}}"#;
    const SIGNATURE: &str = "sha256=391babb510707f3c6572a542f2073408e4be30713694988dd87b4c23bc843651";

    fn twitch(id: &str, timestamp: &str, body: &[u8], now: i64) -> Result<Verified, Rejection> {
        let headers: &[(&str, &str)] = &[
            ("Twitch-Eventsub-Message-Id", id),
            ("Twitch-Eventsub-Message-Timestamp", timestamp),
            ("Twitch-Eventsub-Message-Signature", SIGNATURE),
        ];
        Scheme::Vendor(&FAMILY).verify(&secrets(&["twitch-secret-123"]), headers, body, now, 600)
    }

    #[test]
    fn the_derived_vector_is_accepted_within_ten_minutes() {
        assert_eq!(
            twitch(ID, TIMESTAMP, BODY, 1_700_000_600),
            Ok(Verified { secret_index: 0 })
        );
        assert_eq!(twitch(ID, TIMESTAMP, BODY, 1_700_000_601), Err(Rejection::Stale));
        assert_eq!(
            twitch("e76c6bd4-55c9-4987-8304-da1588d8988c", TIMESTAMP, BODY, 1_700_000_000),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            twitch(ID, "2023-11-14T22:13:20.123456780Z", BODY, 1_700_000_000),
            Err(Rejection::Mismatch)
        );
        assert_eq!(twitch(ID, "1700000000", BODY, 1_700_000_000), Err(Rejection::Malformed));
        let signed = Scheme::Vendor(&FAMILY).sign("twitch-secret-123", &ToSign::new(ID, 1_700_000_000, BODY));
        assert_eq!(
            signed[1],
            (
                "Twitch-Eventsub-Message-Timestamp".to_owned(),
                "2023-11-14T22:13:20.000000000Z".to_owned()
            )
        );
    }
}
