//! The demo's vendors, read from the same `SOURCES_FILE` the handler and the consumer run with,
//! and their requests signed the way each source's scheme says.
//!
//! [`webhook_core::sources`] reads the file (secrets from `secrets`, `secret_env` and
//! `secret_files`, the scheme, where the delivery id and event type go), as the handler does, so
//! the demo signs with exactly what the handler verifies. Every `[[source]]` with a
//! `[source.sales]` table takes part; its `preset` (the consumer's) decides the shape of its
//! payloads.
//!
//! Vendors that sign with a private key of their own (Discord, SendGrid, PayPal) verify with a
//! public key the file holds; loadgen signs for them with the private key in the file named by
//! `{SOURCE}_SIGNING_KEY_FILE` (the source's name upper-cased, `-` as `_`): an Ed25519 seed in
//! hex, or a PKCS#8 PEM key. Twilio's JSON bodies get their `bodySHA256` query and Mailgun's
//! their `signature` object; Adyen signs each item of a notification: a body that is one gets
//! its items signed, any other is sent as the payload of a one-item notification (its
//! `pspReference` the delivery id, its `eventCode` the event type).

use std::path::Path;

use anyhow::{Context, anyhow};
use webhook_core::config::Secret;
use webhook_core::signature::{KeyKind, Scheme, ToSign, adyen_signed_body, mailgun_signature, twilio_json_url};
use webhook_core::sources::{Identity, Locator, Preset, SourceConfig, SourcesFile, invalid_file};

/// A source the demo sends to.
#[derive(Debug, Clone)]
pub(crate) struct Vendor {
    pub(crate) name: String,
    pub(crate) preset: Preset,
    pub(crate) scheme: Scheme,
    secret: Secret,
    delivery_id: Identity,
    event_type: Option<Locator>,
    /// The URL the vendor signs, for schemes that sign it.
    url: Option<String>,
    /// The vendor's webhook id, for schemes that sign it.
    webhook_id: Option<String>,
}

/// The private key a vendor of a public-key scheme signs with, from the file named by
/// `{SOURCE}_SIGNING_KEY_FILE`.
fn signing_key(source: &str, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Secret> {
    let variable = format!("{}_SIGNING_KEY_FILE", source.to_uppercase().replace('-', "_"));
    let file = env(&variable).with_context(|| {
        format!(
            "source {source:?} verifies with the vendor's public key: set {variable} to a file with its private key"
        )
    })?;
    let key = std::fs::read_to_string(&file).with_context(|| format!("{variable}: cannot read {file}"))?;
    Ok(Secret::new(key.trim()))
}

/// A request to send: the query string to append to the source's path (Twilio's
/// `bodySHA256`), the body (Mailgun's carries its signature) and the headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) query: Option<String>,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Vec<(String, String)>,
}

/// The sources of `path` that have a `[source.sales]` table, in file order.
pub(crate) fn read(path: &Path) -> anyhow::Result<Vec<Vendor>> {
    let file = SourcesFile::read(path).map_err(|error| anyhow!("{error}"))?;
    let env = |name: &str| std::env::var(name).ok();
    let read_file = |secret_file: &str| std::fs::read_to_string(secret_file);
    file.sources()
        .iter()
        .filter(|source| source.sales.is_some())
        .map(|source| Vendor::new(path, source, &env, &read_file))
        .collect()
}

impl Vendor {
    /// A source as loadgen signs for it: with its first secret, or for a public-key scheme the
    /// private key of `{SOURCE}_SIGNING_KEY_FILE`.
    pub(crate) fn new(
        path: &Path,
        source: &SourceConfig,
        env: &dyn Fn(&str) -> Option<String>,
        read_file: &dyn Fn(&str) -> std::io::Result<String>,
    ) -> anyhow::Result<Self> {
        let secret = match source.scheme.keys() {
            KeyKind::Secrets | KeyKind::Either(_) => {
                let secrets = source
                    .secrets(env, read_file)
                    .map_err(|why| anyhow!("{}", invalid_file(path, &why)))?;
                secrets
                    .first()
                    .cloned()
                    .with_context(|| format!("{}: source {:?} has no secret", path.display(), source.name))?
            }
            KeyKind::Nothing => Secret::new(""),
            KeyKind::PublicKeys(_) | KeyKind::Certificates => signing_key(source.name.as_str(), env)?,
        };
        Ok(Self {
            name: source.name.to_string(),
            preset: source.sales.as_ref().map_or(Preset::Canonical, |sales| sales.preset),
            scheme: source.scheme.clone(),
            secret,
            delivery_id: source.delivery_id.clone(),
            event_type: source.event_type.clone(),
            url: source.endpoint.url.clone(),
            webhook_id: source.endpoint.webhook_id.clone(),
        })
    }

