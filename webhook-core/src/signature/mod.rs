//! Signature schemes: pure functions over the raw body bytes and the request headers.
//!
//! Nothing here does I/O: the handler verifies a signature before it looks at the body in any
//! other way (the few vendors that sign inside the body read just their signature fields).
//! Each vendor family is one file with its verification, its signing (for loadgen and the
//! tests), its defaults, its handshake and its published vectors, and one row of
//! [`FAMILIES`]; `hmac` is the configurable scheme for vendors with their own convention, and
//! most HMAC presets are a fixed description of it. Every family computes its MACs through
//! [`check`] and every comparison of a computed MAC with a presented one goes through
//! `Mac::verify_slice`, which is constant time; tokens and passwords are compared in constant
//! time too ([`check_token`]); public-key signatures go through [`keys::PublicKey`].
//!
//! Adding a vendor is a file here (a [`Family`] with its tests) and a row in [`FAMILIES`].

mod adyen;
mod body_hmac;
mod calendly;
mod discord;
mod docusign;
mod github;
mod gitlab;
mod hmac;
mod hubspot;
pub mod keys;
mod linear;
mod mailgun;
mod paddle;
mod paypal;
mod postmark;
mod sendgrid;
mod shopify;
mod slack;
mod square;
mod standard;
mod stripe;
mod twilio;
mod twitch;
mod xero;
mod zoom;

use ::hmac::{Hmac, KeyInit, Mac};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use std::fmt;

use crate::config::Secret;
use crate::payload::JsonBody;

pub use adyen::{adyen_signature, adyen_signed_body};
pub use discord::{DISCORD_SIGNATURE, DISCORD_TIMESTAMP};
pub use github::{HUB_SIGNATURE, HUB_SIGNATURE_256, HubSignature, sign_github};
pub use gitlab::GITLAB_TOKEN;
pub use hmac::{GenericHmac, KeyEncoding, PLACEHOLDERS, TimestampFormat, sign_generic};
pub use hubspot::{HUBSPOT_SIGNATURE, HUBSPOT_SIGNATURE_V3, HUBSPOT_SIGNATURE_VERSION, HUBSPOT_TIMESTAMP};
pub use keys::{Keys, PublicKey};
pub use linear::LINEAR_TIMESTAMP_FIELD;
pub use mailgun::mailgun_signature;
pub use paypal::{PAYPAL_AUTH_ALGO, PAYPAL_TRANSMISSION_ID, PAYPAL_TRANSMISSION_SIG, PAYPAL_TRANSMISSION_TIME};
pub use sendgrid::{SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP};
pub use shopify::SHOPIFY_HMAC;
pub use slack::{SLACK_SIGNATURE, SLACK_TIMESTAMP, sign_slack};
pub use standard::{STANDARD_ID, STANDARD_SIGNATURE, STANDARD_TIMESTAMP, sign_standard, standard_key};
pub use stripe::{STRIPE_SIGNATURE, sign_stripe};
pub use twilio::{TWILIO_SIGNATURE, twilio_json_url};
pub use twitch::TWITCH_MESSAGE_TYPE;

