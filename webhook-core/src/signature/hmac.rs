//! `hmac`: a configured description of an HMAC scheme, for vendors with their own convention;
//! most HMAC presets are a fixed one of these.
//!
//! What is signed is a template over `{method}`, `{url}` (the public URL the vendor posts to,
//! configured per source, with the request's query string), `{id}` (a header), `{timestamp}`
//! (a header, or an entry of the signature header) and `{body}`. The signature is a header's
//! whole value after a prefix, or a list of entries split at a separator (`v1,… v1,…`), or
//! key-value entries (`t=…,v1=…`, `ts=…;h1=…`); several signature headers may be named (one per
//! active secret, as DocuSign sends). Keys are the secret's text, or its hex, base64 or
//! `whsec_` decoding. However many MACs a request presents, each secret's MAC is computed once,
//! and at most [`MAX_SIGNATURE_ENTRIES`](super::MAX_SIGNATURE_ENTRIES) entries are read.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{Algorithm, Encoding, Keys, MAX_SIGNATURE_ENTRIES, Rejection, Signed, ToSign, Verified, check, entries};

/// How a secret's text becomes the HMAC key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyEncoding {
    /// The text's bytes as they are.
    #[default]
    Text,
    /// Hex digits (Adyen).
    Hex,
    /// Standard base64.
    Base64,
    /// `whsec_` and base64 (Standard Webhooks), or base64 alone.
    Whsec,
}

impl std::str::FromStr for KeyEncoding {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, ()> {
        match value {
            "text" => Ok(Self::Text),
            "hex" => Ok(Self::Hex),
            "base64" => Ok(Self::Base64),
            "whsec" => Ok(Self::Whsec),
            _ => Err(()),
        }
    }
}

impl KeyEncoding {
    /// The HMAC key of `secret`; `None` when it is not in this encoding.
    pub fn key(self, secret: &str) -> Option<Vec<u8>> {
        match self {
            Self::Text => Some(secret.as_bytes().to_vec()),
            Self::Hex => hex::decode(secret).ok(),
            Self::Base64 => BASE64.decode(secret).ok(),
            Self::Whsec => super::standard_key(secret),
        }
    }

    /// Whether `secret` can be a key in this encoding, and why not.
    pub fn check(self, secret: &str) -> Result<(), &'static str> {
        match (self, self.key(secret)) {
            (_, Some(_)) => Ok(()),
            (Self::Hex, None) => Err("key_encoding = \"hex\": a secret is not hex digits"),
            (Self::Base64, None) => Err("key_encoding = \"base64\": a secret is not base64"),
            (_, None) => Err("key_encoding = \"whsec\": a secret is not `whsec_` followed by base64"),
        }
    }
}

/// How a signed timestamp is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimestampFormat {
    /// Unix seconds.
    #[default]
    Unix,
    /// Unix milliseconds (HubSpot).
    UnixMillis,
    /// RFC 3339 (Twitch).
    Rfc3339,
}

impl std::str::FromStr for TimestampFormat {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, ()> {
        match value {
            "unix" => Ok(Self::Unix),
            "unix_ms" => Ok(Self::UnixMillis),
            "rfc3339" => Ok(Self::Rfc3339),
            _ => Err(()),
        }
    }
}

impl TimestampFormat {
    /// The Unix seconds `text` says, if it is written this way.
    pub fn parse(self, text: &str) -> Option<i64> {
        match self {
            Self::Unix => text.parse().ok(),
            Self::UnixMillis => text.parse::<i64>().ok().map(|millis| millis.div_euclid(1000)),
            Self::Rfc3339 => chrono::DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|time| time.timestamp()),
        }
    }

    /// Unix seconds written this way.
    pub fn format(self, timestamp: i64) -> String {
        match self {
            Self::Unix => timestamp.to_string(),
            Self::UnixMillis => (timestamp * 1000).to_string(),
            Self::Rfc3339 => chrono::DateTime::from_timestamp(timestamp, 0)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        }
    }
}

