//! Every vendor signature scheme, as pure functions over headers and the raw body.
//!
//! [`Scheme::verify`] is what the handler calls for a source; it tries every secret of the
//! source (rotation without downtime) and every signature the request carries, always with
//! `Mac::verify_slice` (constant time). Timestamps outside the tolerance are rejected like any
//! bad signature; the caller only ever hears "invalid signature", the reason goes to logs.

use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use crate::config::Secret;
use crate::signature::{Headers, Rejection, Verified, verify_github};

/// A MAC's hash function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1 (legacy vendors only).
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl FromStr for Algorithm {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, ()> {
        match value {
            "sha1" => Ok(Self::Sha1),
            "sha256" => Ok(Self::Sha256),
            "sha512" => Ok(Self::Sha512),
            _ => Err(()),
        }
    }
}

impl Algorithm {
    /// The MAC of the concatenation of `parts` under `key`.
    pub fn sign(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
            parts.iter().for_each(|part| mac.update(part));
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Self::Sha1 => run::<Hmac<Sha1>>(key, parts),
            Self::Sha256 => run::<Hmac<Sha256>>(key, parts),
            Self::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }

    /// Whether `tag` is the MAC of the concatenation of `parts`, compared in constant time.
    pub fn verify(self, key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
        fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
            let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
            parts.iter().for_each(|part| mac.update(part));
            mac.verify_slice(tag).is_ok()
        }
        match self {
            Self::Sha1 => run::<Hmac<Sha1>>(key, parts, tag),
            Self::Sha256 => run::<Hmac<Sha256>>(key, parts, tag),
            Self::Sha512 => run::<Hmac<Sha512>>(key, parts, tag),
        }
    }
}

/// How a generic signature header encodes the MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Lower- or upper-case hex.
    Hex,
    /// Standard base64 with padding.
    Base64,
}

impl FromStr for Encoding {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, ()> {
        match value {
            "hex" => Ok(Self::Hex),
            "base64" => Ok(Self::Base64),
            _ => Err(()),
        }
    }
}

impl Encoding {
    fn decode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            Self::Hex => hex::decode(text).ok(),
            Self::Base64 => BASE64.decode(text).ok(),
        }
    }

    /// Encodes a MAC the way the header carries it.
    pub fn encode(self, tag: &[u8]) -> String {
        match self {
            Self::Hex => hex::encode(tag),
            Self::Base64 => BASE64.encode(tag),
        }
    }
}

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

/// A source's signature scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// `X-Hub-Signature-256` / `X-Hub-Signature`.
    Github,
    /// `Stripe-Signature: t=…,v1=…`.
    Stripe,
    /// `X-Shopify-Hmac-Sha256`.
    Shopify,
    /// `X-Slack-Signature` with `X-Slack-Request-Timestamp`.
    Slack,
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    Standard,
    /// A configured header, algorithm and encoding.
    Hmac(GenericHmac),
}

/// The names accepted for [`Scheme`] in configuration.
pub const SCHEME_NAMES: &str = "github, stripe, shopify, slack, standard or hmac";

impl Scheme {
    /// The configuration name of the scheme.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Stripe => "stripe",
            Self::Shopify => "shopify",
            Self::Slack => "slack",
            Self::Standard => "standard",
            Self::Hmac(_) => "hmac",
        }
    }

    /// Verifies a request. `now` is the current Unix time in seconds and `tolerance` how far
    /// (either way) a signed timestamp may be from it.
    pub fn verify(
        &self,
        secrets: &[Secret],
        headers: &(impl Headers + ?Sized),
        body: &[u8],
        now: i64,
        tolerance: i64,
    ) -> Result<Verified, Rejection> {
        match self {
            Self::Github => verify_github(secrets, headers, body),
            Self::Stripe => verify_stripe(secrets, headers, body, now, tolerance),
            Self::Shopify => verify_shopify(secrets, headers, body),
            Self::Slack => verify_slack(secrets, headers, body, now, tolerance),
            Self::Standard => verify_standard(secrets, headers, body, now, tolerance),
            Self::Hmac(generic) => verify_generic(generic, secrets, headers, body, now, tolerance),
        }
    }
}

