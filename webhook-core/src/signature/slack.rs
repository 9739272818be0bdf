//! Slack: `X-Slack-Signature: v0=<hex>`, the HMAC-SHA256 of
//! `"v0:{X-Slack-Request-Timestamp}:{body}"`; the Events API's `url_verification` handshake.

use super::{
    Algorithm, Answer, Challenge, Family, Handshake, Keys, Place, Places, Rejection, Signed, ToSign, Verified, check,
    text_key,
};

/// Slack's signature header.
pub const SLACK_SIGNATURE: &str = "X-Slack-Signature";
/// Slack's timestamp header.
pub const SLACK_TIMESTAMP: &str = "X-Slack-Request-Timestamp";

pub(super) const FAMILY: Family = Family {
    // Sent when an Events API URL is configured.
    handshake: Some(Handshake {
        name: "url_verification",
        pointers: &["/challenge"],
        answer: url_verification,
    }),
    ..Family::new(
        "slack",
        Places {
            delivery_id: Some(Place::Json("/event_id")),
            event_type: Some(Place::Json("/type")),
        },
        // Slash commands: a unique `trigger_id` and the `command`.
        Places {
            delivery_id: Some(Place::Form("trigger_id")),
            event_type: Some(Place::Form("command")),
        },
        verify,
        sign,
    )
};

/// The Events API's `url_verification`: `{"challenge": …}` back.
fn url_verification(request: &Challenge<'_>) -> Option<Result<Answer, String>> {
    let json = request.json?;
    if json.text("/type").as_deref() != Some("url_verification") {
        return None;
    }
    Some(
        json.text("/challenge")
            .map(|challenge| Answer::json(&serde_json::json!({ "challenge": challenge })))
            .ok_or_else(|| "url_verification without a challenge".to_owned()),
    )
}

fn verify(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    let signature = request.header(SLACK_SIGNATURE)?;
    let timestamp = request.header(SLACK_TIMESTAMP)?;
    let tag = signature
        .trim()
        .strip_prefix("v0=")
        .and_then(|digits| hex::decode(digits).ok())
        .ok_or(Rejection::Malformed)?;
    request.timestamp(timestamp)?;
    let timestamp = timestamp.trim();
    check(
        &keys.secrets,
        text_key,
        Algorithm::Sha256,
        &[b"v0:", timestamp.as_bytes(), b":", request.body],
        &[tag],
    )
}

/// Signs like Slack: the `X-Slack-Signature` value.
pub fn sign_slack(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let tag = Algorithm::Sha256.sign(secret, &[b"v0:", timestamp.as_bytes(), b":", body]);
    format!("v0={}", hex::encode(tag))
}

fn sign(secret: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
    vec![
        (SLACK_TIMESTAMP.to_owned(), request.timestamp.to_string()),
        (
            SLACK_SIGNATURE.to_owned(),
            sign_slack(secret.as_bytes(), request.timestamp, request.body),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::{Scheme, secrets};
    use super::*;

    // Slack's published example ("Verifying requests from Slack").
    const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const SLACK_TIMESTAMP_VALUE: &str = "1531420618";
    const SLACK_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SLACK_EXPECTED: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slacks_published_example_is_accepted() {
        let headers: &[(&str, &str)] = &[
            (SLACK_SIGNATURE, SLACK_EXPECTED),
            (SLACK_TIMESTAMP, SLACK_TIMESTAMP_VALUE),
        ];
        let now = 1_531_420_618 + 10;
        let verified = Scheme::SLACK.verify(&secrets(&[SLACK_SECRET]), headers, SLACK_BODY.as_bytes(), now, 300);
        assert_eq!(verified, Ok(Verified { secret_index: 0 }));
        assert_eq!(
            sign_slack(SLACK_SECRET.as_bytes(), 1_531_420_618, SLACK_BODY.as_bytes()),
            SLACK_EXPECTED
        );
    }

    #[test]
    fn slack_rejects_stale_tampered_and_malformed_requests() {
        let slack = |signature: &str, timestamp: &str, body: &str, now: i64| {
            let headers: &[(&str, &str)] = &[(SLACK_SIGNATURE, signature), (SLACK_TIMESTAMP, timestamp)];
            Scheme::SLACK.verify(&secrets(&[SLACK_SECRET]), headers, body.as_bytes(), now, 300)
        };
        let then = 1_531_420_618;
        assert_eq!(
            slack(SLACK_EXPECTED, SLACK_TIMESTAMP_VALUE, SLACK_BODY, then + 301),
            Err(Rejection::Stale)
        );
        assert_eq!(
            slack(SLACK_EXPECTED, SLACK_TIMESTAMP_VALUE, SLACK_BODY, then - 301),
            Err(Rejection::Stale)
        );
        assert_eq!(
            slack(SLACK_EXPECTED, SLACK_TIMESTAMP_VALUE, "token=x", then),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            slack("v1=abcd", SLACK_TIMESTAMP_VALUE, SLACK_BODY, then),
            Err(Rejection::Malformed)
        );
        assert_eq!(
            slack(SLACK_EXPECTED, "yesterday", SLACK_BODY, then),
            Err(Rejection::Malformed)
        );
    }
}