/// A configurable HMAC scheme for vendors with their own convention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericHmac {
    /// The headers that carry signatures (at least one of them must be present).
    pub headers: Vec<String>,
    /// The hash function.
    pub algorithm: Algorithm,
    /// How the MAC is written.
    pub encoding: Encoding,
    /// Text before each MAC (e.g. `sha256=`), if any.
    pub prefix: Option<String>,
    /// Splits a signature header into entries (`,` for `t=…,v1=…`, ` ` for `v1,… v1,…`).
    pub separator: Option<char>,
    /// With a separator: entries are `key=value` and the MACs are the values of this key.
    pub signature_key: Option<String>,
    /// With a signature key: the entry that holds the signed timestamp.
    pub timestamp_key: Option<String>,
    /// What is signed: `None` for the body alone, or a template of `{method}`, `{url}`, `{id}`,
    /// `{timestamp}` and `{body}`.
    pub template: Option<String>,
    /// The header with the signed timestamp (checked against the tolerance).
    pub timestamp_header: Option<String>,
    /// How the timestamp is written.
    pub timestamp_format: TimestampFormat,
    /// The header whose value is `{id}`.
    pub id_header: Option<String>,
    /// How a secret's text becomes the key.
    pub key_encoding: KeyEncoding,
}

impl GenericHmac {
    /// HMAC-SHA256 of the body, in hex, in `header`: the defaults a configuration starts from.
    pub fn new(header: &str) -> Self {
        Self {
            headers: vec![header.to_owned()],
            algorithm: Algorithm::Sha256,
            encoding: Encoding::Hex,
            prefix: None,
            separator: None,
            signature_key: None,
            timestamp_key: None,
            template: None,
            timestamp_header: None,
            timestamp_format: TimestampFormat::Unix,
            id_header: None,
            key_encoding: KeyEncoding::Text,
        }
    }

    /// Whether the template signs `{url}`.
    pub fn signs_url(&self) -> bool {
        self.template
            .as_deref()
            .is_some_and(|template| template.contains("{url}"))
    }

    /// Whether a timestamp is signed and checked.
    pub fn has_timestamp(&self) -> bool {
        self.timestamp_header.is_some() || self.timestamp_key.is_some()
    }
}

/// What a request's signature headers hold.
struct Presented<'a> {
    tags: Vec<Vec<u8>>,
    timestamp: Option<&'a str>,
}

fn presented<'a>(scheme: &GenericHmac, request: &'a Signed<'_>) -> Result<Presented<'a>, Rejection> {
    let mut found = false;
    let mut presented = Presented {
        tags: Vec::new(),
        timestamp: None,
    };
    let mut entries_read = 0;
    for name in &scheme.headers {
        if !request.has(name) {
            continue;
        }
        found = true;
        let value = request.header(name)?;
        let Some(separator) = scheme.separator else {
            let encoded = strip(scheme, value.trim()).ok_or(Rejection::Malformed)?;
            presented
                .tags
                .push(scheme.encoding.decode(encoded).ok_or(Rejection::Malformed)?);
            entries_read += 1;
            continue;
        };
        let items = entries(value, |c| c == separator)?;
        entries_read += items.len();
        for item in items {
            match &scheme.signature_key {
                Some(signature_key) => {
                    let Some((key, value)) = item.split_once('=') else {
                        continue;
                    };
                    if key == signature_key {
                        // A value that is not a MAC in this encoding can never match.
                        presented
                            .tags
                            .extend(strip(scheme, value).and_then(|encoded| scheme.encoding.decode(encoded)));
                    } else if scheme.timestamp_key.as_deref() == Some(key) {
                        presented.timestamp = Some(value);
                    }
                }
                None => presented
                    .tags
                    .extend(strip(scheme, item).and_then(|encoded| scheme.encoding.decode(encoded))),
            }
        }
    }
    if !found {
        return Err(Rejection::Missing);
    }
    // Several headers of a handful of entries each are still a handful in all.
    if entries_read > MAX_SIGNATURE_ENTRIES || presented.tags.is_empty() {
        return Err(Rejection::Malformed);
    }
    Ok(presented)
}

fn strip<'v>(scheme: &GenericHmac, value: &'v str) -> Option<&'v str> {
    match &scheme.prefix {
        Some(prefix) => value.strip_prefix(prefix.as_str()),
        None => Some(value),
    }
}

pub(super) fn verify(scheme: &GenericHmac, keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    let presented = presented(scheme, request)?;
    let timestamp = match (&scheme.timestamp_header, &scheme.timestamp_key) {
        (Some(name), _) => Some(request.header(name)?),
        (None, Some(_)) => Some(presented.timestamp.ok_or(Rejection::Malformed)?),
        (None, None) => None,
    };
    if let Some(timestamp) = timestamp {
        request.timestamp_as(timestamp, scheme.timestamp_format)?;
    }
    let id = match &scheme.id_header {
        Some(name) => request.header(name)?,
        None => "",
    };
    let values = Values {
        method: request.method,
        url: request.url(),
        id,
        timestamp: timestamp.map(str::trim).unwrap_or_default(),
        body: request.body,
    };
    let parts = parts(scheme.template.as_deref(), &values);
    let key_encoding = scheme.key_encoding;
    check(
        &keys.secrets,
        |secret| key_encoding.key(secret),
        scheme.algorithm,
        &parts,
        &presented.tags,
    )
}

