//! Signature schemes: pure functions over the raw body bytes and the request headers.
//!
//! Nothing here does I/O or parses a body: the handler verifies a signature before it looks at
//! the body in any other way. Each vendor family is one file with its verification, its signing
//! (for loadgen and the tests), its defaults and its published vectors, and one row of
//! [`FAMILIES`]; `hmac` is the configurable scheme for vendors with their own convention. Every
//! family computes its MACs through [`check`] and every comparison of a computed MAC with a
//! presented one goes through `Mac::verify_slice`, which is constant time.
//!
//! Adding a vendor is a file here (a [`Family`] with its tests) and a row in [`FAMILIES`].

mod github;
mod hmac;
mod shopify;
mod slack;
mod standard;
mod stripe;

use ::hmac::{Hmac, KeyInit, Mac};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use crate::config::Secret;

pub use github::{HUB_SIGNATURE, HUB_SIGNATURE_256, HubSignature, sign_github};
pub use hmac::{GenericHmac, sign_generic};
pub use shopify::SHOPIFY_HMAC;
pub use slack::{SLACK_SIGNATURE, SLACK_TIMESTAMP, sign_slack};
pub use standard::{STANDARD_ID, STANDARD_SIGNATURE, STANDARD_TIMESTAMP, sign_standard, standard_key};
pub use stripe::{STRIPE_SIGNATURE, sign_stripe};

/// Every vendor family, one row each: what `scheme = "…"` may name besides `hmac`.
pub const FAMILIES: &[Family] = &[
    github::FAMILY,
    stripe::FAMILY,
    shopify::FAMILY,
    slack::FAMILY,
    standard::FAMILY,
];

/// Case-insensitive access to request headers, so this module needs no HTTP framework.
pub trait Headers {
    /// The bytes of header `name` if present (the first, if it is there twice).
    fn raw(&self, name: &str) -> Option<&[u8]>;

    /// The value of header `name` if present and valid UTF-8. A header that is present but
    /// not UTF-8 is `None` here; [`Headers::raw`] tells the two apart.
    fn get(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.raw(name)?).ok()
    }
}

impl Headers for [(&str, &str)] {
    fn raw(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_bytes())
    }
}

/// Any `Headers`, sized, so it can be passed on as `&dyn Headers`.
struct AsDyn<'a, H: ?Sized>(&'a H);

impl<H: Headers + ?Sized> Headers for AsDyn<'_, H> {
    fn raw(&self, name: &str) -> Option<&[u8]> {
        self.0.raw(name)
    }
}

/// A request as a family's verification sees it.
pub(crate) struct Signed<'a> {
    headers: &'a dyn Headers,
    /// The raw body.
    pub(crate) body: &'a [u8],
    now: i64,
    tolerance: i64,
}

impl Signed<'_> {
    /// Whether header `name` is there at all.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.headers.raw(name).is_some()
    }

    /// A header the scheme needs: absent is [`Rejection::Missing`], present but not UTF-8
    /// [`Rejection::Malformed`].
    pub(crate) fn header(&self, name: &str) -> Result<&str, Rejection> {
        let raw = self.headers.raw(name).ok_or(Rejection::Missing)?;
        std::str::from_utf8(raw).map_err(|_| Rejection::Malformed)
    }

    /// A signed Unix timestamp, refused when more than the tolerance from now.
    pub(crate) fn timestamp(&self, text: &str) -> Result<i64, Rejection> {
        let timestamp: i64 = text.trim().parse().map_err(|_| Rejection::Malformed)?;
        if self.now.abs_diff(timestamp) > self.tolerance.unsigned_abs() {
            Err(Rejection::Stale)
        } else {
            Ok(timestamp)
        }
    }
}

/// Why a request's signature was not accepted. Never told to the caller (who only hears
/// "invalid signature"); it goes to logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No signature header at all.
    #[error("signature header missing")]
    Missing,
    /// A signature header that cannot be parsed.
    #[error("signature header malformed")]
    Malformed,
    /// A well-formed signature that no configured secret produces.
    #[error("signature does not match")]
    Mismatch,
    /// A signed timestamp too far from now (a replay, or a badly wrong clock).
    #[error("signed timestamp outside the tolerance")]
    Stale,
}

