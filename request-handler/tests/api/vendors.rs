//! Every vendor preset through the HTTP endpoint: a request signed the way the vendor signs is
//! queued and answered the way the vendor wants; a wrong one gets the vendor's rejection and
//! nothing is published. Then each vendor's handshake and answer contract, and `allow_ips`.

use webhook_core::envelope::Envelope;
use webhook_core::signature::{
    FAMILIES, Scheme, TWITCH_MESSAGE_TYPE, ToSign, adyen_signature, family, mailgun_signature, twilio_json_url,
};

use crate::helpers::{TestApp, env, json};

const ED25519_SEED: &str = include_str!("../../../webhook-core/tests/vectors/keys/ed25519.seed");
const P256_KEY: &str = include_str!("../../../webhook-core/tests/vectors/keys/p256.pem");
const RSA_KEY: &str = include_str!("../../../webhook-core/tests/vectors/keys/rsa.pem");
const ADYEN_KEY: &str = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056";
const STANDARD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const URL: &str = "https://hooks.example.com/webhooks";

/// One source per preset, each named after its scheme, with the test keys of
/// webhook-core/tests/vectors/keys; plus the `allow_ips` sources.
fn sources() -> String {
    let certificate = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../webhook-core/tests/vectors/keys/paypal-cert.pem"
    );
    let mut text = String::new();
    for family in FAMILIES {
        let name = family.name;
        text.push_str(&format!("[[source]]\nname = \"{name}\"\nscheme = \"{name}\"\n"));
        text.push_str(&match name {
            "discord" => "public_key = \"44619b01692cf01a21a0c222f985aa72104e92b3f6828cfdedc3968889e7b1ba\"\n".to_owned(),
            "sendgrid" => "public_key = \"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMfT5+qCxqcDHpp4DANHB+X2Uu+YnL93581AQZZxHnORSvmD9W7cmV+7J0UeEapwicQdEaBKbZfveEpyf1G7M2g==\"\n".to_owned(),
            "paypal" => format!("certificate_file = \"{certificate}\"\nwebhook_id = \"WH-ID-1\"\n"),
            _ => format!("secrets = [\"{}\"]\n", secret(name)),
        });
        if Scheme::Vendor(family).signs_url() {
            text.push_str(&format!("url = \"{URL}/{name}\"\n"));
        }
        if family.json.delivery_id.is_none() {
            text.push_str(if name == "adyen" {
                "delivery_id = { json = \"/notificationItems/0/NotificationRequestItem/pspReference\" }\n"
            } else {
                "delivery_id = \"body_hash\"\n"
            });
        }
        text.push('\n');
    }
    text.push_str(
        "[[source]]\nname = \"elsewhere\"\nscheme = \"github\"\nsecrets = [\"s\"]\nallow_ips = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n\n\
         [[source]]\nname = \"local\"\nscheme = \"github\"\nsecrets = [\"s\"]\nallow_ips = [\"127.0.0.1\"]\n\n\
         [[source]]\nname = \"unsigned\"\nscheme = \"none\"\nallow_ips = [\"127.0.0.0/8\", \"::1\"]\ndelivery_id = { json = \"/id\" }\n",
    );
    text
}

/// The shared secret (or private key) each preset's source is configured with, as its vendor
/// writes it.
fn secret(name: &str) -> &'static str {
    match name {
        "adyen" => ADYEN_KEY,
        "postmark" => "postmark:hook-password",
        "standard" | "svix" | "resend" | "clerk" | "gitlab" => STANDARD_SECRET,
        "discord" => ED25519_SEED.trim(),
        "sendgrid" => P256_KEY,
        "paypal" => RSA_KEY,
        _ => "vendor-secret",
    }
}