/// Every vendor family, one row each: what `scheme = "…"` may name besides `hmac` and `none`.
pub const FAMILIES: &[Family] = &[
    github::FAMILY,
    gitlab::FAMILY,
    body_hmac::BITBUCKET,
    stripe::FAMILY,
    shopify::FAMILY,
    slack::FAMILY,
    twilio::FAMILY,
    sendgrid::FAMILY,
    mailgun::FAMILY,
    postmark::FAMILY,
    paypal::FAMILY,
    square::FAMILY,
    paddle::FAMILY,
    zoom::FAMILY,
    hubspot::FAMILY,
    body_hmac::INTERCOM,
    discord::FAMILY,
    linear::FAMILY,
    body_hmac::JIRA,
    body_hmac::TYPEFORM,
    calendly::FAMILY,
    docusign::FAMILY,
    xero::FAMILY,
    body_hmac::WOOCOMMERCE,
    adyen::FAMILY,
    body_hmac::RAZORPAY,
    twitch::FAMILY,
    standard::FAMILY,
    standard::SVIX,
    standard::RESEND,
    standard::CLERK,
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
    /// The request method, as the vendor sent it (`POST`).
    pub(crate) method: &'a str,
    /// The URL the vendor signed: the source's `url` with the request's query string.
    pub(crate) url: Option<&'a str>,
    /// The vendor's id of the webhook subscription, for schemes that sign it (PayPal).
    pub(crate) webhook_id: Option<&'a str>,
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
        self.timestamp_as(text, TimestampFormat::Unix)
    }

    /// A signed timestamp written as `format`, in Unix seconds, refused when more than the
    /// tolerance from now.
    pub(crate) fn timestamp_as(&self, text: &str, format: TimestampFormat) -> Result<i64, Rejection> {
        let timestamp = format.parse(text.trim()).ok_or(Rejection::Malformed)?;
        self.fresh(timestamp)
    }

    /// `timestamp` (Unix seconds), refused when more than the tolerance from now.
    pub(crate) fn fresh(&self, timestamp: i64) -> Result<i64, Rejection> {
        if self.now.abs_diff(timestamp) > self.tolerance.unsigned_abs() {
            Err(Rejection::Stale)
        } else {
            Ok(timestamp)
        }
    }

    /// The signed URL; a source of a scheme that signs it always has one (checked at start).
    pub(crate) fn url(&self) -> &str {
        self.url.unwrap_or_default()
    }
}

/// A request to verify: its headers and raw body, and what the source knows about where the
/// vendor sent it.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The request's headers.
    pub headers: &'a dyn Headers,
    /// The raw body.
    pub body: &'a [u8],
    /// The request method.
    pub method: &'a str,
    /// The URL the vendor signed (the source's `url` and the request's query string), if the
    /// source has one.
    pub url: Option<&'a str>,
    /// The source's `webhook_id` (PayPal).
    pub webhook_id: Option<&'a str>,
    /// The current Unix time in seconds.
    pub now: i64,
    /// How far (either way) a signed timestamp may be from `now`.
    pub tolerance: i64,
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
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

impl Places {
    /// Neither: the source says where they are.
    pub const NOWHERE: Self = Self {
        delivery_id: None,
        event_type: None,
    };
}

/// What the handler answers instead of storing a request, or instead of its usual JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The content type of the body, if it has one.
    pub content_type: Option<&'static str>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// A JSON answer.
    pub fn json(value: &serde_json::Value) -> Self {
        Self {
            content_type: Some("application/json"),
            body: value.to_string().into_bytes(),
        }
    }

    /// A plain-text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            content_type: Some("text/plain; charset=utf-8"),
            body: text.into().into_bytes(),
        }
    }

    /// An empty answer, without a content type.
    pub fn empty() -> Self {
        Self {
            content_type: None,
            body: Vec::new(),
        }
    }
}

/// A signed request a handshake looks at: its headers, its JSON body (the pointers the
/// handshake asked for) and the secret that verified it.
#[derive(Clone, Copy)]
pub struct Challenge<'a> {
    /// The request's headers.
    pub headers: &'a dyn Headers,
    /// The body as JSON, if the source takes JSON.
    pub json: Option<&'a JsonBody<'a>>,
    /// The secret that verified the signature (schemes whose answer is keyed, Zoom).
    pub secret: Option<&'a Secret>,
}

impl fmt::Debug for Challenge<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge").finish_non_exhaustive()
    }
}

/// `None`: not a handshake (an event to store); `Some(Ok)`: the answer; `Some(Err)`: a
/// handshake that lacks what it needs (a 400 with this message).
pub type HandshakeFn = fn(&Challenge<'_>) -> Option<Result<Answer, String>>;

/// A request the vendor sends to prove that the URL is theirs, answered once the signature is
/// checked and never stored.
#[derive(Debug, Clone, Copy)]
pub struct Handshake {
    /// Its name in logs (`url_verification`).
    pub name: &'static str,
    /// The JSON pointers it reads.
    pub pointers: &'static [&'static str],
    /// Whether a request is one, and the answer.
    pub answer: HandshakeFn,
}

/// How a vendor wants to be answered, where it is not the handler's usual JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct Answers {
    /// The content type and body of a 200 for a queued event, instead of
    /// `{"status":"queued",…}` (Adyen's `[accepted]`).
    pub accepted: Option<(&'static str, &'static str)>,
    /// A 401 with an empty body for a bad signature (Xero's Intent to Receive).
    pub empty_unauthorized: bool,
}