impl Rejection {
    /// A short, stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Missing => "signature_missing",
            Rejection::Malformed => "signature_malformed",
            Rejection::Mismatch => "signature_mismatch",
            Rejection::Stale => "timestamp_out_of_tolerance",
        }
    }
}

/// A request whose signature was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Which of the source's secrets matched (0 = the first), so an operator can tell when
    /// an old secret is no longer used and can be retired.
    pub secret_index: usize,
}

/// Where a vendor puts a value in its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A request header.
    Header(&'static str),
    /// A JSON pointer into the body.
    Json(&'static str),
    /// A field of a form-encoded body.
    Form(&'static str),
}

/// Where a vendor puts its delivery id and event type, for one body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Places {
    /// The delivery id.
    pub delivery_id: Option<Place>,
    /// The event type.
    pub event_type: Option<Place>,
}

/// A request the vendor sends to prove that the URL is theirs, answered with its challenge
/// once the signature is checked and never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// The top-level JSON `type` that marks it.
    pub event_type: &'static str,
    /// The JSON pointer of the challenge to echo.
    pub challenge: &'static str,
}

/// What a request to be signed consists of (loadgen, tests).
#[derive(Debug, Clone, Copy)]
pub struct ToSign<'a> {
    /// The delivery id, for schemes that sign it.
    pub delivery_id: &'a str,
    /// The Unix time of signing, for timestamped schemes.
    pub timestamp: i64,
    /// The raw body.
    pub body: &'a [u8],
}

type VerifyFn = fn(&[Secret], &Signed<'_>) -> Result<Verified, Rejection>;
type SignFn = fn(&str, &ToSign<'_>) -> Vec<(String, String)>;
type CheckSecretFn = fn(&str) -> Result<(), &'static str>;

/// One vendor family: everything the handler and loadgen know about its requests.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// Its name in `scheme = "…"`.
    pub name: &'static str,
    /// Where its delivery id and event type are in JSON requests.
    pub json: Places,
    /// Where they are in form-encoded requests.
    pub form: Places,
    /// Its URL handshake, if it has one.
    pub handshake: Option<Handshake>,
    /// Whether a configured secret is usable (e.g. `whsec_` + base64), and why not.
    pub check_secret: Option<CheckSecretFn>,
    verify: VerifyFn,
    sign: SignFn,
}

/// The family called `name`.
pub fn family(name: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|family| family.name == name)
}

