//! The sources file (`SOURCES_FILE`), one model of it for every binary.
//!
//! Each `[[source]]` is a vendor: its name, signature scheme and settings, secrets, body
//! format, where its delivery id and event type are, and, for the consumer, its
//! `[source.sales]` mapping. [`SourcesFile::parse`] reads and checks the whole file once; a
//! mistake is one [`SourcesError`] line naming the source and the field. Each binary takes the
//! parts it needs: the handler and loadgen resolve the secrets ([`SourceConfig::secrets`]), the
//! consumer reads the sales mappings and needs no secret.
//!
//! Every key, one source per scheme, is in `examples/sources.toml`, which the README shows.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::admission::{Admission, RawAdmission};
use crate::config::{ConfigError, Secret};
use crate::ids::{EventType, SourceName};
use crate::payload::BodyFormat;
use crate::signature::{
    Algorithm, Encoding, GenericHmac, KeyKind, Keys, MAX_SIGNATURE_ENTRIES, PLACEHOLDERS, Place, PublicKey, Scheme,
};
use crate::spooling::{Quarantine, WhenBrokerDown};

/// Default timestamp tolerance of timestamped schemes, in seconds.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// A mistake in a sources file: `source "shop": field `sales.amount`: …`, or `line 4: …` when
/// the file is not even TOML of the right shape. Always one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcesError {
    source: Option<String>,
    field: Option<String>,
    message: String,
}

impl SourcesError {
    /// A mistake in `field` of the source called `source`.
    pub fn field(source: &str, field: &str, message: impl Into<String>) -> Self {
        Self {
            source: Some(source.to_owned()),
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    /// A mistake in the file as a whole (`line N: …`).
    pub fn file(message: impl Into<String>) -> Self {
        Self {
            source: None,
            field: None,
            message: message.into(),
        }
    }

    /// The source the mistake is in, if it is in one.
    pub fn source_name(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// The field the mistake is in, if known.
    pub fn field_name(&self) -> Option<&str> {
        self.field.as_deref()
    }
}

impl fmt::Display for SourcesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.message.replace('\n', " ");
        match (&self.source, &self.field) {
            (Some(source), Some(field)) => write!(f, "source {source:?}: field `{field}`: {message}"),
            (Some(source), None) => write!(f, "source {source:?}: {message}"),
            (None, _) => f.write_str(&message),
        }
    }
}

impl std::error::Error for SourcesError {}

/// The configuration error for a sources file at `path` that cannot be used: one line,
/// `invalid configuration: SOURCES_FILE="…": expected a valid sources file: {why}`.
pub fn invalid_file(path: &Path, why: &SourcesError) -> ConfigError {
    ConfigError::invalid(
        "SOURCES_FILE",
        Some(&path.display().to_string()),
        format!("a valid sources file: {why}"),
    )
}

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

impl fmt::Display for Locator {
    /// Where it is, for messages: `header X-Event-Id`, `/data/id in the body`, `form field id`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(name) => write!(f, "header {name}"),
            Self::Json(pointer) => write!(f, "{pointer} in the body"),
            Self::Form(name) => write!(f, "form field {name}"),
        }
    }
}

/// How a source's events are told apart: the `delivery_id` of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The vendor's id, found at this place; a request without one is refused (400).
    At(Locator),
    /// `"body_hash"`: the hex SHA-256 of the body, so identical bodies are one event (for
    /// vendors whose distinct events never have equal bodies).
    BodyHash,
    /// `"none"`: the vendor gives no id; every delivery is a new event, stored under a
    /// generated id (a delivery the vendor repeats is stored again).
    None,
}

/// Where a source's secrets come from; [`SourceConfig::secrets`] reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretRefs {
    /// `secrets`: the values themselves.
    pub values: Vec<Secret>,
    /// `secret_env`: names of environment variables.
    pub env: Vec<String>,
    /// `secret_files`: paths of files (a trailing newline is ignored).
    pub files: Vec<String>,
}

/// One `[[source]]`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The `{source}` of `POST /webhooks/{source}`.
    pub name: SourceName,
    /// How its requests are signed.
    pub scheme: Scheme,
    /// How its bodies are encoded.
    pub body_format: BodyFormat,
    /// Where its secrets come from.
    pub secret_refs: SecretRefs,
    /// How its events are told apart: the scheme's place for the vendor's id unless the file
    /// says otherwise.
    pub delivery_id: Identity,
    /// Where its event type is (the scheme's place unless the file says), before the common
    /// header and JSON fields.
    pub event_type: Option<Locator>,
    /// How far a signed timestamp may be from now, in seconds.
    pub tolerance_secs: i64,
    /// A body limit below the global one, if any.
    pub max_body_bytes: Option<usize>,
    /// `[source.sales]`, for the consumer; `None` means the canonical format.
    pub sales: Option<SalesMapping>,
    /// What its requests get while the broker does not confirm (the handler's spool).
    pub when_broker_down: WhenBrokerDown,
    /// Whether, and how many, requests whose signature matches no secret the handler keeps.
    pub quarantine: Option<Quarantine>,
    /// For the handler: its rate limit, what it gets when limited, which event types it keeps.
    pub admission: Admission,
    /// What its scheme needs beyond a shared secret.
    pub endpoint: Endpoint,
}

/// What a source's scheme needs beyond a shared secret, and who may send to it.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// `url`: the public URL the vendor posts to, for schemes that sign it (a proxy in front
    /// changes what the handler sees); the request's query string is appended.
    pub url: Option<String>,
    /// `allow_ips`: the networks requests may come from; empty means any.
    pub allow_ips: Vec<ipnet::IpNet>,
    /// `public_key`: the vendor's public keys, read.
    pub public_keys: Vec<PublicKey>,
    /// `certificate_file`: files with the vendor's signing certificates (PEM).
    pub certificate_files: Vec<String>,
    /// `webhook_id`: the vendor's id of the subscription, for schemes that sign it (PayPal).
    pub webhook_id: Option<String>,
}

impl Endpoint {
    /// Whether a request from `address` may be served.
    pub fn allows(&self, address: std::net::IpAddr) -> bool {
        let address = match address {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, std::net::IpAddr::V4),
            v4 => v4,
        };
        self.allow_ips.is_empty() || self.allow_ips.iter().any(|network| network.contains(&address))
    }
}

impl SourceConfig {
    /// A JSON source of `scheme` with the scheme's places for its delivery id and event type,
    /// the default tolerance, no secrets and the canonical sales format. A scheme without a
    /// place for delivery ids (`hmac`) needs one set: that is the error.
    pub fn new(name: SourceName, scheme: Scheme) -> Result<Self, SourcesError> {
        let (delivery_id, event_type) = default_locators(&scheme, BodyFormat::Json);
        let tolerance_secs = scheme.default_tolerance().unwrap_or(DEFAULT_TOLERANCE_SECS);
        let delivery_id = delivery_id
            .map(Identity::At)
            .ok_or_else(|| SourcesError::field(&name, "delivery_id", "required"))?;
        Ok(Self {
            name,
            scheme,
            body_format: BodyFormat::Json,
            secret_refs: SecretRefs::default(),
            delivery_id,
            event_type,
            tolerance_secs,
            max_body_bytes: None,
            sales: None,
            when_broker_down: WhenBrokerDown::Fail,
            quarantine: None,
            admission: Admission::default(),
            endpoint: Endpoint::default(),
        })
    }

