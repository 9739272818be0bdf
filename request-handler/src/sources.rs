//! Vendors ("sources"): who may post, how their requests are signed, and where their delivery
//! id and event type come from.
//!
//! Without `SOURCES_FILE` there is one source, `default`, with the GitHub scheme and
//! `WEBHOOK_SECRET`. With it, every `[[source]]` of the TOML file is a source. Every key, one
//! source per scheme, is in `examples/sources.toml`, which the README shows and a test below
//! loads.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use webhook_core::config::{ConfigError, Secret};
use webhook_core::envelope::is_valid_source_name;
use webhook_core::payload::BodyFormat;
use webhook_core::schemes::{Algorithm, Encoding, GenericHmac, SCHEME_NAMES, Scheme};

/// The source that `POST /webhook` posts to.
pub const DEFAULT_SOURCE: &str = "default";
/// Default timestamp tolerance of timestamped schemes.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Where a value is found in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    /// A request header.
    Header(String),
    /// A JSON pointer into the body, e.g. `/id` or `/data/object/id`.
    Json(String),
    /// A field of a form-encoded body, e.g. `trigger_id`.
    Form(String),
}

/// A vendor.
#[derive(Debug, Clone)]
pub struct Source {
    /// `[a-z0-9_-]{1,64}`, the `{source}` of `POST /webhooks/{source}`.
    pub name: String,
    /// How its requests are signed.
    pub scheme: Scheme,
    /// How its bodies are encoded.
    pub body_format: BodyFormat,
    /// Secrets; the first that verifies wins.
    pub secrets: Vec<Secret>,
    /// Where its delivery id is, before the common headers and the body hash.
    pub delivery_id: Option<Locator>,
    /// Where its event type is, before the common header and JSON fields.
    pub event_type: Option<Locator>,
    /// How far a signed timestamp may be from now, in seconds.
    pub tolerance_secs: i64,
    /// A body limit below the global one, if any.
    pub max_body_bytes: Option<usize>,
}

impl Source {
    /// The single-secret setup: GitHub scheme, `WEBHOOK_SECRET`.
    pub fn default_with(secret: Secret) -> Self {
        Self {
            name: DEFAULT_SOURCE.to_owned(),
            scheme: Scheme::Github,
            body_format: BodyFormat::Json,
            secrets: vec![secret],
            delivery_id: None,
            event_type: None,
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
            max_body_bytes: None,
        }
    }
}

/// Every configured source by name.
#[derive(Debug, Clone, Default)]
pub struct Sources(HashMap<String, Source>);

impl Sources {
    /// The source called `name`, if configured.
    pub fn get(&self, name: &str) -> Option<&Source> {
        self.0.get(name)
    }

    /// Adds or replaces a source.
    pub fn insert(&mut self, source: Source) {
        self.0.insert(source.name.clone(), source);
    }

    /// How many sources there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reads a sources file. `env` looks up the variables named in `secret_env`.
    pub fn from_file(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError::invalid("SOURCES_FILE", Some(&shown), format!("a readable file ({error})"))
        })?;
        Self::from_toml(&text, env, &|secret_file| std::fs::read_to_string(secret_file))
            .map_err(|why| ConfigError::invalid("SOURCES_FILE", Some(&shown), format!("a valid sources file: {why}")))
    }

    /// Parses the TOML text of a sources file; the error names the source and the field.
    pub fn from_toml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        read_file: &dyn Fn(&str) -> std::io::Result<String>,
    ) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|error| {
            webhook_core::config::error_at_line(text, error.span().map(|span| span.start), error.message())
        })?;
        if file.source.is_empty() {
            return Err("no [[source]] entries".to_owned());
        }
        let mut sources = Self::default();
        for entry in file.source {
            let name = entry.name.clone();
            let source = entry
                .into_source(env, read_file)
                .map_err(|why| format!("source {name:?}: {why}"))?;
            if sources.get(&source.name).is_some() {
                return Err(format!("source {name:?}: field `name`: defined twice"));
            }
            sources.insert(source);
        }
        Ok(sources)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    source: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    scheme: String,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    secret_env: Vec<String>,
    #[serde(default)]
    secret_files: Vec<String>,
    body_format: Option<String>,
    delivery_id: Option<LocatorEntry>,
    event_type: Option<LocatorEntry>,
    tolerance_secs: Option<i64>,
    max_body_bytes: Option<usize>,
    // The generic `hmac` scheme.
    header: Option<String>,
    algorithm: Option<String>,
    encoding: Option<String>,
    prefix: Option<String>,
    signed: Option<String>,
    timestamp_header: Option<String>,
    /// `[source.sales]`: the consumer's sales mapping, checked by the consumer.
    #[serde(default)]
    #[expect(dead_code, reason = "read by the consumer, not the handler")]
    sales: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum LocatorEntry {
    Header(String),
    Json(String),
    Form(String),
}