/// What a source of a family must configure to verify.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    /// Shared secrets (`secrets`, `secret_env`, `secret_files`).
    Secrets,
    /// The vendor's public keys (`public_key`), in the family's text form.
    PublicKeys(fn(&str) -> Result<PublicKey, String>),
    /// Shared secrets, public keys, or both.
    Either(fn(&str) -> Result<PublicKey, String>),
    /// The vendor's signing certificates (`certificate_file`) and its `webhook_id`.
    Certificates,
    /// Nothing: the source is admitted by its address alone (`allow_ips`, required).
    Nothing,
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
    /// The URL the request goes to as the vendor would sign it, for schemes that sign it.
    pub url: Option<&'a str>,
    /// The vendor's webhook id (PayPal).
    pub webhook_id: Option<&'a str>,
}

impl<'a> ToSign<'a> {
    /// `body` with its delivery id and time, no URL.
    pub fn new(delivery_id: &'a str, timestamp: i64, body: &'a [u8]) -> Self {
        Self {
            delivery_id,
            timestamp,
            body,
            url: None,
            webhook_id: None,
        }
    }
}

pub(crate) type VerifyFn = fn(&Keys, &Signed<'_>) -> Result<Verified, Rejection>;
pub(crate) type SignFn = fn(&str, &ToSign<'_>) -> Vec<(String, String)>;
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
    /// What a source must configure to verify.
    pub keys: KeyKind,
    /// Its signed timestamp's tolerance unless the source sets `tolerance_secs`.
    pub tolerance_secs: Option<i64>,
    /// Whether it signs the URL, so a source needs `url`.
    pub signs_url: bool,
    /// Its URL handshake, if it has one.
    pub handshake: Option<Handshake>,
    /// How it wants to be answered.
    pub answers: Answers,
    /// Whether a configured secret is usable (e.g. `whsec_` + base64), and why not.
    pub check_secret: Option<CheckSecretFn>,
    verify: VerifyFn,
    sign: SignFn,
}

impl Family {
    /// A family of shared-secret schemes with the defaults: no handshake, the usual answers.
    const fn new(name: &'static str, json: Places, form: Places, verify: VerifyFn, sign: SignFn) -> Self {
        Self {
            name,
            json,
            form,
            keys: KeyKind::Secrets,
            tolerance_secs: None,
            signs_url: false,
            handshake: None,
            answers: Answers {
                accepted: None,
                empty_unauthorized: false,
            },
            check_secret: None,
            verify,
            sign,
        }
    }
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
    /// No signature: requests are admitted by their address (`allow_ips`) alone.
    Unsigned,
}

impl PartialEq for Scheme {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Vendor(a), Self::Vendor(b)) => a.name == b.name,
            (Self::Hmac(a), Self::Hmac(b)) => a == b,
            (Self::Unsigned, Self::Unsigned) => true,
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
            Self::Unsigned => "none",
        }
    }

    /// The names accepted in `scheme = "…"`: `github, stripe, …, hmac or none`.
    pub fn names() -> String {
        let families: Vec<&str> = FAMILIES.iter().map(|family| family.name).collect();
        format!("{}, hmac or none", families.join(", "))
    }

    /// Where the vendor puts its delivery id and event type in bodies of the given kind
    /// (`form` or JSON); a configured `hmac` scheme has no defaults.
    pub fn places(&self, form: bool) -> Places {
        match self {
            Self::Vendor(family) if form => family.form,
            Self::Vendor(family) => family.json,
            Self::Hmac(_) | Self::Unsigned => Places::NOWHERE,
        }
    }

    /// The vendor's URL handshake, if it has one.
    pub fn handshake(&self) -> Option<Handshake> {
        match self {
            Self::Vendor(family) => family.handshake,
            Self::Hmac(_) | Self::Unsigned => None,
        }
    }

    /// How the vendor wants to be answered.
    pub fn answers(&self) -> Answers {
        match self {
            Self::Vendor(family) => family.answers,
            Self::Hmac(_) | Self::Unsigned => Answers::default(),
        }
    }

    /// What a source must configure to verify.
    pub fn keys(&self) -> KeyKind {
        match self {
            Self::Vendor(family) => family.keys,
            Self::Hmac(_) => KeyKind::Secrets,
            Self::Unsigned => KeyKind::Nothing,
        }
    }

    /// The tolerance of its signed timestamps unless the source sets one.
    pub fn default_tolerance(&self) -> Option<i64> {
        match self {
            Self::Vendor(family) => family.tolerance_secs,
            Self::Hmac(_) | Self::Unsigned => None,
        }
    }

    /// Whether it signs the URL the vendor posts to, so a source needs `url`.
    pub fn signs_url(&self) -> bool {
        match self {
            Self::Vendor(family) => family.signs_url,
            Self::Hmac(generic) => generic.signs_url(),
            Self::Unsigned => false,
        }
    }

    /// Whether `secret` can be a key of this scheme, and why not.
    pub fn check_secret(&self, secret: &str) -> Result<(), &'static str> {
        match self {
            Self::Vendor(Family {
                check_secret: Some(check),
                ..
            }) => check(secret),
            Self::Hmac(generic) => generic.key_encoding.check(secret),
            _ => Ok(()),
        }
    }

    /// Verifies a request with shared secrets alone. `now` is the current Unix time in
    /// seconds and `tolerance` how far (either way) a signed timestamp may be from it.
    pub fn verify(
        &self,
        secrets: &[Secret],
        headers: &(impl Headers + ?Sized),
        body: &[u8],
        now: i64,
        tolerance: i64,
    ) -> Result<Verified, Rejection> {
        let headers = AsDyn(headers);
        let request = Request {
            headers: &headers,
            body,
            method: "POST",
            url: None,
            webhook_id: None,
            now,
            tolerance,
        };
        self.verify_request(&Keys::secrets(secrets), &request)
    }

    /// Verifies a request with a source's keys.
    pub fn verify_request(&self, keys: &Keys, request: &Request<'_>) -> Result<Verified, Rejection> {
        let signed = Signed {
            headers: request.headers,
            body: request.body,
            method: request.method,
            url: request.url,
            webhook_id: request.webhook_id,
            now: request.now,
            tolerance: request.tolerance,
        };
        match self {
            Self::Vendor(family) => (family.verify)(keys, &signed),
            Self::Hmac(generic) => hmac::verify(generic, keys, &signed),
            // Admitted by address before anything else is checked.
            Self::Unsigned => Ok(Verified { secret_index: 0 }),
        }
    }

    /// The headers that sign `request` under `secret` the way the vendor does (for a public-key
    /// scheme, `secret` is the private key).
    pub fn sign(&self, secret: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
        match self {
            Self::Vendor(family) => (family.sign)(secret, request),
            Self::Hmac(generic) => hmac::sign(generic, secret, request),
            Self::Unsigned => Vec::new(),
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

/// The first secret that is `presented` itself (a token or password sent as it is: GitLab's
/// `X-Gitlab-Token`, Postmark's Basic credentials). The SHA-256 of each side is compared in
/// constant time, so neither the content nor the length of a secret shows in the timing.
pub(crate) fn check_token(secrets: &[Secret], presented: &[u8]) -> Result<Verified, Rejection> {
    use sha2::Digest as _;
    use subtle::ConstantTimeEq as _;
    let presented = Sha256::digest(presented);
    secrets
        .iter()
        .position(|secret| bool::from(Sha256::digest(secret.expose().as_bytes()).ct_eq(&presented)))
        .map(|secret_index| Verified { secret_index })
        .ok_or(Rejection::Mismatch)
}

/// The first secret `s` whose plain SHA-256 of `s ‖ parts` is `tag` (HubSpot's v1 and v2, a
/// hash rather than an HMAC), compared in constant time.
pub(crate) fn check_hash(secrets: &[Secret], parts: &[&[u8]], tag: &[u8]) -> Result<Verified, Rejection> {
    use sha2::Digest as _;
    use subtle::ConstantTimeEq as _;
    secrets
        .iter()
        .position(|secret| {
            let mut hash = Sha256::new();
            hash.update(secret.expose().as_bytes());
            parts.iter().for_each(|part| hash.update(part));
            bool::from(hash.finalize().as_slice().ct_eq(tag))
        })
        .map(|secret_index| Verified { secret_index })
        .ok_or(Rejection::Mismatch)
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
            algorithm: Algorithm::Sha512,
            encoding: Encoding::Base64,
            prefix: Some("v1=".to_owned()),
            template: Some("{timestamp}.{body}".to_owned()),
            timestamp_header: Some("X-Timestamp".to_owned()),
            ..GenericHmac::new("X-Signature")
        }
    }

    fn every_scheme() -> Vec<Scheme> {
        let mut schemes: Vec<Scheme> = FAMILIES.iter().map(Scheme::Vendor).collect();
        schemes.push(Scheme::Hmac(generic()));
        schemes
    }

    /// The shared secret every shared-secret scheme signs with in these tests.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    /// How a scheme's requests are signed and verified in the tests that run over every scheme:
    /// the key that signs, the keys that verify (a wrong one first, so the index shows which
    /// one verified), the URL and webhook id it signs, and the body as the vendor would send
    /// `content`.
    struct Fixture {
        signing_key: String,
        keys: Keys,
        url: Option<String>,
        webhook_id: Option<&'static str>,
        body: Vec<u8>,
    }

    impl Fixture {
        /// `None` for the schemes that sign inside the body (Adyen, Mailgun: their own tests).
        fn new(scheme: &Scheme, content: &[u8]) -> Option<Self> {
            let ed25519_seed = include_str!("../../tests/vectors/keys/ed25519.seed").trim();
            let ed25519 = PublicKey::ed25519_hex("44619b01692cf01a21a0c222f985aa72104e92b3f6828cfdedc3968889e7b1ba");
            let p256 = PublicKey::p256_spki_base64(
                "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMfT5+qCxqcDHpp4DANHB+X2Uu+YnL93581AQZZxHnORSvmD9W7cmV+7J0UeEapwicQdEaBKbZfveEpyf1G7M2g==",
            );
            let (ed25519, p256) = (ed25519.unwrap(), p256.unwrap());
            let public = |wrong: &PublicKey, right: PublicKey| Keys {
                secrets: Vec::new(),
                public: vec![wrong.clone(), right],
            };
            let name = scheme.name();
            let body = if name == "linear" {
                // Linear signs a JSON body that carries its own time.
                format!(
                    r#"{{"webhookTimestamp":1700000000000,"data":"{}"}}"#,
                    hex::encode(content)
                )
                .into_bytes()
            } else {
                content.to_vec()
            };
            let url = scheme.signs_url().then(|| match name {
                "twilio" => twilio::twilio_json_url("https://example.com/webhooks/twilio", &body),
                _ => "https://example.com/webhooks/a?b=1".to_owned(),
            });
            let (signing_key, keys, webhook_id) = match name {
                "adyen" | "mailgun" => return None,
                "postmark" => (
                    "user:pass".to_owned(),
                    Keys::secrets(&secrets(&["old:one", "user:pass"])),
                    None,
                ),
                "discord" => (ed25519_seed.to_owned(), public(&p256, ed25519.clone()), None),
                "sendgrid" => (
                    include_str!("../../tests/vectors/keys/p256.pem").to_owned(),
                    public(&ed25519, p256.clone()),
                    None,
                ),
                "paypal" => {
                    let certificate = include_str!("../../tests/vectors/keys/paypal-cert.pem");
                    let (rsa, _) = PublicKey::rsa_certificate_pem(certificate).unwrap();
                    (
                        include_str!("../../tests/vectors/keys/rsa.pem").to_owned(),
                        public(&p256, rsa),
                        Some("WH-ID-1"),
                    )
                }
                _ => (SECRET.to_owned(), Keys::secrets(&secrets(&["old", SECRET])), None),
            };
            Some(Self {
                signing_key,
                keys,
                url,
                webhook_id,
                body,
            })
        }

        /// Whether the scheme signs the body (Postmark sends a password, nothing signed).
        fn signs_body(scheme: &Scheme) -> bool {
            scheme.name() != "postmark"
        }

        fn sign(&self, scheme: &Scheme, now: i64) -> Vec<(String, String)> {
            let request = ToSign {
                url: self.url.as_deref(),
                webhook_id: self.webhook_id,
                ..ToSign::new("msg_1", now, &self.body)
            };
            scheme.sign(&self.signing_key, &request)
        }

        fn verify(
            &self,
            scheme: &Scheme,
            signed: &[(String, String)],
            body: &[u8],
            now: i64,
        ) -> Result<Verified, Rejection> {
            let pairs: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let headers = AsDyn(pairs.as_slice());
            let request = Request {
                headers: &headers,
                body,
                method: "POST",
                url: self.url.as_deref(),
                webhook_id: self.webhook_id,
                now,
                tolerance: 300,
            };
            scheme.verify_request(&self.keys, &request)
        }
    }

    #[test]
    fn every_family_is_found_by_its_name_and_named_once() {
        for family in FAMILIES {
            assert_eq!(super::family(family.name).map(|found| found.name), Some(family.name));
            assert_eq!(FAMILIES.iter().filter(|other| other.name == family.name).count(), 1);
        }
        assert!(super::family("hmac").is_none());
        assert!(super::family("none").is_none());
        assert_eq!(
            Scheme::names(),
            "github, gitlab, bitbucket, stripe, shopify, slack, twilio, sendgrid, mailgun, postmark, paypal, \
             square, paddle, zoom, hubspot, intercom, discord, linear, jira, typeform, calendly, docusign, xero, \
             woocommerce, adyen, razorpay, twitch, standard, svix, resend, clerk, hmac or none"
        );
    }

    #[test]
    fn what_each_scheme_signs_it_verifies_and_a_changed_body_it_refuses() {
        let now = 1_700_000_000;
        for scheme in every_scheme() {
            let Some(fixture) = Fixture::new(&scheme, br#"{"id":"evt_1","type":"charge.succeeded"}"#) else {
                continue;
            };
            let signed = fixture.sign(&scheme, now);
            assert_eq!(
                fixture.verify(&scheme, &signed, &fixture.body, now),
                Ok(Verified { secret_index: 1 }),
                "{}",
                scheme.name()
            );
            if Fixture::signs_body(&scheme) {
                let other = Fixture::new(&scheme, br#"{"id":"evt_2"}"#).unwrap();
                assert!(
                    matches!(
                        fixture.verify(&scheme, &signed, &other.body, now),
                        Err(Rejection::Mismatch)
                    ),
                    "{}",
                    scheme.name()
                );
            }
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
            // No `t`: a stray `t=…` entry is a second Stripe timestamp (the last one decides),
            // which makes the request stale rather than reach the MAC comparison.
            stray in "[a-su-z0-9=,. ]{0,20}",
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
                // These headers are the first six schemes' own; the others find theirs missing.
                let reached = ["github", "stripe", "shopify", "slack", "standard", "hmac"].contains(&scheme.name());
                proptest::prop_assert!(
                    matches!(verified, Err(Rejection::Mismatch | Rejection::Malformed))
                        || (!reached && verified.is_err()),
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
            for scheme in every_scheme() {
                let Some(fixture) = Fixture::new(&scheme, &body) else {
                    continue;
                };
                let signed = fixture.sign(&scheme, now);
                let verify = |signed: &[(String, String)], body: &[u8]| fixture.verify(&scheme, signed, body, now);
                proptest::prop_assert!(verify(&signed, &fixture.body).is_ok(), "{}", scheme.name());
                let mut changed = fixture.body.clone();
                let index = at % changed.len();
                changed[index] ^= flip;
                proptest::prop_assert!(
                    !Fixture::signs_body(&scheme) || verify(&signed, &changed).is_err(),
                    "{}: body", scheme.name()
                );
                // Every header a scheme sets is signed or is the signature.
                for (position, (name, value)) in signed.iter().enumerate() {
                    let mut altered = signed.clone();
                    let mut bytes = value.clone().into_bytes();
                    let index = at % bytes.len();
                    // Another printable ASCII byte, so the header stays text.
                    bytes[index] = if bytes[index] == b'0' { b'1' } else { b'0' };
                    altered[position].1 = String::from_utf8(bytes).unwrap_or_default();
                    proptest::prop_assert!(
                        verify(&altered, &fixture.body).is_err(),
                        "{}: {name} {value:?} -> {:?}", scheme.name(), altered[position].1
                    );
                }
            }
        }
    }
}