    /// The JSON pointers its JSON bodies are read for: where its delivery id, event type and
    /// handshake challenge are.
    pub fn json_pointers(&self) -> Vec<&str> {
        let id = match &self.delivery_id {
            Identity::At(locator) => Some(locator),
            Identity::BodyHash | Identity::None => None,
        };
        let located = [id, self.event_type.as_ref()]
            .into_iter()
            .filter_map(|locator| match locator {
                Some(Locator::Json(pointer)) => Some(pointer.as_str()),
                _ => None,
            });
        located
            .chain(
                self.scheme
                    .handshake()
                    .into_iter()
                    .flat_map(|handshake| handshake.pointers.iter().copied()),
            )
            .collect()
    }

    /// The source's secrets, in order: `secrets`, then `secret_env` (looked up with `env`),
    /// then `secret_files` (read with `read_file`). At least one is required, none may be
    /// empty, and a `standard` source's must be `whsec_` + base64.
    pub fn secrets(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        read_file: &dyn Fn(&str) -> std::io::Result<String>,
    ) -> Result<Vec<Secret>, SourcesError> {
        let fail = |field: &str, message: String| SourcesError::field(&self.name, field, message);
        let mut secrets = self.secret_refs.values.clone();
        for variable in &self.secret_refs.env {
            let value = env(variable)
                .filter(|value| !value.trim().is_empty())
                .ok_or_else(|| fail("secret_env", format!("environment variable {variable} is not set")))?;
            secrets.push(Secret::new(value.trim()));
        }
        for path in &self.secret_refs.files {
            let value =
                read_file(path).map_err(|error| fail("secret_files", format!("cannot read {path}: {error}")))?;
            let value = value.trim_end_matches(['\n', '\r']);
            if value.is_empty() {
                return Err(fail("secret_files", format!("{path} is empty")));
            }
            secrets.push(Secret::new(value));
        }
        let needed = match self.scheme.keys() {
            KeyKind::Secrets => true,
            KeyKind::Either(_) => self.endpoint.public_keys.is_empty(),
            KeyKind::PublicKeys(_) | KeyKind::Certificates | KeyKind::Nothing => false,
        };
        if secrets.is_empty() && needed {
            return Err(fail(
                "secrets",
                if matches!(self.scheme.keys(), KeyKind::Either(_)) {
                    "at least one secret or public key is required (secrets, secret_env, secret_files or public_key)"
                        .to_owned()
                } else {
                    "at least one secret is required (secrets, secret_env or secret_files)".to_owned()
                },
            ));
        }
        if secrets.iter().any(|secret| secret.expose().is_empty()) {
            return Err(fail("secrets", "a secret is empty".to_owned()));
        }
        if let Some(why) = secrets
            .iter()
            .find_map(|secret| self.scheme.check_secret(secret.expose()).err())
        {
            return Err(fail("secrets", why.to_owned()));
        }
        Ok(secrets)
    }
}

impl SourceConfig {
    /// Everything the source verifies with: its secrets ([`SourceConfig::secrets`]), its
    /// public keys, and the keys of its certificate files (read with `read_file`, refused when
    /// they cannot be used or have expired by `now`).
    pub fn keys(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        read_file: &dyn Fn(&str) -> std::io::Result<String>,
        now: i64,
    ) -> Result<Keys, SourcesError> {
        let fail = |message: String| SourcesError::field(&self.name, "certificate_file", message);
        let mut public = self.endpoint.public_keys.clone();
        for path in &self.endpoint.certificate_files {
            let pem = read_file(path).map_err(|error| fail(format!("cannot read {path}: {error}")))?;
            let (key, not_after) =
                PublicKey::rsa_certificate_pem(&pem).map_err(|why| fail(format!("{path}: {why}")))?;
            if not_after < now {
                let expired = chrono::DateTime::from_timestamp(not_after, 0).unwrap_or_default();
                return Err(fail(format!(
                    "{path}: the certificate expired on {}",
                    expired.format("%Y-%m-%d")
                )));
            }
            public.push(key);
        }
        Ok(Keys {
            secrets: self.secrets(env, read_file)?,
            public,
        })
    }
}

/// A whole sources file, its sources in file order.
#[derive(Debug, Clone)]
pub struct SourcesFile {
    sources: Vec<SourceConfig>,
}

impl SourcesFile {
    /// Reads and checks the file at `path`; a mistake is one configuration error line.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError::invalid(
                "SOURCES_FILE",
                Some(&path.display().to_string()),
                format!("a readable file ({error})"),
            )
        })?;
        Self::parse(&text).map_err(|why| invalid_file(path, &why))
    }

    /// Parses and checks the TOML text of a sources file.
    pub fn parse(text: &str) -> Result<Self, SourcesError> {
        let file: RawFile = toml::from_str(text).map_err(|error| {
            SourcesError::file(crate::config::error_at_line(
                text,
                error.span().map(|span| span.start),
                error.message(),
            ))
        })?;
        if file.source.is_empty() {
            return Err(SourcesError::file("no [[source]] entries"));
        }
        let mut sources: Vec<SourceConfig> = Vec::with_capacity(file.source.len());
        for raw in file.source {
            let source = raw.into_config()?;
            if sources.iter().any(|other| other.name == source.name) {
                return Err(SourcesError::field(&source.name, "name", "defined twice"));
            }
            sources.push(source);
        }
        Ok(Self { sources })
    }

    /// Every source, in file order.
    pub fn sources(&self) -> &[SourceConfig] {
        &self.sources
    }

    /// The source called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|source| source.name.as_str() == name)
    }
}

/// A ready-made sales mapping for a vendor's own payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The canonical format (`sale.completed`, `sale.refunded`, minor units).
    Canonical,
    /// Stripe charges (`charge.succeeded`, `charge.refunded`).
    Stripe,
    /// Shopify orders and refunds (`orders/paid`, `refunds/create`, major units).
    Shopify,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Self; 3] = [Self::Canonical, Self::Stripe, Self::Shopify];
    /// The names accepted in `preset = "…"`.
    pub const NAMES: &'static str = "canonical, stripe or shopify";

    /// The preset called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|preset| preset.name() == name)
    }

    /// Its name in a sources file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Canonical => "canonical",
            Self::Stripe => "stripe",
            Self::Shopify => "shopify",
        }
    }
}

/// Whether amounts are in minor units (cents) or major units (euros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountUnit {
    /// Minor units: `1999` is 19.99 EUR.
    Minor,
    /// Major units: `"19.99"` is 19.99 EUR, scaled by the currency's minor digits.
    Major,
}

/// Where one kind's values are: each a list of JSON pointers, the first one set wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesFields {
    /// The vendor's order id.
    pub order_id: Vec<String>,
    /// The amount (a sale's total, or the order's refunded total so far).
    pub amount: Vec<String>,
    /// The ISO 4217 currency code.
    pub currency: Vec<String>,
    /// When it happened: RFC 3339 text or Unix seconds.
    pub occurred_at: Vec<String>,
}

impl SalesFields {
    fn field(&mut self, key: &str) -> &mut Vec<String> {
        match key {
            "order_id" => &mut self.order_id,
            "amount" => &mut self.amount,
            "currency" => &mut self.currency,
            _ => &mut self.occurred_at,
        }
    }
}

