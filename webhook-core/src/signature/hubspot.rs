//! HubSpot. Version 3 (`X-HubSpot-Signature-v3`): the base64 HMAC-SHA256 under the app's
//! client secret of `{method}{uri}{body}{X-HubSpot-Request-Timestamp}`, the timestamp in
//! milliseconds and refused past 5 minutes, the URI the full URL HubSpot called with the
//! percent-escapes of `: / ? @ ! $ ' ( ) * , ;` decoded, as HubSpot's docs say. When that header is
//! there it alone decides. Without it, apps of the older kinds send `X-HubSpot-Signature` with
//! `X-HubSpot-Signature-Version`: `v1` is the hex SHA-256 (a plain hash, not an HMAC) of
//! `{client secret}{body}`, `v2` of `{client secret}{method}{uri}{body}`; neither is timestamped.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{Algorithm, Family, Keys, Places, Rejection, Signed, ToSign, Verified, check, check_hash, text_key};

/// Version 3's signature header.
pub const HUBSPOT_SIGNATURE_V3: &str = "X-HubSpot-Signature-v3";
/// Version 3's timestamp header (Unix milliseconds).
pub const HUBSPOT_TIMESTAMP: &str = "X-HubSpot-Request-Timestamp";
/// Versions 1 and 2's signature header.
pub const HUBSPOT_SIGNATURE: &str = "X-HubSpot-Signature";
/// Which of 1 and 2 it is.
pub const HUBSPOT_SIGNATURE_VERSION: &str = "X-HubSpot-Signature-Version";

pub(super) const FAMILY: Family = Family {
    signs_url: true,
    // A batch of events (a JSON array): no id of its own, no type of its own.
    ..Family::new("hubspot", Places::NOWHERE, Places::NOWHERE, verify, sign)
};

/// The URI as HubSpot signs it for v3.
fn v3_uri(url: &str) -> String {
    const DECODED: [(&str, &str); 11] = [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
    ];
    let mut uri = url.to_owned();
    for (escaped, plain) in DECODED.iter().chain(&[("%3B", ";")]) {
        uri = uri.replace(escaped, plain).replace(&escaped.to_lowercase(), plain);
    }
    uri
}

fn verify(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    if request.has(HUBSPOT_SIGNATURE_V3) {
        let signature = request.header(HUBSPOT_SIGNATURE_V3)?;
        let tag = BASE64.decode(signature.trim()).map_err(|_| Rejection::Malformed)?;
        let timestamp = request.header(HUBSPOT_TIMESTAMP)?.trim();
        request.timestamp_as(timestamp, super::TimestampFormat::UnixMillis)?;
        let uri = v3_uri(request.url());
        return check(
            &keys.secrets,
            text_key,
            Algorithm::Sha256,
            &[
                request.method.as_bytes(),
                uri.as_bytes(),
                request.body,
                timestamp.as_bytes(),
            ],
            &[tag],
        );
    }
    let signature = request.header(HUBSPOT_SIGNATURE)?;
    let tag = hex::decode(signature.trim()).map_err(|_| Rejection::Malformed)?;
    let version = if request.has(HUBSPOT_SIGNATURE_VERSION) {
        request.header(HUBSPOT_SIGNATURE_VERSION)?.trim()
    } else {
        "v1"
    };
    match version {
        "v1" => check_hash(&keys.secrets, &[request.body], &tag),
        "v2" => check_hash(
            &keys.secrets,
            &[request.method.as_bytes(), request.url().as_bytes(), request.body],
            &tag,
        ),
        _ => Err(Rejection::Malformed),
    }
}