    /// A request carrying `body` (or, for a vendor that signs inside it, `body` with its
    /// signature), signed at Unix time `now`.
    pub(crate) fn request(&self, delivery_id: &str, event_type: &str, body: &[u8], now: i64) -> Request {
        let mut body = body.to_vec();
        if self.scheme.name() == "mailgun"
            && let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice(&body)
        {
            let token = format!("{delivery_id}-{now}");
            object.insert(
                "signature".to_owned(),
                mailgun_signature(self.secret.expose(), now, &token),
            );
            body = serde_json::Value::Object(object).to_string().into_bytes();
        }
        if self.scheme.name() == "adyen" {
            body = adyen_body(self.secret.expose(), delivery_id, event_type, body);
        }
        let url = match (&self.url, self.scheme.name()) {
            (Some(url), "twilio") => Some(twilio_json_url(url, &body)),
            (url, _) => url.clone(),
        };
        let query = url
            .as_deref()
            .and_then(|url| url.split_once('?'))
            .map(|(_, query)| query.to_owned());
        let headers = self.headers_for(delivery_id, event_type, &body, url.as_deref(), now);
        Request { query, body, headers }
    }

    /// The headers of a request carrying `body`, signed at Unix time `now`: the signature, and
    /// the delivery id and event type where the handler looks for them.
    fn headers_for(
        &self,
        delivery_id: &str,
        event_type: &str,
        body: &[u8],
        url: Option<&str>,
        now: i64,
    ) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut add = |name: &str, value: String| {
            if !headers.iter().any(|(present, _)| present.eq_ignore_ascii_case(name)) {
                headers.push((name.to_owned(), value));
            }
        };
        let request = ToSign {
            url,
            webhook_id: self.webhook_id.as_deref(),
            ..ToSign::new(delivery_id, now, body)
        };
        for (name, value) in self.scheme.sign(self.secret.expose(), &request) {
            add(&name, value);
        }
        if let Identity::At(Locator::Header(name)) = &self.delivery_id {
            add(name, delivery_id.to_owned());
        }
        if let Some(Locator::Header(name)) = &self.event_type {
            add(name, event_type.to_owned());
        }
        // What the handler falls back to when the source has no place for the event type.
        add("X-GitHub-Event", event_type.to_owned());
        add("Content-Type", "application/json".to_owned());
        headers
    }
}