/// Another key of the same kind, which the source does not have.
fn wrong_secret(name: &str) -> Option<&'static str> {
    match name {
        "adyen" => Some("00112233445566778899AABBCCDDEEFF"),
        "postmark" => Some("postmark:wrong-password"),
        "standard" | "svix" | "resend" | "clerk" | "gitlab" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        // One test key pair each: a wrong request is a changed body instead.
        "discord" | "sendgrid" | "paypal" => None,
        _ => Some("wrong-secret"),
    }
}

/// A body with every place the presets read a delivery id or event type from; `n` changes
/// what is signed without changing where anything is.
fn body(name: &str, id: &str, secret: &str, n: u32, now: i64) -> Vec<u8> {
    if name == "adyen" {
        let signing = format!("{id}::TestMerchant:order-1:{n}:EUR:AUTHORISATION:true");
        let signature = adyen_signature(secret, &signing).unwrap_or_default();
        return serde_json::json!({"live": "false", "notificationItems": [{"NotificationRequestItem": {
            "additionalData": {"hmacSignature": signature}, "amount": {"currency": "EUR", "value": n},
            "eventCode": "AUTHORISATION", "merchantAccountCode": "TestMerchant",
            "merchantReference": "order-1", "pspReference": id, "success": "true"}}]})
        .to_string()
        .into_bytes();
    }
    let mut value = serde_json::json!({
        "id": id, "event_id": id, "type": "thing.created", "event_type": "thing.created",
        "event": "thing.created", "topic": "thing.created", "webhookEvent": "thing.created",
        "RecordType": "Delivery", "webhookTimestamp": now * 1000,
        "event-data": {"id": id, "event": "delivered"}, "events": [{"eventType": "UPDATE"}],
        "data": {"n": n},
    });
    if name == "mailgun" {
        value["signature"] = mailgun_signature(secret, now, &format!("token-{id}"));
    }
    value.to_string().into_bytes()
}

/// The path, body and headers of a request signed with `secret` the way the vendor signs.
fn request(name: &str, id: &str, secret: &str, n: u32) -> (String, Vec<u8>, Vec<(String, String)>) {
    let scheme = Scheme::Vendor(family(name).unwrap());
    let now = chrono::Utc::now().timestamp();
    let body = body(name, id, secret, n, now);
    let (path, url) = match name {
        "twilio" => {
            let url = twilio_json_url(&format!("{URL}/twilio"), &body);
            let query = url
                .split_once('?')
                .map(|(_, query)| query.to_owned())
                .unwrap_or_default();
            (format!("/webhooks/twilio?{query}"), Some(url))
        }
        _ => (
            format!("/webhooks/{name}"),
            scheme.signs_url().then(|| format!("{URL}/{name}")),
        ),
    };
    let to_sign = ToSign {
        url: url.as_deref(),
        webhook_id: Some("WH-ID-1"),
        ..ToSign::new(id, now, &body)
    };
    let mut headers = scheme.sign(secret, &to_sign);
    let places = scheme.places(false);
    for place in [places.delivery_id, places.event_type].into_iter().flatten() {
        if let webhook_core::signature::Place::Header(header) = place
            && !headers.iter().any(|(present, _)| present.eq_ignore_ascii_case(header))
        {
            let value = if Some(place) == places.delivery_id {
                id
            } else {
                "thing.created"
            };
            headers.push((header.to_owned(), value.to_owned()));
        }
    }
    headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
    (path, body, headers)
}

async fn app() -> (TestApp, testkit::SourcesFile) {
    app_with(&[]).await
}

async fn app_with(vars: &[(&str, &str)]) -> (TestApp, testkit::SourcesFile) {
    let sources = testkit::SourcesFile::new(&sources());
    let broker = testkit::TestBroker::new();
    let mut env = env(&broker).with("SOURCES_FILE", sources.path());
    for (name, value) in vars {
        env.set(name, value);
    }
    let app = TestApp::spawn_with(broker, &env).await;
    app.wait_ready().await;
    (app, sources)
}