/// How one source's events become sales and refunds: its preset with the file's overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesMapping {
    /// The preset it started from (for the log).
    pub preset: Preset,
    /// Event types that are sales.
    pub sale_types: Vec<String>,
    /// Event types that are refunds.
    pub refund_types: Vec<String>,
    /// Where a sale's values are.
    pub sale: SalesFields,
    /// Where a refund's values are.
    pub refund: SalesFields,
    /// The unit of both amounts.
    pub amount_unit: AmountUnit,
}

fn pointers(list: &[&str]) -> Vec<String> {
    list.iter().map(|pointer| (*pointer).to_owned()).collect()
}

impl SalesMapping {
    /// The mapping of a preset, without overrides.
    pub fn preset(preset: Preset) -> Self {
        match preset {
            Preset::Canonical => {
                let fields = SalesFields {
                    order_id: pointers(&["/data/order_id"]),
                    amount: pointers(&["/data/amount"]),
                    currency: pointers(&["/data/currency"]),
                    occurred_at: pointers(&["/occurred_at"]),
                };
                Self {
                    preset,
                    sale_types: pointers(&["sale.completed"]),
                    refund_types: pointers(&["sale.refunded"]),
                    refund: fields.clone(),
                    sale: fields,
                    amount_unit: AmountUnit::Minor,
                }
            }
            Preset::Stripe => Self {
                preset,
                sale_types: pointers(&["charge.succeeded"]),
                refund_types: pointers(&["charge.refunded"]),
                sale: SalesFields {
                    order_id: pointers(&["/data/object/id"]),
                    amount: pointers(&["/data/object/amount"]),
                    currency: pointers(&["/data/object/currency"]),
                    occurred_at: pointers(&["/created"]),
                },
                refund: SalesFields {
                    order_id: pointers(&["/data/object/id"]),
                    amount: pointers(&["/data/object/amount_refunded"]),
                    currency: pointers(&["/data/object/currency"]),
                    occurred_at: pointers(&["/created"]),
                },
                amount_unit: AmountUnit::Minor,
            },
            Preset::Shopify => Self {
                preset,
                sale_types: pointers(&["orders/paid"]),
                refund_types: pointers(&["refunds/create"]),
                sale: SalesFields {
                    order_id: pointers(&["/id"]),
                    amount: pointers(&["/total_price"]),
                    currency: pointers(&["/currency"]),
                    occurred_at: pointers(&["/processed_at", "/created_at"]),
                },
                refund: SalesFields {
                    order_id: pointers(&["/order_id"]),
                    amount: pointers(&["/transactions/0/amount"]),
                    currency: pointers(&["/transactions/0/currency"]),
                    occurred_at: pointers(&["/created_at"]),
                },
                amount_unit: AmountUnit::Major,
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    source: Vec<RawSource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: String,
    scheme: String,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    secret_env: Vec<String>,
    #[serde(default)]
    secret_files: Vec<String>,
    body_format: Option<String>,
    /// A place (`{ header = "…" }` and the like), `"body_hash"` or `"none"`, read by hand so
    /// that an error names the field.
    delivery_id: Option<toml::Value>,
    event_type: Option<RawLocator>,
    tolerance_secs: Option<i64>,
    max_body_bytes: Option<usize>,
    // What schemes beyond a shared secret need, and who may send.
    url: Option<String>,
    allow_ips: Option<Vec<String>>,
    public_key: Option<toml::Value>,
    certificate_file: Option<toml::Value>,
    webhook_id: Option<String>,
    // The generic `hmac` scheme.
    header: Option<toml::Value>,
    separator: Option<String>,
    signature_key: Option<String>,
    timestamp_key: Option<String>,
    timestamp_format: Option<String>,
    id_header: Option<String>,
    key_encoding: Option<String>,
    algorithm: Option<String>,
    encoding: Option<String>,
    prefix: Option<String>,
    signed: Option<String>,
    timestamp_header: Option<String>,
    /// `[source.sales]`, read key by key so that an error names the key.
    sales: Option<toml::Value>,
    // The handler's spool and quarantine (crate::spooling).
    when_broker_down: Option<String>,
    quarantine: Option<toml::Value>,
    // Admission ([`crate::admission`]), read by hand so that an error names the key.
    rate_limit: Option<toml::Value>,
    when_limited: Option<toml::Value>,
    accept_types: Option<toml::Value>,
    drop_types: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum RawLocator {
    Header(String),
    Json(String),
    Form(String),
}

impl RawLocator {
    fn into_locator(self, format: BodyFormat) -> Result<Locator, String> {
        match (self, format) {
            (Self::Header(name), _) if !name.is_empty() => Ok(Locator::Header(name)),
            (Self::Json(pointer), BodyFormat::Json) if pointer.starts_with('/') => Ok(Locator::Json(pointer)),
            (Self::Form(name), BodyFormat::Form) if !name.is_empty() => Ok(Locator::Form(name)),
            (Self::Header(_), _) => Err("the header name is empty".to_owned()),
            (Self::Json(pointer), BodyFormat::Json) => Err(format!(
                "{pointer:?} is not a JSON pointer (it must start with '/', e.g. \"/id\")"
            )),
            (Self::Form(_), BodyFormat::Form) => Err("the form field name is empty".to_owned()),
            (Self::Json(_), BodyFormat::Form) => {
                Err("a JSON pointer needs body_format = \"json\"; use { form = \"…\" }".to_owned())
            }
            (Self::Form(_), BodyFormat::Json) => Err("a form field needs body_format = \"form\"".to_owned()),
        }
    }
}

impl RawSource {
    fn into_config(self) -> Result<SourceConfig, SourcesError> {
        let fail = |field: &str, message: String| SourcesError::field(&self.name, field, message);
        let name = SourceName::parse(&self.name).map_err(|_| {
            fail(
                "name",
                "expected 1 to 64 characters from a-z, 0-9, '_' and '-'".to_owned(),
            )
        })?;
        let scheme = self.scheme().map_err(|(field, why)| fail(field, why))?;
        let tolerance_secs = self
            .tolerance_secs
            .unwrap_or_else(|| scheme.default_tolerance().unwrap_or(DEFAULT_TOLERANCE_SECS));
        if !(1..=86_400).contains(&tolerance_secs) {
            return Err(fail("tolerance_secs", "expected 1 to 86400 seconds".to_owned()));
        }
        if self.max_body_bytes == Some(0) {
            return Err(fail("max_body_bytes", "expected at least 1".to_owned()));
        }
        let body_format = match &self.body_format {
            None => BodyFormat::Json,
            Some(format) => format
                .parse()
                .map_err(|()| fail("body_format", format!("{format:?} is not \"json\" or \"form\"")))?,
        };
        let endpoint = self.endpoint(&scheme).map_err(|(field, why)| fail(field, why))?;
        let (default_id, default_type) = default_locators(&scheme, body_format);
        let delivery_id = match self.delivery_id {
            Some(value) => identity(value, body_format).map_err(|why| fail("delivery_id", why))?,
            None => default_id.map(Identity::At).ok_or_else(|| {
                fail(
                    "delivery_id",
                    format!(
                        "required for scheme = \"{}\" with body_format = \"{}\": where the vendor's id is \
                         ({{ header = \"…\" }}, {{ json = \"/…\" }} or {{ form = \"…\" }}), \"body_hash\" or \"none\"",
                        scheme.name(),
                        body_format.name()
                    ),
                )
            })?,
        };
        let event_type = self
            .event_type
            .map(|raw| raw.into_locator(body_format))
            .transpose()
            .map_err(|why| fail("event_type", why))?
            .or(default_type);
        let sales = match self.sales {
            None => None,
            Some(_) if body_format != BodyFormat::Json => {
                return Err(fail(
                    "sales",
                    format!(
                        "sales are read from JSON bodies, not body_format = {:?}",
                        body_format.name()
                    ),
                ));
            }
            Some(value) => Some(read_sales(value).map_err(|(field, why)| fail(&field, why))?),
        };
        let when_broker_down = self
            .when_broker_down
            .as_deref()
            .map_or(Ok(WhenBrokerDown::Fail), WhenBrokerDown::parse)
            .map_err(|why| fail("when_broker_down", why))?;
        let quarantine = match &self.quarantine {
            None => None,
            Some(value) => Quarantine::parse(value).map_err(|why| fail("quarantine", why))?,
        };
        let admission = RawAdmission {
            rate_limit: self.rate_limit,
            when_limited: self.when_limited,
            accept_types: self.accept_types,
            drop_types: self.drop_types,
        }
        .read()
        .map_err(|(field, why)| fail(field, why))?;
        Ok(SourceConfig {
            name,
            scheme,
            body_format,
            secret_refs: SecretRefs {
                values: self.secrets.into_iter().map(Secret::new).collect(),
                env: self.secret_env,
                files: self.secret_files,
            },
            delivery_id,
            event_type,
            tolerance_secs,
            max_body_bytes: self.max_body_bytes,
            sales,
            when_broker_down,
            quarantine,
            admission,
            endpoint,
        })
    }

    fn scheme(&self) -> Result<Scheme, (&'static str, String)> {
        let generic_fields = [
            ("header", self.header.is_some()),
            ("algorithm", self.algorithm.is_some()),
            ("encoding", self.encoding.is_some()),
            ("prefix", self.prefix.is_some()),
            ("signed", self.signed.is_some()),
            ("timestamp_header", self.timestamp_header.is_some()),
            ("separator", self.separator.is_some()),
            ("signature_key", self.signature_key.is_some()),
            ("timestamp_key", self.timestamp_key.is_some()),
            ("timestamp_format", self.timestamp_format.is_some()),
            ("id_header", self.id_header.is_some()),
            ("key_encoding", self.key_encoding.is_some()),
        ];
        let scheme = match self.scheme.as_str() {
            "hmac" => return self.generic().map(Scheme::Hmac),
            "none" => Scheme::Unsigned,
            name => match crate::signature::family(name) {
                Some(family) => Scheme::Vendor(family),
                None => return Err(("scheme", format!("{name:?} is not one of {}", Scheme::names()))),
            },
        };
        match generic_fields.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err((field, "only for scheme = \"hmac\"".to_owned())),
            None => Ok(scheme),
        }
    }

    fn generic(&self) -> Result<GenericHmac, (&'static str, String)> {
        let headers = match &self.header {
            None => return Err(("header", "required for scheme = \"hmac\"".to_owned())),
            Some(value) => {
                string_list(value).ok_or(("header", "expected a header name or a list of them".to_owned()))?
            }
        };
        if headers.is_empty() || headers.len() > MAX_SIGNATURE_ENTRIES || headers.iter().any(String::is_empty) {
            return Err((
                "header",
                format!("expected 1 to {MAX_SIGNATURE_ENTRIES} header names, none empty"),
            ));
        }
        let algorithm = match &self.algorithm {
            None => Algorithm::Sha256,
            Some(name) => name
                .parse()
                .map_err(|()| ("algorithm", format!("{name:?} is not sha1, sha256 or sha512")))?,
        };
        let encoding = match &self.encoding {
            None => Encoding::Hex,
            Some(name) => name
                .parse()
                .map_err(|()| ("encoding", format!("{name:?} is not hex or base64")))?,
        };
        let key_encoding = match &self.key_encoding {
            None => Default::default(),
            Some(name) => name
                .parse()
                .map_err(|()| ("key_encoding", format!("{name:?} is not text, hex, base64 or whsec")))?,
        };
        let timestamp_format = match &self.timestamp_format {
            None => Default::default(),
            Some(name) => name
                .parse()
                .map_err(|()| ("timestamp_format", format!("{name:?} is not unix, unix_ms or rfc3339")))?,
        };
        let separator = match &self.separator {
            None => None,
            Some(text) => {
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(separator), None) if separator != '=' => Some(separator),
                    _ => return Err(("separator", format!("{text:?} is not one character (other than '=')"))),
                }
            }
        };
        if self.signature_key.is_some() && separator.is_none() {
            return Err((
                "signature_key",
                "needs a `separator` between the header's entries".to_owned(),
            ));
        }
        if self.timestamp_key.is_some() && self.signature_key.is_none() {
            return Err((
                "timestamp_key",
                "needs a `signature_key`: the header is key=value entries".to_owned(),
            ));
        }
        if self.timestamp_key.is_some() && self.timestamp_header.is_some() {
            return Err((
                "timestamp_key",
                "the timestamp is in the signature header or in `timestamp_header`, not both".to_owned(),
            ));
        }
        let timestamped = self.timestamp_header.is_some() || self.timestamp_key.is_some();
        if self.timestamp_format.is_some() && !timestamped {
            return Err((
                "timestamp_format",
                "needs a `timestamp_header` or `timestamp_key`".to_owned(),
            ));
        }
        match &self.signed {
            Some(template) => {
                let mut rest = template.as_str();
                while let Some(open) = rest.find('{') {
                    let close = rest[open..].find('}').map(|close| open + close + 1);
                    let placeholder = close.map(|close| &rest[open..close]);
                    match placeholder {
                        Some(placeholder) if PLACEHOLDERS.contains(&placeholder) => {
                            rest = &rest[open + placeholder.len()..]
                        }
                        _ => {
                            return Err((
                                "signed",
                                format!(
                                    "{:?} is not a placeholder: the template may use {}",
                                    placeholder.unwrap_or(&rest[open..]),
                                    PLACEHOLDERS.join(", ")
                                ),
                            ));
                        }
                    }
                }
                if !template.contains("{body}") {
                    return Err(("signed", "the template must contain {body}".to_owned()));
                }
                if template.contains("{timestamp}") != timestamped {
                    return Err((
                        "signed",
                        "{timestamp} goes with `timestamp_header` or `timestamp_key`".to_owned(),
                    ));
                }
                if template.contains("{id}") != self.id_header.is_some() {
                    return Err(("signed", "{id} and `id_header` go together".to_owned()));
                }
            }
            None if timestamped => {
                return Err((
                    if self.timestamp_header.is_some() {
                        "timestamp_header"
                    } else {
                        "timestamp_key"
                    },
                    "needs a `signed` template with {timestamp}".to_owned(),
                ));
            }
            None if self.id_header.is_some() => {
                return Err(("id_header", "needs a `signed` template with {id}".to_owned()));
            }
            None => {}
        }
        Ok(GenericHmac {
            headers,
            algorithm,
            encoding,
            prefix: self.prefix.clone(),
            separator,
            signature_key: self.signature_key.clone(),
            timestamp_key: self.timestamp_key.clone(),
            template: self.signed.clone(),
            timestamp_header: self.timestamp_header.clone(),
            timestamp_format,
            id_header: self.id_header.clone(),
            key_encoding,
        })
    }

    /// `url`, `allow_ips`, `public_key`, `certificate_file` and `webhook_id`, checked against
    /// what the scheme needs.
    fn endpoint(&self, scheme: &Scheme) -> Result<Endpoint, (&'static str, String)> {
        let name = scheme.name();
        let url = match (&self.url, scheme.signs_url()) {
            (None, true) => {
                return Err((
                    "url",
                    format!(
                        "required for scheme = {name:?}: the public URL the vendor posts to, as it was given to the vendor"
                    ),
                ));
            }
            (Some(_), false) => return Err(("url", format!("scheme = {name:?} does not sign the URL"))),
            (Some(url), true) => {
                let valid = (url.starts_with("https://") || url.starts_with("http://"))
                    && !url.contains(['?', '#'])
                    && !url.chars().any(|c| c.is_whitespace() || c.is_control());
                if !valid {
                    return Err((
                        "url",
                        format!(
                            "{url:?} is not an http(s) URL without a query (the request's own query string is appended)"
                        ),
                    ));
                }
                Some(url.clone())
            }
            (None, false) => None,
        };
        let allow_ips = self
            .allow_ips
            .iter()
            .flatten()
            .map(|text| {
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        (
                            "allow_ips",
                            format!("{text:?} is not an IP address or a network such as \"192.30.252.0/22\""),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.allow_ips.as_ref().is_some_and(Vec::is_empty) {
            return Err((
                "allow_ips",
                "an empty list admits nobody: leave it out to admit any address".to_owned(),
            ));
        }
        let has_secrets = !(self.secrets.is_empty() && self.secret_env.is_empty() && self.secret_files.is_empty());
        let public_texts = self
            .public_key
            .as_ref()
            .map(|value| string_list(value).ok_or(("public_key", "expected a key or a list of keys".to_owned())))
            .transpose()?
            .unwrap_or_default();
        let certificate_files = self
            .certificate_file
            .as_ref()
            .map(|value| {
                string_list(value).ok_or(("certificate_file", "expected a path or a list of paths".to_owned()))
            })
            .transpose()?
            .unwrap_or_default();
        let parse = |read: fn(&str) -> Result<PublicKey, String>| {
            public_texts
                .iter()
                .map(|text| read(text).map_err(|why| ("public_key", why)))
                .collect::<Result<Vec<_>, _>>()
        };
        let public_keys = match scheme.keys() {
            KeyKind::PublicKeys(read) => {
                if has_secrets {
                    return Err((
                        "secrets",
                        format!("scheme = {name:?} verifies with the vendor's public key, not secrets"),
                    ));
                }
                if public_texts.is_empty() {
                    return Err(("public_key", format!("required for scheme = {name:?}")));
                }
                parse(read)?
            }
            KeyKind::Either(read) => parse(read)?,
            KeyKind::Certificates => {
                if has_secrets {
                    return Err((
                        "secrets",
                        format!("scheme = {name:?} verifies with the vendor's certificate, not secrets"),
                    ));
                }
                if certificate_files.is_empty() {
                    return Err((
                        "certificate_file",
                        format!(
                            "required for scheme = {name:?}: the vendor's signing certificate (PEM), downloaded beforehand"
                        ),
                    ));
                }
                if self.webhook_id.as_deref().is_none_or(str::is_empty) {
                    return Err((
                        "webhook_id",
                        format!("required for scheme = {name:?}: the id the vendor gave the webhook"),
                    ));
                }
                Vec::new()
            }
            KeyKind::Secrets | KeyKind::Nothing => Vec::new(),
        };
        if !public_texts.is_empty() && !matches!(scheme.keys(), KeyKind::PublicKeys(_) | KeyKind::Either(_)) {
            return Err((
                "public_key",
                format!("scheme = {name:?} does not verify with a public key"),
            ));
        }
        if !certificate_files.is_empty() && !matches!(scheme.keys(), KeyKind::Certificates) {
            return Err((
                "certificate_file",
                format!("scheme = {name:?} does not verify with a certificate"),
            ));
        }
        if self.webhook_id.is_some() && !matches!(scheme.keys(), KeyKind::Certificates) {
            return Err(("webhook_id", format!("scheme = {name:?} does not sign a webhook id")));
        }
        if matches!(scheme.keys(), KeyKind::Nothing) {
            if has_secrets {
                return Err((
                    "secrets",
                    "scheme = \"none\" checks no signature: it takes no secrets".to_owned(),
                ));
            }
            if allow_ips.is_empty() {
                return Err((
                    "allow_ips",
                    "required for scheme = \"none\": with no signature, the sender's address is all that admits a request".to_owned(),
                ));
            }
        }
        Ok(Endpoint {
            url,
            allow_ips,
            public_keys,
            certificate_files,
            webhook_id: self.webhook_id.clone(),
        })
    }
}

/// A string or a list of strings.
fn string_list(value: &toml::Value) -> Option<Vec<String>> {
    match value {
        toml::Value::String(one) => Some(vec![one.clone()]),
        toml::Value::Array(items) => items.iter().map(|item| item.as_str().map(str::to_owned)).collect(),
        _ => None,
    }
}

/// A `delivery_id` value: a place, `"body_hash"` or `"none"`.
fn identity(value: toml::Value, format: BodyFormat) -> Result<Identity, String> {
    match value {
        toml::Value::String(text) => match text.as_str() {
            "body_hash" => Ok(Identity::BodyHash),
            "none" => Ok(Identity::None),
            other => Err(format!(
                "{other:?} is not \"body_hash\" or \"none\" (a place is a table, e.g. {{ header = \"X-Event-Id\" }})"
            )),
        },
        table @ toml::Value::Table(_) => {
            let raw: RawLocator = table
                .try_into()
                .map_err(|error: toml::de::Error| error.message().replace('\n', " "))?;
            raw.into_locator(format).map(Identity::At)
        }
        _ => Err("expected a place such as { header = \"X-Event-Id\" }, \"body_hash\" or \"none\"".to_owned()),
    }
}

/// Where each scheme's vendor puts its delivery id and event type.
fn default_locators(scheme: &Scheme, format: BodyFormat) -> (Option<Locator>, Option<Locator>) {
    let places = scheme.places(format == BodyFormat::Form);
    let locator = |place: Place| match place {
        Place::Header(name) => Locator::Header(name.to_owned()),
        Place::Json(pointer) => Locator::Json(pointer.to_owned()),
        Place::Form(name) => Locator::Form(name.to_owned()),
    };
    (places.delivery_id.map(locator), places.event_type.map(locator))
}

/// `[source.sales]`: every key is read by hand, so an error names it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSales {
    preset: Option<toml::Value>,
    sale_types: Option<toml::Value>,
    refund_types: Option<toml::Value>,
    order_id: Option<toml::Value>,
    amount: Option<toml::Value>,
    currency: Option<toml::Value>,
    occurred_at: Option<toml::Value>,
    refund_order_id: Option<toml::Value>,
    refund_amount: Option<toml::Value>,
    refund_currency: Option<toml::Value>,
    refund_occurred_at: Option<toml::Value>,
    amount_unit: Option<toml::Value>,
}

type FieldError = (String, String);

fn sales_error(key: &str, message: impl Into<String>) -> FieldError {
    (format!("sales.{key}"), message.into())
}

fn read_sales(value: toml::Value) -> Result<SalesMapping, FieldError> {
    if !value.is_table() {
        return Err(("sales".to_owned(), "expected a table ([source.sales])".to_owned()));
    }
    let raw: RawSales = value
        .try_into()
        .map_err(|error: toml::de::Error| ("sales".to_owned(), error.message().replace('\n', " ")))?;
    let preset = match raw.preset {
        None => Preset::Canonical,
        Some(value) => {
            let name = text("preset", &value)?;
            Preset::parse(name).ok_or_else(|| sales_error("preset", format!("{name:?} is not {}", Preset::NAMES)))?
        }
    };
    let mut mapping = SalesMapping::preset(preset);
    if let Some(value) = raw.amount_unit {
        mapping.amount_unit = match text("amount_unit", &value)? {
            "minor" => AmountUnit::Minor,
            "major" => AmountUnit::Major,
            other => return Err(sales_error("amount_unit", format!("{other:?} is not minor or major"))),
        };
    }
    if let Some(value) = raw.sale_types {
        mapping.sale_types = types("sale_types", &value)?;
    }
    if let Some(value) = raw.refund_types {
        mapping.refund_types = types("refund_types", &value)?;
    }
    if let Some(both) = mapping
        .refund_types
        .iter()
        .find(|refund| mapping.sale_types.contains(refund))
    {
        return Err(sales_error("refund_types", format!("{both:?} is also a sale type")));
    }
    let overrides = [
        ("order_id", raw.order_id, "refund_order_id", raw.refund_order_id),
        ("amount", raw.amount, "refund_amount", raw.refund_amount),
        ("currency", raw.currency, "refund_currency", raw.refund_currency),
        (
            "occurred_at",
            raw.occurred_at,
            "refund_occurred_at",
            raw.refund_occurred_at,
        ),
    ];
    for (sale_key, sale_value, refund_key, refund_value) in overrides {
        let sale = sale_value.map(|value| pointer_list(sale_key, &value)).transpose()?;
        let refund = refund_value.map(|value| pointer_list(refund_key, &value)).transpose()?;
        // A refund's pointer: its own key, else the sale's override, else the preset's.
        if let Some(refund) = refund.clone().or_else(|| sale.clone()) {
            *mapping.refund.field(sale_key) = refund;
        }
        if let Some(sale) = sale {
            *mapping.sale.field(sale_key) = sale;
        }
    }
    Ok(mapping)
}

fn text<'v>(key: &str, value: &'v toml::Value) -> Result<&'v str, FieldError> {
    value.as_str().ok_or_else(|| sales_error(key, "expected a string"))
}

fn strings<'v>(key: &str, value: &'v toml::Value, what: &str) -> Result<Vec<&'v str>, FieldError> {
    match value {
        toml::Value::String(one) => Ok(vec![one.as_str()]),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| item.as_str())
            .collect::<Option<Vec<&str>>>()
            .ok_or_else(|| sales_error(key, format!("expected {what}"))),
        _ => Err(sales_error(key, format!("expected {what}"))),
    }
}