impl LocatorEntry {
    fn into_locator(self, field: &str, format: BodyFormat) -> Result<Locator, String> {
        match (self, format) {
            (Self::Header(name), _) if !name.is_empty() => Ok(Locator::Header(name)),
            (Self::Json(pointer), BodyFormat::Json) if pointer.starts_with('/') => Ok(Locator::Json(pointer)),
            (Self::Form(name), BodyFormat::Form) if !name.is_empty() => Ok(Locator::Form(name)),
            (Self::Header(_), _) => Err(format!("field `{field}`: the header name is empty")),
            (Self::Json(pointer), BodyFormat::Json) => Err(format!(
                "field `{field}`: {pointer:?} is not a JSON pointer (it must start with '/', e.g. \"/id\")"
            )),
            (Self::Form(_), BodyFormat::Form) => Err(format!("field `{field}`: the form field name is empty")),
            (Self::Json(_), BodyFormat::Form) => Err(format!(
                "field `{field}`: a JSON pointer needs body_format = \"json\"; use {{ form = \"…\" }}"
            )),
            (Self::Form(_), BodyFormat::Json) => {
                Err(format!("field `{field}`: a form field needs body_format = \"form\""))
            }
        }
    }
}

impl Entry {
    fn into_source(
        self,
        env: &dyn Fn(&str) -> Option<String>,
        read_file: &dyn Fn(&str) -> std::io::Result<String>,
    ) -> Result<Source, String> {
        if !is_valid_source_name(&self.name) {
            return Err("field `name`: expected 1 to 64 characters from a-z, 0-9, '_' and '-'".to_owned());
        }
        let mut secrets: Vec<Secret> = self.secrets.iter().map(|value| Secret::new(value.as_str())).collect();
        for variable in &self.secret_env {
            let value = env(variable)
                .filter(|value| !value.trim().is_empty())
                .ok_or_else(|| format!("field `secret_env`: environment variable {variable} is not set"))?;
            secrets.push(Secret::new(value.trim()));
        }
        for path in &self.secret_files {
            let value =
                read_file(path).map_err(|error| format!("field `secret_files`: cannot read {path}: {error}"))?;
            let value = value.trim_end_matches(['\n', '\r']);
            if value.is_empty() {
                return Err(format!("field `secret_files`: {path} is empty"));
            }
            secrets.push(Secret::new(value));
        }
        if secrets.is_empty() {
            return Err(
                "field `secrets`: at least one secret is required (secrets, secret_env or secret_files)".to_owned(),
            );
        }
        if secrets.iter().any(|secret| secret.expose().is_empty()) {
            return Err("field `secrets`: a secret is empty".to_owned());
        }
        let scheme = self.scheme()?;
        if scheme == Scheme::Standard
            && secrets
                .iter()
                .any(|secret| webhook_core::schemes::standard_key(secret.expose()).is_none())
        {
            return Err("field `secrets`: standard secrets are `whsec_` followed by base64".to_owned());
        }
        let tolerance_secs = self.tolerance_secs.unwrap_or(DEFAULT_TOLERANCE_SECS);
        if !(1..=86_400).contains(&tolerance_secs) {
            return Err("field `tolerance_secs`: expected 1 to 86400 seconds".to_owned());
        }
        if self.max_body_bytes == Some(0) {
            return Err("field `max_body_bytes`: expected at least 1".to_owned());
        }
        let body_format = match &self.body_format {
            None => BodyFormat::Json,
            Some(name) => name
                .parse()
                .map_err(|()| format!("field `body_format`: {name:?} is not \"json\" or \"form\""))?,
        };
        let (default_id, default_type) = default_locators(&scheme, body_format);
        Ok(Source {
            name: self.name,
            scheme,
            body_format,
            secrets,
            delivery_id: self
                .delivery_id
                .map(|entry| entry.into_locator("delivery_id", body_format))
                .transpose()?
                .or(default_id),
            event_type: self
                .event_type
                .map(|entry| entry.into_locator("event_type", body_format))
                .transpose()?
                .or(default_type),
            tolerance_secs,
            max_body_bytes: self.max_body_bytes,
        })
    }