/// The values a template is filled with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Values<'a> {
    pub(crate) method: &'a str,
    pub(crate) url: &'a str,
    pub(crate) id: &'a str,
    pub(crate) timestamp: &'a str,
    pub(crate) body: &'a [u8],
}

/// Signs with the generic scheme: the signature header's value for `body` at `timestamp`
/// (written as the scheme writes it), with no `{method}`, `{url}` or `{id}`.
pub fn sign_generic(scheme: &GenericHmac, secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let values = Values {
        method: "POST",
        url: "",
        id: "",
        timestamp,
        body,
    };
    signature_value(scheme, secret, &values)
}

fn signature_value(scheme: &GenericHmac, key: &[u8], values: &Values<'_>) -> String {
    let parts = parts(scheme.template.as_deref(), values);
    let mac = format!(
        "{}{}",
        scheme.prefix.as_deref().unwrap_or_default(),
        scheme.encoding.encode(&scheme.algorithm.sign(key, &parts))
    );
    match (&scheme.signature_key, &scheme.timestamp_key, scheme.separator) {
        (Some(signature_key), Some(timestamp_key), Some(separator)) => {
            format!("{timestamp_key}={}{separator}{signature_key}={mac}", values.timestamp)
        }
        (Some(signature_key), _, _) => format!("{signature_key}={mac}"),
        _ => mac,
    }
}

pub(super) fn sign(scheme: &GenericHmac, secret: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
    let timestamp = scheme.timestamp_format.format(request.timestamp);
    let values = Values {
        method: "POST",
        url: request.url.unwrap_or_default(),
        id: request.delivery_id,
        timestamp: &timestamp,
        body: request.body,
    };
    let mut headers = Vec::new();
    if let Some(name) = &scheme.id_header {
        headers.push((name.clone(), request.delivery_id.to_owned()));
    }
    if let Some(name) = &scheme.timestamp_header {
        headers.push((name.clone(), timestamp.clone()));
    }
    let key = scheme.key_encoding.key(secret).unwrap_or_default();
    if let Some(header) = scheme.headers.first() {
        headers.push((header.clone(), signature_value(scheme, &key, &values)));
    }
    headers
}

/// The signed message as parts: the template with its placeholders replaced, without copying
/// the body.
pub(crate) fn parts<'a>(template: Option<&'a str>, values: &Values<'a>) -> Vec<&'a [u8]> {
    let Some(mut rest) = template else {
        return vec![values.body];
    };
    let placeholders: [(&str, &[u8]); 5] = [
        ("{method}", values.method.as_bytes()),
        ("{url}", values.url.as_bytes()),
        ("{id}", values.id.as_bytes()),
        ("{timestamp}", values.timestamp.as_bytes()),
        ("{body}", values.body),
    ];
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let next = placeholders
            .iter()
            .filter_map(|(placeholder, value)| rest.find(placeholder).map(|at| (at, *placeholder, *value)))
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

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 5] = ["{method}", "{url}", "{id}", "{timestamp}", "{body}"];

#[cfg(test)]
mod tests {
    use super::super::{Scheme, secrets};
    use super::*;

    fn values<'a>(timestamp: &'a str, body: &'a [u8]) -> Values<'a> {
        Values {
            method: "POST",
            url: "https://example.com/hook",
            id: "msg_1",
            timestamp,
            body,
        }
    }