fn types(key: &str, value: &toml::Value) -> Result<Vec<String>, FieldError> {
    let types = strings(key, value, "a list of event types")?;
    if let Some(bad) = types.iter().find(|t| EventType::parse(t).is_err()) {
        return Err(sales_error(
            key,
            format!("{bad:?} is not an event type (1 to 128 bytes, no control characters)"),
        ));
    }
    Ok(types.into_iter().map(str::to_owned).collect())
}

fn pointer_list(key: &str, value: &toml::Value) -> Result<Vec<String>, FieldError> {
    let list = strings(key, value, "a JSON pointer or a list of them")?;
    if list.is_empty() {
        return Err(sales_error(key, "expected at least one JSON pointer"));
    }
    if let Some(bad) = list.iter().find(|pointer| !pointer.starts_with('/')) {
        return Err(sales_error(
            key,
            format!("{bad:?} is not a JSON pointer (it must start with '/', e.g. \"/data/amount\")"),
        ));
    }
    Ok(list.into_iter().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SourcesFile, String> {
        SourcesFile::parse(text).map_err(|error| error.to_string())
    }

    fn secrets_of(source: &SourceConfig) -> Result<Vec<String>, String> {
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
        source
            .secrets(&env, &read)
            .map(|secrets| secrets.iter().map(|secret| secret.expose().to_owned()).collect())
            .map_err(|error| error.to_string())
    }

    const HMAC_KEYS: &str = "scheme = \"hmac\"\nsecrets = [\"s\"]\nheader = \"X-Sig\"\ndelivery_id = \"body_hash\"\n";

    #[test]
    fn every_scheme_can_be_configured_with_defaults_for_id_and_type() {
        let file = parse(
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
        let names: Vec<&str> = file.sources().iter().map(|source| source.name.as_str()).collect();
        assert_eq!(names, ["stripe", "shop", "svix", "custom"]);
        let stripe = file.get("stripe").unwrap();
        assert_eq!(stripe.scheme, Scheme::STRIPE);
        assert_eq!(secrets_of(stripe).unwrap(), ["whsec_one", "next", "from-file"]);
        assert_eq!(stripe.delivery_id, Identity::At(Locator::Json("/id".into())));
        assert_eq!(file.get("shop").unwrap().max_body_bytes, Some(1000));
        assert_eq!(
            file.get("shop").unwrap().event_type,
            Some(Locator::Header("X-Shopify-Topic".into()))
        );
        assert_eq!(file.get("svix").unwrap().tolerance_secs, 60);
        let custom = file.get("custom").unwrap();
        assert_eq!(custom.delivery_id, Identity::At(Locator::Header("X-Event-Id".into())));
        assert_eq!(custom.event_type, Some(Locator::Json("/event/name".into())));
        assert!(matches!(&custom.scheme, Scheme::Hmac(generic) if generic.algorithm == Algorithm::Sha512));
        assert!(file.get("nobody").is_none());
    }

    #[test]
    fn errors_name_the_source_and_the_field() {
        let cases = [
            (
                "[[source]]\nname = \"Bad Name\"\nscheme = \"github\"\nsecrets = [\"s\"]",
                "source \"Bad Name\": field `name`",
            ),
            (
                "[[source]]\nname = \"a\"\nscheme = \"mollie\"\nsecrets = [\"s\"]",
                "source \"a\": field `scheme`: \"mollie\" is not one of",
            ),
            (
                "[[source]]\nname = \"a\"\nscheme = \"paypal\"\nsecrets = [\"s\"]",
                "source \"a\": field `secrets`: scheme = \"paypal\" verifies with the vendor's certificate",
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
    fn secret_errors_name_the_source_and_the_field() {
        let cases = [
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
                "[[source]]\nname = \"a\"\nscheme = \"github\"\nsecrets = [\"\"]",
                "source \"a\": field `secrets`: a secret is empty",
            ),
        ];
        for (text, expected) in cases {
            // The file itself is fine: only a binary that needs the secrets refuses it.
            let file = parse(text).unwrap();
            let error = secrets_of(&file.sources()[0]).unwrap_err();
            assert!(error.starts_with(expected), "{error:?} should start with {expected:?}");
        }
    }

    #[test]
    fn form_sources_locate_fields_in_the_form() {
        let file = parse(
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
        let slash = file.get("slash").unwrap();
        assert_eq!(slash.body_format, BodyFormat::Form);
        assert_eq!(slash.delivery_id, Identity::At(Locator::Form("trigger_id".into())));
        assert_eq!(slash.event_type, Some(Locator::Form("command".into())));
        let events = file.get("events").unwrap();
        assert_eq!(events.body_format, BodyFormat::Json);
        assert_eq!(events.delivery_id, Identity::At(Locator::Json("/event_id".into())));
        let legacy = file.get("legacy").unwrap();
        assert_eq!(legacy.delivery_id, Identity::At(Locator::Form("id".into())));
        assert_eq!(legacy.event_type, Some(Locator::Header("X-Kind".into())));
    }

    #[test]
    fn each_source_says_how_its_events_are_told_apart() {
        let file = parse(
            r#"
            [[source]]
            name = "mollie"
            scheme = "hmac"
            secrets = ["k"]
            header = "X-Signature"
            body_format = "form"
            delivery_id = "none"

            [[source]]
            name = "ping"
            scheme = "hmac"
            secrets = ["k"]
            header = "X-Signature"
            delivery_id = "body_hash"

            [[source]]
            name = "gh"
            scheme = "github"
            secrets = ["k"]
            "#,
        )
        .unwrap();
        assert_eq!(file.get("mollie").unwrap().delivery_id, Identity::None);
        assert_eq!(file.get("ping").unwrap().delivery_id, Identity::BodyHash);
        assert_eq!(
            file.get("gh").unwrap().delivery_id,
            Identity::At(Locator::Header("X-GitHub-Delivery".into()))
        );
        let hmac = "[[source]]\nname = \"a\"\nscheme = \"hmac\"\nsecrets = [\"s\"]\nheader = \"X-Sig\"\n";
        let cases = [
            (
                String::new(),
                "source \"a\": field `delivery_id`: required for scheme = \"hmac\" with body_format = \"json\"",
            ),
            (
                "delivery_id = \"hash\"".to_owned(),
                "source \"a\": field `delivery_id`: \"hash\" is not \"body_hash\" or \"none\"",
            ),
            (
                "delivery_id = 5".to_owned(),
                "source \"a\": field `delivery_id`: expected a place",
            ),
            (
                "delivery_id = { cookie = \"id\" }".to_owned(),
                "source \"a\": field `delivery_id`: unknown variant `cookie`",
            ),
        ];
        for (extra, expected) in cases {
            let error = parse(&format!("{hmac}{extra}")).unwrap_err();
            assert!(error.starts_with(expected), "{error:?} should start with {expected:?}");
        }
        let stripe_form = "[[source]]\nname = \"s\"\nscheme = \"stripe\"\nsecrets = [\"s\"]\nbody_format = \"form\"\n";
        assert!(
            parse(stripe_form)
                .unwrap_err()
                .contains("field `delivery_id`: required")
        );
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
    fn a_sales_table_starts_from_its_preset() {
        let file = parse(&format!(
            "[[source]]\nname = \"pay\"\nscheme = \"stripe\"\nsecrets = [\"s\"]\n[source.sales]\npreset = \"stripe\"\n\n\
             [[source]]\nname = \"shop\"\n{HMAC_KEYS}[source.sales]\npreset = \"shopify\"\n\n\
             [[source]]\nname = \"plain\"\nscheme = \"github\"\nsecrets = [\"s\"]\n"
        ))
        .unwrap();
        assert_eq!(
            file.get("pay").unwrap().sales,
            Some(SalesMapping::preset(Preset::Stripe))
        );
        assert_eq!(
            file.get("shop").unwrap().sales,
            Some(SalesMapping::preset(Preset::Shopify))
        );
        assert_eq!(file.get("plain").unwrap().sales, None);
    }

    #[test]
    fn overrides_replace_the_presets_pointers_and_refunds_follow_the_sale_keys() {
        let text = format!(
            "[[source]]\nname = \"acme\"\n{HMAC_KEYS}[source.sales]\n\
             sale_types = [\"order.paid\", \"order.completed\"]\nrefund_types = \"order.refunded\"\n\
             order_id = \"/order/ref\"\namount = \"/order/total\"\ncurrency = [\"/order/currency\", \"/currency\"]\n\
             occurred_at = \"/at\"\nrefund_amount = \"/order/refunded_total\"\namount_unit = \"major\"\n"
        );
        let mapping = parse(&text).unwrap().get("acme").unwrap().sales.clone().unwrap();
        assert_eq!(mapping.preset, Preset::Canonical);
        assert_eq!(mapping.sale_types, ["order.paid", "order.completed"]);
        assert_eq!(mapping.refund_types, ["order.refunded"]);
        assert_eq!(mapping.amount_unit, AmountUnit::Major);
        assert_eq!(mapping.sale.order_id, ["/order/ref"]);
        assert_eq!(mapping.refund.order_id, ["/order/ref"]);
        assert_eq!(mapping.sale.amount, ["/order/total"]);
        assert_eq!(mapping.refund.amount, ["/order/refunded_total"]);
        assert_eq!(mapping.refund.currency, ["/order/currency", "/currency"]);
        assert_eq!(mapping.refund.occurred_at, ["/at"]);
    }

    #[test]
    fn a_preset_keeps_its_refund_pointers_unless_overridden() {
        let text = format!(
            "[[source]]\nname = \"pay\"\n{HMAC_KEYS}[source.sales]\npreset = \"stripe\"\n\
             currency = \"/data/object/presentment_currency\"\namount_unit = \"minor\"\n"
        );
        let mapping = parse(&text).unwrap().get("pay").unwrap().sales.clone().unwrap();
        assert_eq!(mapping.refund.amount, ["/data/object/amount_refunded"]);
        assert_eq!(mapping.refund.currency, ["/data/object/presentment_currency"]);
        assert_eq!(mapping.sale.occurred_at, ["/created"]);
    }

    #[test]
    fn bad_sales_tables_name_the_source_and_the_field_in_one_line() {
        let source = |sales: &str| format!("[[source]]\nname = \"shop\"\n{HMAC_KEYS}[source.sales]\n{sales}\n");
        let cases = [
            (
                "preset = \"paypal\"",
                "source \"shop\": field `sales.preset`: \"paypal\" is not canonical, stripe or shopify",
            ),
            ("preset = 1", "source \"shop\": field `sales.preset`: expected a string"),
            (
                "amount_unit = \"cents\"",
                "source \"shop\": field `sales.amount_unit`: \"cents\" is not minor or major",
            ),
            (
                "amount = \"data/amount\"",
                "source \"shop\": field `sales.amount`: \"data/amount\" is not a JSON pointer",
            ),
            (
                "refund_occurred_at = []",
                "source \"shop\": field `sales.refund_occurred_at`: expected at least one JSON pointer",
            ),
            (
                "order_id = 5",
                "source \"shop\": field `sales.order_id`: expected a JSON pointer or a list of them",
            ),
            (
                "sale_types = [1]",
                "source \"shop\": field `sales.sale_types`: expected a list of event types",
            ),
            (
                "sale_types = [\"\"]",
                "source \"shop\": field `sales.sale_types`: \"\" is not an event type",
            ),
            (
                "sale_types = [\"x\"]\nrefund_types = [\"x\"]",
                "source \"shop\": field `sales.refund_types`: \"x\" is also a sale type",
            ),
            (
                "amout = \"/a\"",
                "source \"shop\": field `sales`: unknown field `amout`",
            ),
        ];
        for (sales, expected) in cases {
            let error = parse(&source(sales)).unwrap_err();
            assert!(error.starts_with(expected), "{error:?} should start with {expected:?}");
            assert!(!error.contains('\n'), "{error:?}");
        }
        assert_eq!(
            parse(&format!("[[source]]\nname = \"shop\"\n{HMAC_KEYS}sales = \"stripe\"\n")).unwrap_err(),
            "source \"shop\": field `sales`: expected a table ([source.sales])"
        );
        assert_eq!(
            parse(&format!(
                "[[source]]\nname = \"slash\"\n{HMAC_KEYS}body_format = \"form\"\n[source.sales]\n"
            ))
            .unwrap_err(),
            "source \"slash\": field `sales`: sales are read from JSON bodies, not body_format = \"form\""
        );
        let error = parse("[[source]]\nscheme = \"github\"\n[source.sales]\n").unwrap_err();
        assert!(error.contains("name"), "{error}");
        assert!(parse("not toml [").unwrap_err().starts_with("line 1: "));
    }

    #[test]
    fn a_file_that_cannot_be_read_or_used_is_one_config_error_line_naming_sources_file() {
        let dir = std::env::temp_dir().join(format!("webhook-core-sources-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sources.toml");
        std::fs::write(
            &path,
            "[[source]]\nname = \"shop\"\nscheme = \"github\"\n[source.sales]\npreset = \"nope\"\n",
        )
        .unwrap();
        let error = SourcesFile::read(&path).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "invalid configuration: SOURCES_FILE={:?}: expected a valid sources file: source \"shop\": field `sales.preset`: \"nope\" is not canonical, stripe or shopify",
                path.display().to_string()
            )
        );
        let error = SourcesFile::read(&dir.join("missing.toml")).unwrap_err().to_string();
        assert!(error.contains("expected a readable file"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_source_made_in_code_takes_its_schemes_places() {
        let name = SourceName::parse("default").unwrap();
        let github = SourceConfig::new(name.clone(), Scheme::GITHUB).unwrap();
        assert_eq!(
            github.delivery_id,
            Identity::At(Locator::Header("X-GitHub-Delivery".into()))
        );
        assert_eq!(github.event_type, Some(Locator::Header("X-GitHub-Event".into())));
        assert!(github.json_pointers().is_empty());
        let slack = SourceConfig::new(name.clone(), Scheme::SLACK).unwrap();
        assert_eq!(slack.json_pointers(), ["/event_id", "/type", "/challenge"]);
        let generic = crate::signature::GenericHmac::new("X-Sig");
        assert!(SourceConfig::new(name, Scheme::Hmac(generic)).is_err());
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let file = parse("[[source]]\nname = \"a\"\nscheme = \"github\"\nsecrets = [\"topsecret\"]").unwrap();
        assert!(!format!("{file:?}").contains("topsecret"));
    }

    #[test]
    fn admission_keys_are_read_and_each_mistake_names_the_source_and_the_field() {
        use crate::admission::{RateLimit, TypeFilter, WhenLimited};
        let source =
            |extra: &str| format!("[[source]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [\"s\"]\n{extra}");
        let file = parse(&source(
            "rate_limit = { per_second = 200, burst = 400 }\nwhen_limited = \"accept\"\ndrop_types = [\"ping\", \"*.updated\"]",
        ))
        .unwrap();
        let admission = &file.get("gh").unwrap().admission;
        assert_eq!(
            admission.rate_limit,
            Some(RateLimit {
                per_second: 200.0,
                burst: 400
            })
        );
        assert_eq!(admission.when_limited, WhenLimited::Accept);
        assert!(matches!(&admission.types, Some(TypeFilter::Drop(globs)) if globs.len() == 2));
        let slow = parse(&source("rate_limit = { per_second = 0.5 }")).unwrap();
        let slow = &slow.get("gh").unwrap().admission;
        assert_eq!(slow.rate_limit.map(|limit| limit.burst), Some(1));
        assert_eq!(slow.when_limited, WhenLimited::Refuse);
        let plain = parse(&source("")).unwrap();
        assert_eq!(plain.get("gh").unwrap().admission, Default::default());
        let cases = [
            (
                "rate_limit = { per_second = 0 }",
                "source \"gh\": field `rate_limit.per_second`: expected requests per second above 0",
            ),
            (
                "rate_limit = { per_second = -1 }",
                "source \"gh\": field `rate_limit.per_second`: expected requests per second above 0",
            ),
            (
                "rate_limit = { burst = 5 }",
                "source \"gh\": field `rate_limit.per_second`: required",
            ),
            (
                "rate_limit = { per_second = \"fast\" }",
                "source \"gh\": field `rate_limit.per_second`: \"fast\" is not a number",
            ),
            (
                "rate_limit = { per_second = 10, burst = 0 }",
                "source \"gh\": field `rate_limit.burst`: expected at least 1",
            ),
            (
                "rate_limit = { per_second = 10, burst = 1.5 }",
                "source \"gh\": field `rate_limit.burst`: 1.5 is not a whole number",
            ),
            (
                "rate_limit = { per_second = 10, brust = 5 }",
                "source \"gh\": field `rate_limit`: unknown key `brust`",
            ),
            (
                "rate_limit = 200",
                "source \"gh\": field `rate_limit`: expected a table",
            ),
            (
                "when_limited = \"drop\"",
                "source \"gh\": field `when_limited`: \"drop\" is not \"429\" or \"accept\"",
            ),
            (
                "accept_types = [\"a\"]\ndrop_types = [\"b\"]",
                "source \"gh\": field `drop_types`: set accept_types or drop_types, not both",
            ),
            (
                "accept_types = []",
                "source \"gh\": field `accept_types`: expected at least one pattern",
            ),
            (
                "drop_types = \"ping\"",
                "source \"gh\": field `drop_types`: expected a list",
            ),
            (
                "drop_types = [\"[ab]\"]",
                "source \"gh\": field `drop_types`: \"[ab]\": '[' is not glob syntax here",
            ),
            (
                "accept_types = [1]",
                "source \"gh\": field `accept_types`: 1 is not a string",
            ),
        ];
        for (extra, expected) in cases {
            let error = parse(&source(extra)).unwrap_err();
            assert!(error.starts_with(expected), "{error:?} should start with {expected:?}");
            assert!(!error.contains('\n'), "{error:?}");
        }
    }

    #[test]
    fn every_preset_is_named_and_parsed_back() {
        for preset in Preset::ALL {
            assert_eq!(Preset::parse(preset.name()), Some(preset));
            assert!(Preset::NAMES.contains(preset.name()));
        }
        assert_eq!(Preset::parse("paypal"), None);
    }

    #[test]
    fn a_source_may_spool_and_quarantine_and_mistakes_name_the_field() {
        let file = parse(
            "[[source]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [\"s\"]\n\
             when_broker_down = \"spool\"\nquarantine = { max_requests = 50 }\n\n\
             [[source]]\nname = \"plain\"\nscheme = \"github\"\nsecrets = [\"s\"]\n",
        )
        .unwrap();
        let gh = file.get("gh").unwrap();
        assert_eq!(gh.when_broker_down, WhenBrokerDown::Spool);
        assert_eq!(gh.quarantine.map(|q| q.max_requests), Some(50));
        let plain = file.get("plain").unwrap();
        assert_eq!(plain.when_broker_down, WhenBrokerDown::Fail);
        assert_eq!(plain.quarantine, None);

        let base = "[[source]]\nname = \"a\"\nscheme = \"github\"\nsecrets = [\"s\"]\n";
        assert_eq!(
            parse(&format!("{base}when_broker_down = \"queue\"")).unwrap_err(),
            "source \"a\": field `when_broker_down`: \"queue\" is not \"fail\" or \"spool\""
        );
        assert_eq!(
            parse(&format!("{base}quarantine = {{ max_age_hours = 0 }}")).unwrap_err(),
            "source \"a\": field `quarantine`: max_age_hours: expected 1 to 720"
        );
    }
}