/// An Adyen notification carrying `body`, every item signed under the hex key: `body` itself
/// if it is a notification, else a one-item notification with `body` as its `payload`.
fn adyen_body(hex_key: &str, delivery_id: &str, event_type: &str, body: Vec<u8>) -> Vec<u8> {
    if let Some(signed) = adyen_signed_body(hex_key, &body) {
        return signed;
    }
    let payload: serde_json::Value =
        serde_json::from_slice(&body).unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned().into());
    let notification = serde_json::json!({
        "live": "false",
        "notificationItems": [{
            "NotificationRequestItem": {
                "pspReference": delivery_id,
                "eventCode": event_type,
                "merchantAccountCode": "loadgen",
                "merchantReference": delivery_id,
                "amount": { "value": 0, "currency": "EUR" },
                "success": "true",
                "payload": payload,
            }
        }]
    });
    adyen_signed_body(hex_key, notification.to_string().as_bytes()).unwrap_or(body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use webhook_core::signature::Headers;

    struct Map(Vec<(String, String)>);

    impl Headers for Map {
        fn raw(&self, name: &str) -> Option<&[u8]> {
            self.0
                .iter()
                .find(|(present, _)| present.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_bytes())
        }
    }

    #[test]
    fn the_demo_sources_file_signs_requests_its_own_handler_accepts() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo-sources.toml");
        let vendors = read(&path).unwrap();
        let names: Vec<(&str, Preset)> = vendors
            .iter()
            .map(|vendor| (vendor.name.as_str(), vendor.preset))
            .collect();
        assert_eq!(
            names,
            [
                ("shop", Preset::Canonical),
                ("stripe", Preset::Stripe),
                ("shopify", Preset::Shopify)
            ]
        );
        let file = SourcesFile::read(&path).unwrap();
        let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
        let now = 1_780_000_000;
        for vendor in &vendors {
            let headers = Map(vendor.request("evt_1", "charge.succeeded", body, now).headers);
            let source = file.get(&vendor.name).unwrap();
            let secrets = source
                .secrets(&|_| None, &|_| Err(std::io::ErrorKind::NotFound.into()))
                .unwrap();
            assert!(
                source
                    .scheme
                    .verify(&secrets, &headers, body, now, source.tolerance_secs)
                    .is_ok(),
                "{}",
                vendor.name
            );
            let tampered = br#"{"id":"evt_1","type":"charge.succeeded" }"#;
            assert!(
                source
                    .scheme
                    .verify(&secrets, &headers, tampered, now, source.tolerance_secs)
                    .is_err()
            );
        }
        let shopify = vendors.iter().find(|vendor| vendor.name == "shopify").unwrap();
        let headers = Map(shopify.request("d-1", "orders/paid", body, now).headers);
        assert_eq!(headers.get("X-Shopify-Webhook-Id"), Some("d-1"));
        assert_eq!(headers.get("X-Shopify-Topic"), Some("orders/paid"));
    }

    #[test]
    fn every_preset_is_signed_as_its_handler_verifies() {
        let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../webhook-core/tests/vectors/keys");
        let key_file = |name: &str| keys.join(name).display().to_string();
        let mut text = String::new();
        for family in webhook_core::signature::FAMILIES {
            let name = family.name;
            text.push_str(&format!("[[source]]\nname = \"{name}\"\nscheme = \"{name}\"\n"));
            text.push_str(&match name {
                "discord" => "public_key = \"44619b01692cf01a21a0c222f985aa72104e92b3f6828cfdedc3968889e7b1ba\"\n".to_owned(),
                "sendgrid" => "public_key = \"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMfT5+qCxqcDHpp4DANHB+X2Uu+YnL93581AQZZxHnORSvmD9W7cmV+7J0UeEapwicQdEaBKbZfveEpyf1G7M2g==\"\n".to_owned(),
                "paypal" => format!("certificate_file = \"{}\"\nwebhook_id = \"WH-1\"\n", key_file("paypal-cert.pem")),
                "postmark" => "secrets = [\"user:password\"]\n".to_owned(),
                "adyen" => "secrets = [\"44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056\"]\n".to_owned(),
                _ => "secrets = [\"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\"]\n".to_owned(),
            });
            if webhook_core::signature::Scheme::Vendor(family).signs_url() {
                text.push_str(&format!("url = \"https://hooks.example.com/{name}\"\n"));
            }
            if family.json.delivery_id.is_none() {
                text.push_str("delivery_id = \"body_hash\"\n");
            }
        }
        let file = SourcesFile::parse(&text).unwrap();
        let env = |variable: &str| match variable {
            "DISCORD_SIGNING_KEY_FILE" => Some(key_file("ed25519.seed")),
            "SENDGRID_SIGNING_KEY_FILE" => Some(key_file("p256.pem")),
            "PAYPAL_SIGNING_KEY_FILE" => Some(key_file("rsa.pem")),
            _ => None,
        };
        let read_file = |path: &str| std::fs::read_to_string(path);
        let now = chrono::Utc::now().timestamp();
        let body = format!(
            r#"{{"id":"evt_1","type":"charge.succeeded","webhookTimestamp":{}}}"#,
            now * 1000
        );
        for source in file.sources() {
            let vendor = Vendor::new(Path::new("sources.toml"), source, &env, &read_file).unwrap();
            let request = vendor.request("evt_1", "charge.succeeded", body.as_bytes(), now);
            let keys = source.keys(&env, &read_file, now).unwrap();
            let url = source.endpoint.url.as_ref().map(|url| {
                request
                    .query
                    .as_ref()
                    .map_or(url.clone(), |query| format!("{url}?{query}"))
            });
            let headers = Map(request.headers.clone());
            let verify = |body: &[u8]| {
                source.scheme.verify_request(
                    &keys,
                    &webhook_core::signature::Request {
                        headers: &headers,
                        body,
                        method: "POST",
                        url: url.as_deref(),
                        webhook_id: source.endpoint.webhook_id.as_deref(),
                        now,
                        tolerance: source.tolerance_secs,
                    },
                )
            };
            assert!(verify(&request.body).is_ok(), "{}", source.name);
        }
        assert!(file.get("adyen").is_some(), "every preset, Adyen's included");
    }
}
