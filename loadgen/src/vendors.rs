//! The demo's vendors, read from the same `SOURCES_FILE` the handler and the consumer run with,
//! and their requests signed the way each source's scheme says.
//!
//! [`webhook_core::sources`] reads the file (secrets from `secrets`, `secret_env` and
//! `secret_files`, the scheme, where the delivery id and event type go), as the handler does, so
//! the demo signs with exactly what the handler verifies. Every `[[source]]` with a
//! `[source.sales]` table takes part; its `preset` (the consumer's) decides the shape of its
//! payloads.

use std::path::Path;

use anyhow::{Context, anyhow};
use webhook_core::config::Secret;
use webhook_core::signature::{Scheme, ToSign};
use webhook_core::sources::{Identity, Locator, Preset, SourcesFile, invalid_file};

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

/// The sources of `path` that have a `[source.sales]` table, in file order.
pub(crate) fn read(path: &Path) -> anyhow::Result<Vec<Vendor>> {
    let file = SourcesFile::read(path).map_err(|error| anyhow!("{error}"))?;
    let env = |name: &str| std::env::var(name).ok();
    let read_file = |secret_file: &str| std::fs::read_to_string(secret_file);
    let mut vendors = Vec::new();
    for source in file.sources() {
        let Some(sales) = &source.sales else {
            continue;
        };
        let secrets = source
            .secrets(&env, &read_file)
            .map_err(|why| anyhow!("{}", invalid_file(path, &why)))?;
        let secret = secrets
            .first()
            .cloned()
            .with_context(|| format!("{}: source {:?} has no secret", path.display(), source.name))?;
        vendors.push(Vendor {
            name: source.name.to_string(),
            preset: sales.preset,
            scheme: source.scheme.clone(),
            secret,
            delivery_id: source.delivery_id.clone(),
            event_type: source.event_type.clone(),
            url: source.endpoint.url.clone(),
            webhook_id: source.endpoint.webhook_id.clone(),
        });
    }
    Ok(vendors)
}

impl Vendor {
    /// The headers of a request carrying `body`, signed at Unix time `now`: the signature, and
    /// the delivery id and event type where the handler looks for them.
    pub(crate) fn headers(&self, delivery_id: &str, event_type: &str, body: &[u8], now: i64) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut add = |name: &str, value: String| {
            if !headers.iter().any(|(present, _)| present.eq_ignore_ascii_case(name)) {
                headers.push((name.to_owned(), value));
            }
        };
        let request = ToSign {
            url: self.url.as_deref(),
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
            let headers = Map(vendor.headers("evt_1", "charge.succeeded", body, now));
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
        let headers = Map(shopify.headers("d-1", "orders/paid", body, now));
        assert_eq!(headers.get("X-Shopify-Webhook-Id"), Some("d-1"));
        assert_eq!(headers.get("X-Shopify-Topic"), Some("orders/paid"));
    }
}