    // Made with OpenSSL 3.0: printf '%s' '1700000000:{"a":1}' | openssl dgst -sha512 -hmac 'gen'
    #[test]
    fn the_generic_scheme_signs_a_template_with_a_timestamp() {
        let scheme = GenericHmac {
            algorithm: Algorithm::Sha512,
            prefix: Some("sha512=".to_owned()),
            template: Some("{timestamp}:{body}".to_owned()),
            timestamp_header: Some("X-Timestamp".to_owned()),
            ..GenericHmac::new("X-Signature")
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
    fn generic_templates_split_around_every_placeholder() {
        let split = parts(Some("{method} {url}|{id}.{timestamp}:{body}!"), &values("12", b"B"));
        let expected: Vec<&[u8]> = vec![
            b"",
            b"POST",
            b" ",
            b"https://example.com/hook",
            b"|",
            b"msg_1",
            b".",
            b"12",
            b":",
            b"B",
            b"!",
        ];
        assert_eq!(split, expected);
        assert_eq!(parts(None, &values("12", b"B")), vec![&b"B"[..]]);
    }

    // Made with OpenSSL 3.0:
    //   printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -mac HMAC -macopt hexkey:6b6579 -binary | base64
    #[test]
    fn key_value_headers_carry_the_timestamp_and_keys_may_be_hex() {
        let scheme = GenericHmac {
            encoding: Encoding::Base64,
            separator: Some(';'),
            signature_key: Some("h1".to_owned()),
            timestamp_key: Some("ts".to_owned()),
            template: Some("{timestamp}.{body}".to_owned()),
            key_encoding: KeyEncoding::Hex,
            ..GenericHmac::new("X-Sig")
        };
        let body = br#"{"a":1}"#;
        let mac = BASE64.encode(Algorithm::Sha256.sign(b"key", &[b"1700000000.", body]));
        assert_eq!(mac, "pDjjmL+vxX5Dlrt/wjBEIvD3aOll0HPKMTy1LiLmrQM=");
        let header = format!("ts=1700000000;h1={mac}");
        assert_eq!(sign_generic(&scheme, b"key", "1700000000", body), header);
        let verify = |value: &str, now: i64| {
            let headers: &[(&str, &str)] = &[("X-Sig", value)];
            Scheme::Hmac(scheme.clone()).verify(&secrets(&["nothex", "6b6579"]), headers, body, now, 5)
        };
        assert_eq!(verify(&header, 1_700_000_005), Ok(Verified { secret_index: 1 }));
        assert_eq!(verify(&header, 1_700_000_006), Err(Rejection::Stale));
        assert_eq!(verify(&format!("h1={mac}"), 1_700_000_000), Err(Rejection::Malformed));
        assert_eq!(verify("ts=1700000000;h1=!!", 1_700_000_000), Err(Rejection::Malformed));
        let flood = format!("ts=1700000000{}", ";h1=AAAA".repeat(10_000));
        assert_eq!(verify(&flood, 1_700_000_000), Err(Rejection::Malformed));
    }

    #[test]
    fn several_signature_headers_are_read_and_their_entries_capped_together() {
        let scheme = GenericHmac {
            headers: (1..=3).map(|n| format!("X-Sig-{n}")).collect(),
            encoding: Encoding::Base64,
            ..GenericHmac::new("unused")
        };
        let body = b"{}";
        let right = BASE64.encode(Algorithm::Sha256.sign(b"new", &[body]));
        let wrong = BASE64.encode([0u8; 32]);
        let verify = |headers: &[(&str, &str)]| {
            Scheme::Hmac(scheme.clone()).verify(&secrets(&["old", "new"]), headers, body, 0, 5)
        };
        assert_eq!(
            verify(&[("X-Sig-1", &wrong), ("X-Sig-3", &right)]),
            Ok(Verified { secret_index: 1 })
        );
        assert_eq!(verify(&[("X-Sig-2", &wrong)]), Err(Rejection::Mismatch));
        assert_eq!(verify(&[("X-Other", &right)]), Err(Rejection::Missing));
        let listed = GenericHmac {
            separator: Some(' '),
            prefix: Some("v1,".to_owned()),
            ..scheme.clone()
        };
        let many = format!("v1,{wrong} ").repeat(MAX_SIGNATURE_ENTRIES);
        let headers: &[(&str, &str)] = &[("X-Sig-1", &many), ("X-Sig-2", &format!("v1,{right}"))];
        assert_eq!(
            Scheme::Hmac(listed).verify(&secrets(&["new"]), headers, body, 0, 5),
            Err(Rejection::Malformed)
        );
    }

    #[test]
    fn timestamps_are_read_in_their_format() {
        assert_eq!(TimestampFormat::Unix.parse("1700000000"), Some(1_700_000_000));
        assert_eq!(TimestampFormat::UnixMillis.parse("1700000000999"), Some(1_700_000_000));
        assert_eq!(
            TimestampFormat::Rfc3339.parse("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000)
        );
        assert_eq!(TimestampFormat::Rfc3339.parse("1700000000"), None);
        for format in [
            TimestampFormat::Unix,
            TimestampFormat::UnixMillis,
            TimestampFormat::Rfc3339,
        ] {
            assert_eq!(format.parse(&format.format(1_700_000_000)), Some(1_700_000_000));
        }
    }
}