    fn scheme(&self) -> Result<Scheme, String> {
        let generic_fields = [
            ("header", self.header.is_some()),
            ("algorithm", self.algorithm.is_some()),
            ("encoding", self.encoding.is_some()),
            ("prefix", self.prefix.is_some()),
            ("signed", self.signed.is_some()),
            ("timestamp_header", self.timestamp_header.is_some()),
        ];
        let scheme = match self.scheme.as_str() {
            "github" => Scheme::Github,
            "stripe" => Scheme::Stripe,
            "shopify" => Scheme::Shopify,
            "slack" => Scheme::Slack,
            "standard" => Scheme::Standard,
            "hmac" => return self.generic().map(Scheme::Hmac),
            other => return Err(format!("field `scheme`: {other:?} is not one of {SCHEME_NAMES}")),
        };
        match generic_fields.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err(format!("field `{field}`: only for scheme = \"hmac\"")),
            None => Ok(scheme),
        }
    }

    fn generic(&self) -> Result<GenericHmac, String> {
        let header = self
            .header
            .clone()
            .filter(|header| !header.is_empty())
            .ok_or("field `header`: required for scheme = \"hmac\"")?;
        let algorithm = match &self.algorithm {
            None => Algorithm::Sha256,
            Some(name) => name
                .parse()
                .map_err(|()| format!("field `algorithm`: {name:?} is not sha1, sha256 or sha512"))?,
        };
        let encoding = match &self.encoding {
            None => Encoding::Hex,
            Some(name) => name
                .parse()
                .map_err(|()| format!("field `encoding`: {name:?} is not hex or base64"))?,
        };
        if let Some(template) = &self.signed {
            if !template.contains("{body}") {
                return Err("field `signed`: the template must contain {body}".to_owned());
            }
            if template.contains("{timestamp}") != self.timestamp_header.is_some() {
                return Err("field `signed`: {timestamp} and `timestamp_header` go together".to_owned());
            }
        } else if self.timestamp_header.is_some() {
            return Err("field `timestamp_header`: needs a `signed` template with {timestamp}".to_owned());
        }
        Ok(GenericHmac {
            header,
            algorithm,
            encoding,
            prefix: self.prefix.clone(),
            template: self.signed.clone(),
            timestamp_header: self.timestamp_header.clone(),
        })
    }
}