/// A source's signature scheme.
#[derive(Debug, Clone)]
pub enum Scheme {
    /// A vendor family's own scheme.
    Vendor(&'static Family),
    /// A configured header, algorithm and encoding.
    Hmac(GenericHmac),
}

impl PartialEq for Scheme {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Vendor(a), Self::Vendor(b)) => a.name == b.name,
            (Self::Hmac(a), Self::Hmac(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Scheme {}

impl Scheme {
    /// GitHub's `X-Hub-Signature-256` / `X-Hub-Signature`.
    pub const GITHUB: Self = Self::Vendor(&github::FAMILY);
    /// Stripe's `Stripe-Signature: t=…,v1=…`.
    pub const STRIPE: Self = Self::Vendor(&stripe::FAMILY);
    /// Shopify's `X-Shopify-Hmac-Sha256`.
    pub const SHOPIFY: Self = Self::Vendor(&shopify::FAMILY);
    /// Slack's `X-Slack-Signature` with `X-Slack-Request-Timestamp`.
    pub const SLACK: Self = Self::Vendor(&slack::FAMILY);
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    pub const STANDARD: Self = Self::Vendor(&standard::FAMILY);

    /// The configuration name of the scheme.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Vendor(family) => family.name,
            Self::Hmac(_) => "hmac",
        }
    }

    /// The names accepted in `scheme = "…"`: `github, stripe, …, standard or hmac`.
    pub fn names() -> String {
        let families: Vec<&str> = FAMILIES.iter().map(|family| family.name).collect();
        format!("{} or hmac", families.join(", "))
    }

    /// Where the vendor puts its delivery id and event type in bodies of the given kind
    /// (`form` or JSON); a configured `hmac` scheme has no defaults.
    pub fn places(&self, form: bool) -> Places {
        match self {
            Self::Vendor(family) if form => family.form,
            Self::Vendor(family) => family.json,
            Self::Hmac(_) => Places {
                delivery_id: None,
                event_type: None,
            },
        }
    }

    /// The vendor's URL handshake, if it has one.
    pub fn handshake(&self) -> Option<Handshake> {
        match self {
            Self::Vendor(family) => family.handshake,
            Self::Hmac(_) => None,
        }
    }

    /// Whether `secret` can be a key of this scheme, and why not.
    pub fn check_secret(&self, secret: &str) -> Result<(), &'static str> {
        match self {
            Self::Vendor(Family {
                check_secret: Some(check),
                ..
            }) => check(secret),
            _ => Ok(()),
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
        let headers = AsDyn(headers);
        let request = Signed {
            headers: &headers,
            body,
            now,
            tolerance,
        };
        match self {
            Self::Vendor(family) => (family.verify)(secrets, &request),
            Self::Hmac(generic) => hmac::verify(generic, secrets, &request),
        }
    }

    /// The headers that sign `request` under `secret` the way the vendor does.
    pub fn sign(&self, secret: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
        match self {
            Self::Vendor(family) => (family.sign)(secret, request),
            Self::Hmac(generic) => hmac::sign(generic, secret, request),
        }
    }
}

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

impl std::str::FromStr for Algorithm {
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
        Computed::new(self, key, parts).matches(tag)
    }
}

/// How a signature header encodes the MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Lower- or upper-case hex.
    Hex,
    /// Standard base64 with padding.
    Base64,
}