async fn post(app: &TestApp, (path, body, headers): &(String, Vec<u8>, Vec<(String, String)>)) -> reqwest::Response {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    app.post(path, body, &headers).await
}

#[tokio::test]
async fn every_preset_queues_what_its_vendor_signs_and_refuses_a_wrong_signature() {
    let (app, _file) = app().await;
    for family in FAMILIES {
        let name = family.name;
        let id = format!("{name}-{}", testkit::unique_suffix());
        let wrong = match wrong_secret(name) {
            Some(wrong) => request(name, &id, wrong, 1),
            None => {
                // The body changed after signing.
                let (path, _, headers) = request(name, &id, secret(name), 1);
                (path, request(name, &id, secret(name), 2).1, headers)
            }
        };
        let response = post(&app, &wrong).await;
        assert_eq!(response.status(), 401, "{name}");
        if name == "xero" {
            assert!(
                response.bytes().await.unwrap().is_empty(),
                "xero: a bad signature's 401 is empty"
            );
        } else {
            assert_eq!(
                json(response).await,
                serde_json::json!({"error": "invalid signature"}),
                "{name}"
            );
        }

        let good = request(name, &id, secret(name), 1);
        let response = post(&app, &good).await;
        assert_eq!(response.status(), 200, "{name}");
        let content_type = response
            .headers()
            .get("content-type")
            .map(|value| value.to_str().unwrap().to_owned());
        let answer = response.bytes().await.unwrap();
        match name {
            "adyen" => {
                assert_eq!(&answer[..], b"[accepted]");
                assert_eq!(content_type.as_deref(), Some("text/plain; charset=utf-8"));
            }
            "discord" => assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&answer).unwrap(),
                serde_json::json!({"type": 5})
            ),
            _ => assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&answer).unwrap()["status"],
                "queued",
                "{name}"
            ),
        }
        let taken = app.broker.take_all(".events").await;
        assert_eq!(taken.len(), 1, "{name}: one message, the signed one");
        assert_eq!(taken[0].body, good.1, "{name}");
        let envelope = Envelope::from_properties(&taken[0].properties).unwrap();
        assert_eq!(envelope.source, name);
        if family.json.delivery_id.is_some() || name == "adyen" {
            assert_eq!(envelope.delivery_id, id, "{name}");
        }
    }
}