fn check_timestamp(text: &str, now: i64, tolerance: i64) -> Result<i64, Rejection> {
    let timestamp: i64 = text.trim().parse().map_err(|_| Rejection::Malformed)?;
    if now.abs_diff(timestamp) > tolerance.unsigned_abs() {
        Err(Rejection::Stale)
    } else {
        Ok(timestamp)
    }
}

fn first_match(secrets: &[Secret], mut matches: impl FnMut(&[u8]) -> bool) -> Result<Verified, Rejection> {
    secrets
        .iter()
        .position(|secret| matches(secret.expose().as_bytes()))
        .map(|secret_index| Verified { secret_index })
        .ok_or(Rejection::Mismatch)
}

/// Stripe's header.
pub const STRIPE_SIGNATURE: &str = "Stripe-Signature";

/// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` over `"{t}.{body}"` with the
/// secret string as the key. Entries other than `t` and `v1` (such as `v0`) are ignored, as are
/// entries without `=` and `v1` values that are not hex; without a `t` and a hex `v1` the header
/// is malformed.
pub fn verify_stripe(
    secrets: &[Secret],
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<Verified, Rejection> {
    let header = headers.get(STRIPE_SIGNATURE).ok_or(Rejection::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    // As Stripe's own libraries read it: entries other than `t` and `v1`, entries without
    // `=`, and `v1` values that are not hex (they could never match) are skipped.
    for (key, value) in header.split(',').filter_map(|item| item.trim().split_once('=')) {
        match key {
            "t" => timestamp = Some(value),
            "v1" => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(Rejection::Malformed)?;
    if signatures.is_empty() {
        return Err(Rejection::Malformed);
    }
    check_timestamp(timestamp, now, tolerance)?;
    let parts: [&[u8]; 3] = [timestamp.as_bytes(), b".", body];
    first_match(secrets, |key| {
        signatures
            .iter()
            .any(|signature| Algorithm::Sha256.verify(key, &parts, signature))
    })
}

/// Signs like Stripe: the `Stripe-Signature` value for `body` at `timestamp`.
pub fn sign_stripe(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let tag = Algorithm::Sha256.sign(secret, &[timestamp.as_bytes(), b".", body]);
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// Shopify's header.
pub const SHOPIFY_HMAC: &str = "X-Shopify-Hmac-Sha256";

/// Shopify: `X-Shopify-Hmac-Sha256` is the base64 HMAC-SHA256 of the body.
pub fn verify_shopify(
    secrets: &[Secret],
    headers: &(impl Headers + ?Sized),
    body: &[u8],
) -> Result<Verified, Rejection> {
    let header = headers.get(SHOPIFY_HMAC).ok_or(Rejection::Missing)?;
    let tag = BASE64.decode(header.trim()).map_err(|_| Rejection::Malformed)?;
    first_match(secrets, |key| Algorithm::Sha256.verify(key, &[body], &tag))
}

/// Slack's signature header.
pub const SLACK_SIGNATURE: &str = "X-Slack-Signature";
/// Slack's timestamp header.
pub const SLACK_TIMESTAMP: &str = "X-Slack-Request-Timestamp";

/// Slack: `X-Slack-Signature: v0=<hex>` over `"v0:{X-Slack-Request-Timestamp}:{body}"`.
pub fn verify_slack(
    secrets: &[Secret],
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<Verified, Rejection> {
    let signature = headers.get(SLACK_SIGNATURE).ok_or(Rejection::Missing)?;
    let timestamp = headers.get(SLACK_TIMESTAMP).ok_or(Rejection::Missing)?;
    let tag = signature
        .trim()
        .strip_prefix("v0=")
        .and_then(|digits| hex::decode(digits).ok())
        .ok_or(Rejection::Malformed)?;
    check_timestamp(timestamp, now, tolerance)?;
    let timestamp = timestamp.trim();
    let parts: [&[u8]; 4] = [b"v0:", timestamp.as_bytes(), b":", body];
    first_match(secrets, |key| Algorithm::Sha256.verify(key, &parts, &tag))
}

/// Signs like Slack: the `X-Slack-Signature` value.
pub fn sign_slack(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let tag = Algorithm::Sha256.sign(secret, &[b"v0:", timestamp.as_bytes(), b":", body]);
    format!("v0={}", hex::encode(tag))
}

/// Standard Webhooks headers.
pub const STANDARD_ID: &str = "webhook-id";
/// Standard Webhooks timestamp header.
pub const STANDARD_TIMESTAMP: &str = "webhook-timestamp";
/// Standard Webhooks signature header.
pub const STANDARD_SIGNATURE: &str = "webhook-signature";

/// The key of a Standard Webhooks secret: base64 after `whsec_` (or the whole secret when it
/// has no prefix). `None` when it is not base64.
pub fn standard_key(secret: &str) -> Option<Vec<u8>> {
    BASE64.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).ok()
}

/// Standard Webhooks: `webhook-signature` is a space-separated list of `v1,<base64>` over
/// `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed with the base64-decoded secret.
pub fn verify_standard(
    secrets: &[Secret],
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<Verified, Rejection> {
    let id = headers.get(STANDARD_ID).ok_or(Rejection::Missing)?;
    let timestamp = headers.get(STANDARD_TIMESTAMP).ok_or(Rejection::Missing)?;
    let header = headers.get(STANDARD_SIGNATURE).ok_or(Rejection::Missing)?;
    let signatures: Vec<Vec<u8>> = header
        .split_whitespace()
        .filter_map(|item| item.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
        .collect();
    if signatures.is_empty() {
        return Err(Rejection::Malformed);
    }
    check_timestamp(timestamp, now, tolerance)?;
    let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.trim().as_bytes(), b".", body];
    secrets
        .iter()
        .position(|secret| {
            standard_key(secret.expose()).is_some_and(|key| {
                signatures
                    .iter()
                    .any(|signature| Algorithm::Sha256.verify(&key, &parts, signature))
            })
        })
        .map(|secret_index| Verified { secret_index })
        .ok_or(Rejection::Mismatch)
}

/// Signs like Standard Webhooks: one `v1,<base64>` entry.
pub fn sign_standard(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = standard_key(secret)?;
    let timestamp = timestamp.to_string();
    let tag = Algorithm::Sha256.sign(&key, &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body]);
    Some(format!("v1,{}", BASE64.encode(tag)))
}

/// The generic scheme.
pub fn verify_generic(
    scheme: &GenericHmac,
    secrets: &[Secret],
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<Verified, Rejection> {
    let header = headers.get(&scheme.header).ok_or(Rejection::Missing)?.trim();
    let encoded = match &scheme.prefix {
        Some(prefix) => header.strip_prefix(prefix.as_str()).ok_or(Rejection::Malformed)?,
        None => header,
    };
    let tag = scheme.encoding.decode(encoded).ok_or(Rejection::Malformed)?;
    let timestamp = match &scheme.timestamp_header {
        Some(name) => {
            let value = headers.get(name).ok_or(Rejection::Missing)?;
            check_timestamp(value, now, tolerance)?;
            Some(value.trim())
        }
        None => None,
    };
    let parts = generic_parts(scheme.template.as_deref(), timestamp.unwrap_or_default(), body);
    first_match(secrets, |key| scheme.algorithm.verify(key, &parts, &tag))
}

/// Signs with the generic scheme: the header value.
pub fn sign_generic(scheme: &GenericHmac, secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let parts = generic_parts(scheme.template.as_deref(), timestamp, body);
    let tag = scheme.algorithm.sign(secret, &parts);
    format!(
        "{}{}",
        scheme.prefix.as_deref().unwrap_or_default(),
        scheme.encoding.encode(&tag)
    )
}

/// The signed message as parts: the template with `{timestamp}` and `{body}` replaced, without
/// copying the body.
fn generic_parts<'a>(template: Option<&'a str>, timestamp: &'a str, body: &'a [u8]) -> Vec<&'a [u8]> {
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
    use super::*;

    fn secrets(values: &[&str]) -> Vec<Secret> {
        values.iter().map(|value| Secret::new(*value)).collect()
    }

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
        let verified = Scheme::Slack.verify(&secrets(&[SLACK_SECRET]), headers, SLACK_BODY.as_bytes(), now, 300);
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
            Scheme::Slack.verify(&secrets(&[SLACK_SECRET]), headers, body.as_bytes(), now, 300)
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

    // The Standard Webhooks reference library's own test vectors
    // (standard-webhooks/standard-webhooks, libraries/rust/src/lib.rs).
    const STANDARD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const STANDARD_ID_VALUE: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const STANDARD_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;

    #[test]
    fn standard_webhooks_reference_signature_is_reproduced_and_accepted() {
        let expected = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        assert_eq!(
            sign_standard(STANDARD_SECRET, STANDARD_ID_VALUE, 1_649_367_553, STANDARD_BODY).as_deref(),
            Some(expected)
        );
        let headers: &[(&str, &str)] = &[
            (STANDARD_ID, STANDARD_ID_VALUE),
            (STANDARD_TIMESTAMP, "1649367553"),
            (STANDARD_SIGNATURE, expected),
        ];
        let verified =
            Scheme::Standard.verify(&secrets(&[STANDARD_SECRET]), headers, STANDARD_BODY, 1_649_367_553, 300);
        assert_eq!(verified, Ok(Verified { secret_index: 0 }));
    }

    #[test]
    fn standard_webhooks_reference_negative_cases_are_rejected() {
        let now = 1_700_000_000;
        let ts = now.to_string();
        let verify = |signature: &str, timestamp: &str| {
            let headers: &[(&str, &str)] = &[
                (STANDARD_ID, STANDARD_ID_VALUE),
                (STANDARD_TIMESTAMP, timestamp),
                (STANDARD_SIGNATURE, signature),
            ];
            Scheme::Standard.verify(&secrets(&[STANDARD_SECRET]), headers, STANDARD_BODY, now, 300)
        };
        // test_no_verify
        assert_eq!(
            verify("v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=", &ts),
            Err(Rejection::Mismatch)
        );
        // test_no_verify_with_multiple_signatures
        let others = "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=";
        assert_eq!(verify(others, &ts), Err(Rejection::Mismatch));
        // test_verify_with_multiple_signatures: the right one among wrong ones passes.
        let right = sign_standard(STANDARD_SECRET, STANDARD_ID_VALUE, now, STANDARD_BODY).unwrap();
        let mixed = format!(
            "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= {right} v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE="
        );
        assert_eq!(verify(&mixed, &ts), Ok(Verified { secret_index: 0 }));
        // test_verify_incorrect_timestamp: both ways.
        assert_eq!(verify(&right, &(now - 301).to_string()), Err(Rejection::Stale));
        assert_eq!(verify(&right, &(now + 301).to_string()), Err(Rejection::Stale));
        // test_missing_headers
        let headers: &[(&str, &str)] = &[(STANDARD_ID, STANDARD_ID_VALUE), (STANDARD_SIGNATURE, &right)];
        assert_eq!(
            Scheme::Standard.verify(&secrets(&[STANDARD_SECRET]), headers, STANDARD_BODY, now, 300),
            Err(Rejection::Missing)
        );
    }

    // Stripe publishes no vectors. Made with OpenSSL 3.0:
    //   printf '%s' '1700000000.{"id":"evt_1","type":"charge.succeeded"}' \
    //     | openssl dgst -sha256 -hmac 'whsec_test_stripe'
    const STRIPE_SECRET: &str = "whsec_test_stripe";
    const STRIPE_BODY: &[u8] = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
    const STRIPE_V1: &str = "e5ae2d1aaf7191f9c3a98656906ac6e86a39addf55af2c579dc86f4fed2e2ea7";

    fn stripe(header: &str, body: &[u8], now: i64) -> Result<Verified, Rejection> {
        let headers: &[(&str, &str)] = &[(STRIPE_SIGNATURE, header)];
        Scheme::Stripe.verify(&secrets(&["old_secret", STRIPE_SECRET]), headers, body, now, 300)
    }

    #[test]
    fn stripe_accepts_the_openssl_vector_with_any_secret_and_ignores_other_versions() {
        let header = format!("t=1700000000,v1={STRIPE_V1}");
        assert_eq!(
            sign_stripe(STRIPE_SECRET.as_bytes(), 1_700_000_000, STRIPE_BODY),
            header
        );
        assert_eq!(
            stripe(&header, STRIPE_BODY, 1_700_000_005),
            Ok(Verified { secret_index: 1 })
        );
        let several = format!("t=1700000000,v0=deadbeef,v1={},v1={STRIPE_V1}", "00".repeat(32));
        assert_eq!(
            stripe(&several, STRIPE_BODY, 1_700_000_005),
            Ok(Verified { secret_index: 1 })
        );
    }

    #[test]
    fn stripe_rejects_stale_tampered_and_malformed_headers() {
        let header = format!("t=1700000000,v1={STRIPE_V1}");
        assert_eq!(stripe(&header, STRIPE_BODY, 1_700_000_301), Err(Rejection::Stale));
        assert_eq!(
            stripe(&header, br#"{"id":"evt_2"}"#, 1_700_000_000),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            stripe(&format!("v1={STRIPE_V1}"), STRIPE_BODY, 1_700_000_000),
            Err(Rejection::Malformed)
        );
        assert_eq!(
            stripe("t=1700000000,v0=abcd", STRIPE_BODY, 1_700_000_000),
            Err(Rejection::Malformed)
        );
        assert_eq!(stripe("garbage", STRIPE_BODY, 1_700_000_000), Err(Rejection::Malformed));
        assert_eq!(
            stripe("t=1700000000,v1=zz", STRIPE_BODY, 1_700_000_000),
            Err(Rejection::Malformed)
        );
        // Stray entries around a good signature do not spoil it.
        assert_eq!(
            stripe(
                &format!("t=1700000000,v1=zz,,junk,v1={STRIPE_V1},"),
                STRIPE_BODY,
                1_700_000_000
            ),
            Ok(Verified { secret_index: 1 })
        );
        let headers: &[(&str, &str)] = &[];
        assert_eq!(
            Scheme::Stripe.verify(&secrets(&[STRIPE_SECRET]), headers, STRIPE_BODY, 0, 300),
            Err(Rejection::Missing)
        );
    }

    // Shopify publishes no vectors. Made with OpenSSL 3.0:
    //   printf '%s' '{"id":1,"total_price":"10.00"}' | openssl dgst -sha256 -hmac 'shpss_test' -binary | base64
    #[test]
    fn shopify_accepts_the_openssl_vector_and_rejects_tampering() {
        let body = br#"{"id":1,"total_price":"10.00"}"#;
        let shopify = |value: &str, body: &[u8]| {
            let headers: &[(&str, &str)] = &[(SHOPIFY_HMAC, value)];
            Scheme::Shopify.verify(&secrets(&["shpss_test"]), headers, body, 0, 300)
        };
        let expected = "XOYu+xzdpO1Gq6RBYewNh5JiOgwmx0YUR351vB3TK+0=";
        assert_eq!(shopify(expected, body), Ok(Verified { secret_index: 0 }));
        assert_eq!(
            shopify(expected, br#"{"id":1,"total_price":"99.00"}"#),
            Err(Rejection::Mismatch)
        );
        assert_eq!(shopify("not base64!", body), Err(Rejection::Malformed));
    }

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
        let parts = generic_parts(Some("v0:{timestamp}:{body}!"), "12", b"B");
        assert_eq!(parts, vec![&b"v0:"[..], b"12", b":", b"B", b"!"]);
        assert_eq!(generic_parts(None, "12", b"B"), vec![&b"B"[..]]);
    }

    proptest::proptest! {
        #[test]
        fn no_header_value_or_body_makes_any_scheme_panic(
            signature in ".{0,200}",
            timestamp in "-?[0-9]{1,19}|.{0,20}",
            id in ".{0,40}",
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
            now in proptest::num::i64::ANY,
        ) {
            let generic = GenericHmac {
                header: "X-Signature".to_owned(),
                algorithm: Algorithm::Sha256,
                encoding: Encoding::Base64,
                prefix: Some("v1=".to_owned()),
                template: Some("{timestamp}.{body}".to_owned()),
                timestamp_header: Some("X-Timestamp".to_owned()),
            };
            let headers: &[(&str, &str)] = &[
                ("X-Hub-Signature-256", &signature),
                ("X-Hub-Signature", &signature),
                (STRIPE_SIGNATURE, &signature),
                (SHOPIFY_HMAC, &signature),
                (SLACK_SIGNATURE, &signature),
                (SLACK_TIMESTAMP, &timestamp),
                (STANDARD_ID, &id),
                (STANDARD_TIMESTAMP, &timestamp),
                (STANDARD_SIGNATURE, &signature),
                ("X-Signature", &signature),
                ("X-Timestamp", &timestamp),
            ];
            let keys = secrets(&["k", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "not base64 !"]);
            for scheme in [Scheme::Github, Scheme::Stripe, Scheme::Shopify, Scheme::Slack, Scheme::Standard, Scheme::Hmac(generic.clone())] {
                // Random input is never a valid signature.
                proptest::prop_assert!(scheme.verify(&keys, headers, &body, now, 300).is_err());
            }
        }

        /// Random text seldom has the shape of a signature header, so here the headers are
        /// well formed (a fresh timestamp, MACs of any length in the right encoding, stray
        /// entries around them) and reach the MAC comparison of every scheme.
        #[test]
        fn well_formed_headers_with_wrong_macs_are_refused_without_panics(
            now in 0i64..4_000_000_000,
            mac in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
            stray in "[a-z0-9=,. ]{0,20}",
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
        ) {
            let (hex, base64) = (hex::encode(&mac), BASE64.encode(&mac));
            let timestamp = now.to_string();
            let github = format!("sha256={hex}");
            let stripe = format!("t={now},{stray},v1={hex}");
            let slack = format!("v0={hex}");
            let standard = format!("{stray} v1,{base64}");
            let generic_signature = format!("v1={base64}");
            let generic = GenericHmac {
                header: "X-Signature".to_owned(),
                algorithm: Algorithm::Sha512,
                encoding: Encoding::Base64,
                prefix: Some("v1=".to_owned()),
                template: Some("{timestamp}.{body}".to_owned()),
                timestamp_header: Some("X-Timestamp".to_owned()),
            };
            let headers: &[(&str, &str)] = &[
                ("X-Hub-Signature-256", &github),
                (STRIPE_SIGNATURE, &stripe),
                (SHOPIFY_HMAC, &base64),
                (SLACK_SIGNATURE, &slack),
                (SLACK_TIMESTAMP, &timestamp),
                (STANDARD_ID, "msg_1"),
                (STANDARD_TIMESTAMP, &timestamp),
                (STANDARD_SIGNATURE, &standard),
                ("X-Signature", &generic_signature),
                ("X-Timestamp", &timestamp),
            ];
            let keys = secrets(&["k", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]);
            for scheme in [Scheme::Github, Scheme::Stripe, Scheme::Shopify, Scheme::Slack, Scheme::Standard, Scheme::Hmac(generic)] {
                let verified = scheme.verify(&keys, headers, &body, now, 300);
                proptest::prop_assert!(
                    matches!(verified, Err(Rejection::Mismatch | Rejection::Malformed)),
                    "{}: {verified:?}", scheme.name()
                );
            }
        }
    }
}