impl std::str::FromStr for Encoding {
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
    /// Decodes a MAC as the header carries it.
    pub fn decode(self, text: &str) -> Option<Vec<u8>> {
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

/// The most entries a signature header may hold (`v1=…` or `v1,…` signatures and the entries
/// beside them). Vendors send one signature per active secret, two while rotating; more is
/// refused as malformed before any MAC is computed, so a header of 10,000 entries costs no
/// more than one of two.
pub const MAX_SIGNATURE_ENTRIES: usize = 8;

/// The non-empty entries of a signature header split at `separator`, at most
/// [`MAX_SIGNATURE_ENTRIES`]; more is [`Rejection::Malformed`]. Reading stops at the first
/// entry too many, whatever the length of the rest.
pub(crate) fn entries(header: &str, separator: impl Fn(char) -> bool) -> Result<Vec<&str>, Rejection> {
    let entries: Vec<&str> = header
        .split(separator)
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .take(MAX_SIGNATURE_ENTRIES + 1)
        .collect();
    if entries.len() > MAX_SIGNATURE_ENTRIES {
        Err(Rejection::Malformed)
    } else {
        Ok(entries)
    }
}

/// A MAC computed once, compared with any number of presented ones.
enum Computed {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

impl Computed {
    fn new(algorithm: Algorithm, key: &[u8], parts: &[&[u8]]) -> Self {
        fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> M {
            let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
            parts.iter().for_each(|part| mac.update(part));
            mac
        }
        match algorithm {
            Algorithm::Sha1 => Self::Sha1(run(key, parts)),
            Algorithm::Sha256 => Self::Sha256(run(key, parts)),
            Algorithm::Sha512 => Self::Sha512(run(key, parts)),
        }
    }

    /// Whether `tag` is this MAC, in constant time. Each comparison finalizes a copy of the
    /// state: two compression blocks, whatever the length of the message.
    fn matches(&self, tag: &[u8]) -> bool {
        match self {
            Self::Sha1(mac) => mac.clone().verify_slice(tag).is_ok(),
            Self::Sha256(mac) => mac.clone().verify_slice(tag).is_ok(),
            Self::Sha512(mac) => mac.clone().verify_slice(tag).is_ok(),
        }
    }
}

/// The one verification path of every scheme: the first secret whose key (`key`, from the
/// secret's text) makes one of `candidates` the `algorithm` MAC of `parts`. Each secret's MAC
/// is computed once and compared with every candidate, so the cost is one MAC of the message
/// per secret, whatever the number of candidates. A secret `key` cannot use never matches.
pub(crate) fn check(
    secrets: &[Secret],
    key: impl Fn(&str) -> Option<Vec<u8>>,
    algorithm: Algorithm,
    parts: &[&[u8]],
    candidates: &[Vec<u8>],
) -> Result<Verified, Rejection> {
    if candidates.is_empty() {
        return Err(Rejection::Malformed);
    }
    secrets
        .iter()
        .position(|secret| {
            key(secret.expose()).is_some_and(|key| {
                let computed = Computed::new(algorithm, &key, parts);
                candidates.iter().any(|candidate| computed.matches(candidate))
            })
        })
        .map(|secret_index| Verified { secret_index })
        .ok_or(Rejection::Mismatch)
}

/// The key of a secret used as it is written.
pub(crate) fn text_key(secret: &str) -> Option<Vec<u8>> {
    Some(secret.as_bytes().to_vec())
}

#[cfg(test)]
pub(crate) fn secrets(values: &[&str]) -> Vec<Secret> {
    values.iter().map(|value| Secret::new(*value)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic() -> GenericHmac {
        GenericHmac {
            header: "X-Signature".to_owned(),
            algorithm: Algorithm::Sha512,
            encoding: Encoding::Base64,
            prefix: Some("v1=".to_owned()),
            template: Some("{timestamp}.{body}".to_owned()),
            timestamp_header: Some("X-Timestamp".to_owned()),
        }
    }

    fn every_scheme() -> Vec<Scheme> {
        let mut schemes: Vec<Scheme> = FAMILIES.iter().map(Scheme::Vendor).collect();
        schemes.push(Scheme::Hmac(generic()));
        schemes
    }

    #[test]
    fn every_family_is_found_by_its_name_and_named_once() {
        for family in FAMILIES {
            assert_eq!(super::family(family.name).map(|found| found.name), Some(family.name));
            assert_eq!(FAMILIES.iter().filter(|other| other.name == family.name).count(), 1);
        }
        assert!(super::family("hmac").is_none());
        assert_eq!(Scheme::names(), "github, stripe, shopify, slack, standard or hmac");
    }

    #[test]
    fn what_each_scheme_signs_it_verifies_and_a_changed_body_it_refuses() {
        let now = 1_700_000_000;
        let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
        for scheme in every_scheme() {
            let request = ToSign {
                delivery_id: "msg_1",
                timestamp: now,
                body,
            };
            let signed = scheme.sign(secret, &request);
            let headers: Vec<(&str, &str)> = signed
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            let keys = secrets(&["old", secret]);
            assert_eq!(
                scheme.verify(&keys, headers.as_slice(), body, now, 300),
                Ok(Verified { secret_index: 1 }),
                "{}",
                scheme.name()
            );
            assert_eq!(
                scheme.verify(&keys, headers.as_slice(), br#"{"id":"evt_2"}"#, now, 300),
                Err(Rejection::Mismatch),
                "{}",
                scheme.name()
            );
        }
    }

    #[test]
    fn a_signature_header_holds_at_most_a_handful_of_entries() {
        let comma = |c: char| c == ',';
        assert_eq!(entries(" t=1, ,v1=a,,v1=b ", comma), Ok(vec!["t=1", "v1=a", "v1=b"]));
        let eight = ["v1="; MAX_SIGNATURE_ENTRIES].join(",");
        assert_eq!(entries(&eight, comma).map(|entries| entries.len()), Ok(8));
        let nine = ["v1="; MAX_SIGNATURE_ENTRIES + 1].join(",");
        assert_eq!(entries(&nine, comma), Err(Rejection::Malformed));
        let flood = format!("t=1,{}", "v1=,".repeat(10_000));
        assert_eq!(entries(&flood, comma), Err(Rejection::Malformed));
    }

    #[test]
    fn each_candidate_is_compared_with_one_mac_per_secret() {
        let parts: [&[u8]; 2] = [b"1700000000.", b"{}"];
        let right = Algorithm::Sha256.sign(b"new", &parts);
        let wrong = vec![0; 32];
        let candidates = [wrong.clone(), right.clone(), wrong.clone()];
        assert_eq!(
            check(
                &secrets(&["old", "new"]),
                text_key,
                Algorithm::Sha256,
                &parts,
                &candidates
            ),
            Ok(Verified { secret_index: 1 })
        );
        assert_eq!(
            check(&secrets(&["old"]), text_key, Algorithm::Sha256, &parts, &candidates),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            check(&secrets(&["new"]), text_key, Algorithm::Sha256, &parts, &[]),
            Err(Rejection::Malformed)
        );
        // A truncated or extended MAC is not the MAC.
        for near in [right[..31].to_vec(), [right.clone(), vec![0]].concat()] {
            assert_eq!(
                check(&secrets(&["new"]), text_key, Algorithm::Sha256, &parts, &[near]),
                Err(Rejection::Mismatch)
            );
        }
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
            let mut generic = generic();
            generic.algorithm = Algorithm::Sha256;
            let headers: &[(&str, &str)] = &[
                (HUB_SIGNATURE_256, &signature),
                (HUB_SIGNATURE, &signature),
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
            let mut schemes: Vec<Scheme> = FAMILIES.iter().map(Scheme::Vendor).collect();
            schemes.push(Scheme::Hmac(generic));
            for scheme in schemes {
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
            let headers: &[(&str, &str)] = &[
                (HUB_SIGNATURE_256, &github),
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
            for scheme in every_scheme() {
                let verified = scheme.verify(&keys, headers, &body, now, 300);
                proptest::prop_assert!(
                    matches!(verified, Err(Rejection::Mismatch | Rejection::Malformed)),
                    "{}: {verified:?}", scheme.name()
                );
            }
        }

        /// A one-byte change of the body, the timestamp or the signature fails every scheme.
        #[test]
        fn a_one_byte_change_of_body_timestamp_or_signature_is_refused(
            body in proptest::collection::vec(proptest::num::u8::ANY, 1..128),
            at in proptest::num::usize::ANY,
            flip in 1u8..=255,
        ) {
            let now = 1_700_000_000;
            let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
            let keys = secrets(&[secret]);
            for scheme in every_scheme() {
                let signed = scheme.sign(secret, &ToSign { delivery_id: "msg_1", timestamp: now, body: &body });
                let verify = |signed: &[(String, String)], body: &[u8]| {
                    let pairs: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                    scheme.verify(&keys, pairs.as_slice(), body, now, 300)
                };
                proptest::prop_assert!(verify(&signed, &body).is_ok(), "{}", scheme.name());
                let mut changed = body.clone();
                let index = at % changed.len();
                changed[index] ^= flip;
                proptest::prop_assert!(verify(&signed, &changed).is_err(), "{}: body", scheme.name());
                // Every header a scheme sets is signed or is the signature.
                for (position, (name, value)) in signed.iter().enumerate() {
                    let mut altered = signed.clone();
                    let mut bytes = value.clone().into_bytes();
                    let index = at % bytes.len();
                    // Another printable ASCII byte, so the header stays text.
                    bytes[index] = if bytes[index] == b'0' { b'1' } else { b'0' };
                    altered[position].1 = String::from_utf8(bytes).unwrap_or_default();
                    proptest::prop_assert!(
                        verify(&altered, &body).is_err(),
                        "{}: {name} {value:?} -> {:?}", scheme.name(), altered[position].1
                    );
                }
            }
        }
    }
}