/// Signs like a current app: v3.
fn sign(secret: &str, request: &ToSign<'_>) -> Vec<(String, String)> {
    let timestamp = (request.timestamp * 1000).to_string();
    let uri = v3_uri(request.url.unwrap_or_default());
    let tag = Algorithm::Sha256.sign(
        secret.as_bytes(),
        &[b"POST", uri.as_bytes(), request.body, timestamp.as_bytes()],
    );
    vec![
        (HUBSPOT_TIMESTAMP.to_owned(), timestamp),
        (HUBSPOT_SIGNATURE_V3.to_owned(), BASE64.encode(tag)),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::{AsDyn, Request, Scheme, secrets};
    use super::*;

    fn hubspot(
        headers: &[(&str, &str)],
        method: &str,
        url: &str,
        body: &[u8],
        secret: &str,
        now: i64,
    ) -> Result<Verified, Rejection> {
        let request = Request {
            headers: &AsDyn(headers),
            body,
            method,
            url: Some(url),
            webhook_id: None,
            now,
            tolerance: 300,
        };
        Scheme::Vendor(&FAMILY).verify_request(&Keys::secrets(&secrets(&[secret])), &request)
    }

    // HubSpot's published examples ("Validating requests": v1 and v2).
    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const V1_BODY: &[u8] = br#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
    const V1: &str = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de";
    const V2: &str = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e";

    #[test]
    fn hubspots_published_v1_and_v2_examples_are_accepted() {
        let v1 = [(HUBSPOT_SIGNATURE, V1), (HUBSPOT_SIGNATURE_VERSION, "v1")];
        assert_eq!(
            hubspot(&v1, "POST", "https://example.com/x", V1_BODY, SECRET, 0),
            Ok(Verified { secret_index: 0 })
        );
        let v2 = [(HUBSPOT_SIGNATURE, V2), (HUBSPOT_SIGNATURE_VERSION, "v2")];
        assert_eq!(
            hubspot(&v2, "GET", "https://www.example.com/webhook_uri", b"", SECRET, 0),
            Ok(Verified { secret_index: 0 })
        );
        // Another method, URL, body or version is another hash.
        assert_eq!(
            hubspot(&v2, "POST", "https://www.example.com/webhook_uri", b"", SECRET, 0),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            hubspot(&v2, "GET", "https://www.example.com/webhook_url", b"", SECRET, 0),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            hubspot(&v1, "POST", "https://example.com/x", b"[]", SECRET, 0),
            Err(Rejection::Mismatch)
        );
        let v3_named = [(HUBSPOT_SIGNATURE, V1), (HUBSPOT_SIGNATURE_VERSION, "v3")];
        assert_eq!(
            hubspot(&v3_named, "POST", "https://example.com/x", V1_BODY, SECRET, 0),
            Err(Rejection::Malformed)
        );
    }

    // HubSpot publishes no v3 vector. Made by webhook-core/tests/vectors/derive.sh (OpenSSL).
    #[test]
    fn v3_signs_method_uri_body_and_timestamp_and_alone_decides() {
        let body = br#"[{"eventId":1,"subscriptionType":"contact.creation"}]"#;
        let url = "https://example.com/webhooks/hubspot?a=1";
        let v3 = [
            (HUBSPOT_SIGNATURE_V3, "OUgJ03szFIOMFC/3lq3zes/r4ZtU4ThmFNtM8UM8pGQ="),
            (HUBSPOT_TIMESTAMP, "1700000000000"),
        ];
        assert_eq!(
            hubspot(&v3, "POST", url, body, "hubspot-secret", 1_700_000_000),
            Ok(Verified { secret_index: 0 })
        );
        assert_eq!(
            hubspot(&v3, "POST", url, body, "hubspot-secret", 1_700_000_301),
            Err(Rejection::Stale)
        );
        assert_eq!(
            hubspot(
                &v3,
                "POST",
                "https://example.com/webhooks/hubspot?a=2",
                body,
                "hubspot-secret",
                1_700_000_000
            ),
            Err(Rejection::Mismatch)
        );
        // With v3 present, a valid v1 beside a bad v3 does not pass.
        let both = [
            (HUBSPOT_SIGNATURE_V3, "AAAA"),
            (HUBSPOT_TIMESTAMP, "1700000000000"),
            (HUBSPOT_SIGNATURE, V1),
        ];
        assert_eq!(
            hubspot(&both, "POST", url, V1_BODY, SECRET, 1_700_000_000),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            v3_uri("https://example.com/a%3Ab%2fc?x=%40%20"),
            "https://example.com/a:b/c?x=@%20"
        );
    }
}