/// Where each scheme's vendor puts its delivery id and event type.
fn default_locators(scheme: &Scheme, format: BodyFormat) -> (Option<Locator>, Option<Locator>) {
    let header = |name: &str| Some(Locator::Header(name.to_owned()));
    let json = |pointer: &str| Some(Locator::Json(pointer.to_owned()));
    let form = |name: &str| Some(Locator::Form(name.to_owned()));
    if format == BodyFormat::Form {
        // JSON pointers cannot apply. Slack's slash commands carry a unique `trigger_id` and
        // the `command`; other form sources fall back to the common headers and fields.
        return match scheme {
            Scheme::Slack => (form("trigger_id"), form("command")),
            Scheme::Github => (header("X-GitHub-Delivery"), header("X-GitHub-Event")),
            Scheme::Shopify => (header("X-Shopify-Webhook-Id"), header("X-Shopify-Topic")),
            Scheme::Standard => (header("webhook-id"), None),
            Scheme::Stripe | Scheme::Hmac(_) => (None, None),
        };
    }
    match scheme {
        Scheme::Github => (header("X-GitHub-Delivery"), header("X-GitHub-Event")),
        Scheme::Stripe => (json("/id"), json("/type")),
        Scheme::Shopify => (header("X-Shopify-Webhook-Id"), header("X-Shopify-Topic")),
        Scheme::Standard => (header("webhook-id"), json("/type")),
        Scheme::Slack => (json("/event_id"), json("/type")),
        Scheme::Hmac(_) => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Sources, String> {
        let env = |name: &str| (name == "NEXT_SECRET").then(|| "next".to_owned());
        let read = |path: &str| {
            if path == "/secrets/stripe" {
                Ok("from-file\n".to_owned())
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "No such file or directory",
                ))
            }
        };
        Sources::from_toml(text, &env, &read)
    }

    #[test]
    fn every_scheme_can_be_configured_with_defaults_for_id_and_type() {
        let sources = parse(
            r#"
            [[source]]
            name = "stripe"
            scheme = "stripe"
            secrets = ["whsec_one"]
            secret_env = ["NEXT_SECRET"]
            secret_files = ["/secrets/stripe"]

            [[source]]
            name = "shop"
            scheme = "shopify"
            secrets = ["s"]
            max_body_bytes = 1000

            [[source]]
            name = "svix"
            scheme = "standard"
            secrets = ["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]
            tolerance_secs = 60

            [[source]]
            name = "custom"
            scheme = "hmac"
            secrets = ["k"]
            header = "X-Signature"
            algorithm = "sha512"
            encoding = "base64"
            prefix = "v1="
            signed = "{timestamp}.{body}"
            timestamp_header = "X-Timestamp"
            delivery_id = { header = "X-Event-Id" }
            event_type = { json = "/event/name" }
            "#,
        )
        .unwrap();
        assert_eq!(sources.len(), 4);
        let stripe = sources.get("stripe").unwrap();
        assert_eq!(stripe.scheme, Scheme::Stripe);
        let secrets: Vec<&str> = stripe.secrets.iter().map(Secret::expose).collect();
        assert_eq!(secrets, ["whsec_one", "next", "from-file"]);
        assert_eq!(stripe.delivery_id, Some(Locator::Json("/id".into())));
        assert_eq!(sources.get("shop").unwrap().max_body_bytes, Some(1000));
        assert_eq!(
            sources.get("shop").unwrap().event_type,
            Some(Locator::Header("X-Shopify-Topic".into()))
        );
        assert_eq!(sources.get("svix").unwrap().tolerance_secs, 60);
        let custom = sources.get("custom").unwrap();
        assert_eq!(custom.delivery_id, Some(Locator::Header("X-Event-Id".into())));
        assert_eq!(custom.event_type, Some(Locator::Json("/event/name".into())));
        assert!(matches!(&custom.scheme, Scheme::Hmac(generic) if generic.algorithm == Algorithm::Sha512));
    }

    #[test]
    fn errors_name_the_source_and_the_field() {
        let cases = [
            (
                "[[source]]\nname = \"Bad Name\"\nscheme = \"github\"\nsecrets = [\"s\"]",
                "source \"Bad Name\": field `name`",
            ),
            (
                "[[source]]\nname = \"a\"\nscheme = \"paypal\"\nsecrets = [\"s\"]",
                "source \"a\": field `scheme`: \"paypal\" is not one of",
            ),
            (
                "[[source]]\nname = \"a\"\nscheme = \"github\"",
                "source \"a\": field `secrets`: at least one",
            ),
            (
                "[[source]]\nname = \"a\"\nscheme = \"github\"\nsecret_env = [\"UNSET\"]",
                "source \"a\": field `secret_env`: environment variable UNSET is not set",
            ),
            (
                "[[source]]\nname = \"a\"\nscheme = \"github\"\nsecret_files = [\"/nope\"]",
                "source \"a\": field `secret_files`: cannot read /nope",
            ),
            (
                "[[source]]\nname = \"a\"\nscheme = \"standard\"\nsecrets = [\"whsec_!!\"]",
                "source \"a\": field `secrets`: standard secrets",
            ),
            (
                "[[source]]\nname = \"a\"\nscheme = \"hmac\"\nsecrets = [\"s\"]",
                "source \"a\": field `header`: required",
            ),
            (
                "[[source]]\nname = \"a\"\nscheme = \"github\"\nsecrets = [\"s\"]\nheader = \"X\"",
                "source \"a\": field `header`: only for scheme = \"hmac\"",
            ),
            (
                "[[source]]\nname = \"a\"\nscheme = \"hmac\"\nsecrets = [\"s\"]\nheader = \"X\"\nalgorithm = \"md5\"",
                "source \"a\": field `algorithm`",
            ),
            (
                "[[source]]\nname = \"a\"\nscheme = \"github\"\nsecrets = [\"s\"]\ndelivery_id = { json = \"id\" }",
                "source \"a\": field `delivery_id`: \"id\" is not a JSON pointer",
            ),
            (
                "[[source]]\nname = \"a\"\nscheme = \"github\"\nsecrets = [\"s\"]\ntolerance_secs = 0",
                "source \"a\": field `tolerance_secs`",
            ),
            (
                "[[source]]\nname = \"a\"\nscheme = \"github\"\nsecrets = [\"s\"]\n[[source]]\nname = \"a\"\nscheme = \"github\"\nsecrets = [\"t\"]",
                "source \"a\": field `name`: defined twice",
            ),
            (
                "[[source]]\nname = \"a\"\nscheme = \"github\"\nsecrest = [\"s\"]",
                "line 4: unknown field `secrest`",
            ),
            ("", "no [[source]] entries"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err();
            assert!(error.starts_with(expected), "{error:?} should start with {expected:?}");
            assert!(!error.contains('\n'), "{error:?}");
        }
    }

    #[test]
    fn form_sources_locate_fields_in_the_form() {
        let sources = parse(
            r#"
            [[source]]
            name = "slash"
            scheme = "slack"
            secrets = ["s"]
            body_format = "form"

            [[source]]
            name = "events"
            scheme = "slack"
            secrets = ["s"]

            [[source]]
            name = "legacy"
            scheme = "hmac"
            secrets = ["k"]
            header = "X-Signature"
            body_format = "form"
            delivery_id = { form = "id" }
            event_type = { header = "X-Kind" }
            "#,
        )
        .unwrap();
        let slash = sources.get("slash").unwrap();
        assert_eq!(slash.body_format, BodyFormat::Form);
        assert_eq!(slash.delivery_id, Some(Locator::Form("trigger_id".into())));
        assert_eq!(slash.event_type, Some(Locator::Form("command".into())));
        let events = sources.get("events").unwrap();
        assert_eq!(events.body_format, BodyFormat::Json);
        assert_eq!(events.delivery_id, Some(Locator::Json("/event_id".into())));
        let legacy = sources.get("legacy").unwrap();
        assert_eq!(legacy.delivery_id, Some(Locator::Form("id".into())));
        assert_eq!(legacy.event_type, Some(Locator::Header("X-Kind".into())));
    }

    #[test]
    fn the_example_file_in_the_readme_configures_one_source_per_scheme() {
        let example = include_str!("../../examples/sources.toml");
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&format!("```toml\n{example}```")),
            "README.md must show examples/sources.toml verbatim"
        );
        let sources = Sources::from_toml(example, &|_| Some("from-env".to_owned()), &|_| {
            Ok("from-file\n".to_owned())
        })
        .unwrap();
        let mut schemes: Vec<&str> = sources.0.values().map(|source| source.scheme.name()).collect();
        schemes.sort_unstable();
        schemes.dedup();
        assert_eq!(schemes, ["github", "hmac", "shopify", "slack", "standard", "stripe"]);
        assert_eq!(sources.get("slash").unwrap().body_format, BodyFormat::Form);
        let stripe: Vec<&str> = sources
            .get("stripe")
            .unwrap()
            .secrets
            .iter()
            .map(Secret::expose)
            .collect();
        assert_eq!(stripe, ["from-env", "from-env"]);
    }

    #[test]
    fn locators_must_fit_the_body_format() {
        let source = |extra: &str| format!("[[source]]\nname = \"a\"\nscheme = \"github\"\nsecrets = [\"s\"]\n{extra}");
        let cases = [
            (
                "body_format = \"xml\"",
                "source \"a\": field `body_format`: \"xml\" is not \"json\" or \"form\"",
            ),
            (
                "body_format = \"form\"\ndelivery_id = { json = \"/id\" }",
                "source \"a\": field `delivery_id`: a JSON pointer needs body_format = \"json\"",
            ),
            (
                "event_type = { form = \"command\" }",
                "source \"a\": field `event_type`: a form field needs body_format = \"form\"",
            ),
            (
                "body_format = \"form\"\nevent_type = { form = \"\" }",
                "source \"a\": field `event_type`: the form field name is empty",
            ),
        ];
        for (extra, expected) in cases {
            let error = parse(&source(extra)).unwrap_err();
            assert!(error.starts_with(expected), "{error:?} should start with {expected:?}");
        }
    }

    #[test]
    fn a_sales_table_for_the_consumer_is_accepted_and_ignored() {
        let sources = parse(
            "[[source]]\nname = \"shop\"\nscheme = \"shopify\"\nsecrets = [\"s\"]\n\
             [source.sales]\npreset = \"shopify\"\namount_unit = \"major\"\noccurred_at = [\"/processed_at\", \"/created_at\"]\n\n\
             [[source]]\nname = \"pay\"\nscheme = \"stripe\"\nsecrets = [\"s\"]\n",
        )
        .unwrap();
        assert_eq!(sources.len(), 2);
        assert_eq!(sources.get("shop").unwrap().scheme, Scheme::Shopify);
    }

    #[test]
    fn secrets_never_appear_in_errors_or_debug_output() {
        let sources = parse("[[source]]\nname = \"a\"\nscheme = \"github\"\nsecrets = [\"topsecret\"]").unwrap();
        assert!(!format!("{sources:?}").contains("topsecret"));
    }
}