#[tokio::test]
async fn vendor_handshakes_are_answered_as_each_vendor_requires_and_not_stored() {
    let (app, _file) = app().await;
    let now = chrono::Utc::now().timestamp();
    let signed = |name: &str, body: &[u8], extra: &[(&str, &str)]| {
        let scheme = Scheme::Vendor(family(name).unwrap());
        let mut headers = scheme.sign(secret(name), &ToSign::new("hs-1", now, body));
        headers.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        (format!("/webhooks/{name}"), body.to_vec(), headers)
    };

    // Discord: a signed PING is answered {"type":1}; its deliberate bad-signature probe is 401.
    let ping = signed("discord", br#"{"id":"p1","type":1,"application_id":"a1"}"#, &[]);
    let response = post(&app, &ping).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await, serde_json::json!({"type": 1}));
    let mut probe = ping.clone();
    probe.1 = br#"{"id":"p2","type":1,"application_id":"a1"}"#.to_vec();
    assert_eq!(post(&app, &probe).await.status(), 401);

    // Xero: a signed Intent to Receive is 200 with an empty body; a badly signed one 401, empty.
    let intent = br#"{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"YSXCMKAQBJOEMGUZEPFZ"}"#;
    let response = post(&app, &signed("xero", intent, &[])).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
    let mut bad = signed("xero", intent, &[]);
    bad.2 = vec![(
        "x-xero-signature".to_owned(),
        "xC3ghfGvUSD7P/HruQQ/LkHQpX86R23J4mJup8ZJdiA=".to_owned(),
    )];
    let response = post(&app, &bad).await;
    assert_eq!(response.status(), 401);
    assert!(response.bytes().await.unwrap().is_empty());

    // Twitch: the challenge back, raw, as text/plain.
    let verification = br#"{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"type":"channel.follow"}}"#;
    let response = post(
        &app,
        &signed(
            "twitch",
            verification,
            &[(TWITCH_MESSAGE_TYPE, "webhook_callback_verification")],
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert_eq!(response.text().await.unwrap(), "pogchamp-kappa-360noscope-vohiyo");

    // Zoom: plainToken and its HMAC under the secret token (webhook-core/tests/vectors/derive.sh
    // computes the same with OpenSSL for "zoom-secret"; this source's secret is another).
    let validation = br#"{"event":"endpoint.url_validation","event_ts":1700000000000,"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"}}"#;
    let response = post(&app, &signed("zoom", validation, &[])).await;
    assert_eq!(response.status(), 200);
    let expected =
        webhook_core::signature::Algorithm::Sha256.sign(secret("zoom").as_bytes(), &[b"qgg8vlvZRS6UYooatFL8Aw"]);
    assert_eq!(
        json(response).await,
        serde_json::json!({"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": hex::encode(expected)})
    );

    // Slack's stays as it was.
    let challenge = br#"{"type":"url_verification","challenge":"c-1","token":"t"}"#;
    let response = post(&app, &signed("slack", challenge, &[])).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await, serde_json::json!({"challenge": "c-1"}));

    assert!(
        app.broker.take_all(".events").await.is_empty(),
        "a handshake is never stored"
    );
}

#[tokio::test]
async fn a_source_with_allow_ips_refuses_other_addresses_with_403() {
    let (app, _file) = app().await;
    let body = br#"{"id":"ip-1","type":"push"}"#;
    let signature = testkit::sign("s", body);
    let headers = [
        ("X-Hub-Signature-256", signature.as_str()),
        ("X-GitHub-Delivery", "ip-1"),
    ];
    let response = app.post("/webhooks/elsewhere", body, &headers).await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        json(response).await,
        serde_json::json!({"error": "address not allowed"})
    );
    assert!(app.broker.take_all(".events").await.is_empty());

    assert_eq!(app.post("/webhooks/local", body, &headers).await.status(), 200);
    assert_eq!(app.post("/webhooks/unsigned", body, &[]).await.status(), 200);
    assert_eq!(app.broker.take_all(".events").await.len(), 2);
}

/// The status of a signed request to a github-scheme source from `forwarded`.
async fn post_forwarded(app: &TestApp, path: &str, forwarded: &str) -> u16 {
    let body = br#"{"id":"xff-1","type":"push"}"#;
    let signature = testkit::sign("s", body);
    let headers = [
        ("X-Hub-Signature-256", signature.as_str()),
        ("X-GitHub-Delivery", "xff-1"),
        ("X-Forwarded-For", forwarded),
    ];
    app.post(path, body, &headers).await.status().as_u16()
}

#[tokio::test]
async fn x_forwarded_for_decides_only_behind_a_trusted_proxy() {
    let post = post_forwarded;
    // Not trusted: the header is ignored and the peer (127.0.0.1) decides.
    let (app, _file) = app().await;
    assert_eq!(post(&app, "/webhooks/elsewhere", "192.0.2.7").await, 403);
    assert_eq!(post(&app, "/webhooks/local", "192.0.2.7").await, 200);
    drop(app);

    // Behind a trusted proxy: the last address it did not add itself.
    let (app, _file) = app_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    assert_eq!(post(&app, "/webhooks/elsewhere", "192.0.2.7").await, 200);
    assert_eq!(post(&app, "/webhooks/elsewhere", "192.0.2.7, 198.51.100.1").await, 403);
    assert_eq!(post(&app, "/webhooks/local", "192.0.2.7").await, 403);
    assert_eq!(post(&app, "/webhooks/elsewhere", "not an address").await, 403);
}
