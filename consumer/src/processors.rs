//! What an event triggers: sales and refunds read from its body. Pure: no I/O.
//!
//! Each source has a sales [`Mapping`]: which event types are sales and which are refunds, and
//! where (JSON pointers) the order id, amount, currency and time are in their bodies. Any other
//! event type is [`Outcome::Ignored`]. A matching event whose body does not hold what the
//! mapping says is a [`ProcessError`]: the message fails on its own and goes down the retry
//! ladder to the dead-letter queue, with an error naming the event type and the pointer.
//!
//! The canonical format, for every source unless `SOURCES_FILE` says otherwise:
//!
//! ```json
//! {"id": "evt_1", "type": "sale.completed", "occurred_at": "2026-11-01T10:00:00Z",
//!  "data": {"order_id": "o-1", "amount": 1999, "currency": "EUR"}}
//! ```
//!
//! `type` is `sale.completed` or `sale.refunded`; `amount` is in minor units (cents), and for a
//! refund it is the order's total refunded amount as of that event. Presets for Stripe
//! (`charge.succeeded`, `charge.refunded`) and Shopify (`orders/paid`, `refunds/create`) read
//! those vendors' own payloads. Per source, in `SOURCES_FILE`:
//!
//! ```toml
//! [[source]]
//! name = "shop"
//! # … the handler's keys …
//! [source.sales]
//! preset = "shopify"                        # canonical (default) | stripe | shopify
//! # Optional overrides of the preset (these are the shopify preset's own values):
//! sale_types = ["orders/paid"]
//! refund_types = ["refunds/create"]
//! order_id = "/id"                          # a JSON pointer, or a list: the first set wins
//! amount = "/total_price"
//! currency = "/currency"
//! occurred_at = ["/processed_at", "/created_at"]
//! refund_order_id = "/order_id"             # unset: `order_id` if set, else the preset's
//! refund_amount = "/transactions/0/amount"
//! refund_currency = "/transactions/0/currency"
//! refund_occurred_at = "/created_at"
//! amount_unit = "major"                     # minor | major, for both amounts
//! ```
//!
//! Amounts are exact: integers, decimal strings, or JSON numbers read from their text (never
//! through floating point arithmetic); `major` amounts are scaled by the currency's minor
//! digits ([`webhook_core::money::minor_digits`]). Times are RFC 3339 text or whole Unix
//! seconds.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Datelike, SubsecRound, Utc};
use serde::Deserialize;
use serde_json::Value;
use webhook_core::config::ConfigError;
use webhook_core::money::{self, DecimalError};
use webhook_core::payload::BodyFormat;

/// Longest order id, in characters (the `sales.order_id` column).
pub(crate) const MAX_ORDER_ID_CHARS: usize = 200;
/// The most significant digits a JSON number that is not an integer may have: up to 15, its
/// shortest text is the text the vendor sent (an IEEE double holds 15 decimal digits exactly).
const MAX_FLOAT_DIGITS: usize = 15;

/// What an event came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// No processor for its type: stored with status `ignored`.
    Ignored,
    /// A sale or a refund to apply: stored with status `processed`.
    Sale(SaleChange),
}

/// A sale, or the refunded total of an order, as of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleChange {
    /// The vendor's order id (1 to 200 characters).
    pub order_id: String,
    /// ISO 4217 code, three capital letters.
    pub currency: String,
    /// Sold amount (a sale) or total refunded so far (a refund), in minor units, never negative.
    pub amount_minor: i64,
    /// When the vendor says it happened (UTC, microseconds).
    pub at: DateTime<Utc>,
    /// Sale or refund.
    pub kind: Kind,
}

/// Which half of an order's row an event updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A sale: `amount_minor` is what was sold.
    Sale,
    /// A refund: `amount_minor` is the order's total refunded so far.
    Refund,
}

/// A body that does not hold what its mapping says, e.g.
/// `sale.completed: /data/amount is missing`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ProcessError(String);

/// A ready-made mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Preset {
    Canonical,
    Stripe,
    Shopify,
}

impl Preset {
    const NAMES: &'static str = "canonical, stripe or shopify";

    fn parse(name: &str) -> Option<Self> {
        match name {
            "canonical" => Some(Self::Canonical),
            "stripe" => Some(Self::Stripe),
            "shopify" => Some(Self::Shopify),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Canonical => "canonical",
            Self::Stripe => "stripe",
            Self::Shopify => "shopify",
        }
    }
}

/// Whether amounts are in minor units (cents) or major units (euros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AmountUnit {
    Minor,
    Major,
}

/// Where one kind's values are: each a list of JSON pointers, the first one set wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields {
    pub(crate) order_id: Vec<String>,
    pub(crate) amount: Vec<String>,
    pub(crate) currency: Vec<String>,
    pub(crate) occurred_at: Vec<String>,
}

/// How one source's events become sales and refunds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapping {
    /// The preset it started from (for the log).
    pub(crate) preset: Preset,
    /// Event types that are sales.
    pub(crate) sale_types: Vec<String>,
    /// Event types that are refunds.
    pub(crate) refund_types: Vec<String>,
    /// Where a sale's values are.
    pub(crate) sale: Fields,
    /// Where a refund's values are.
    pub(crate) refund: Fields,
    /// The unit of both amounts.
    pub(crate) amount_unit: AmountUnit,
}

fn pointers(list: &[&str]) -> Vec<String> {
    list.iter().map(|pointer| (*pointer).to_owned()).collect()
}

impl Mapping {
    /// The mapping of a preset.
    pub(crate) fn preset(preset: Preset) -> Self {
        match preset {
            Preset::Canonical => {
                let fields = Fields {
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
                sale: Fields {
                    order_id: pointers(&["/data/object/id"]),
                    amount: pointers(&["/data/object/amount"]),
                    currency: pointers(&["/data/object/currency"]),
                    occurred_at: pointers(&["/created"]),
                },
                refund: Fields {
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
                sale: Fields {
                    order_id: pointers(&["/id"]),
                    amount: pointers(&["/total_price"]),
                    currency: pointers(&["/currency"]),
                    occurred_at: pointers(&["/processed_at", "/created_at"]),
                },
                refund: Fields {
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

/// Runs `mapping` over an event of type `event_type` with `body` (UTF-8 JSON).
pub(crate) fn process(mapping: &Mapping, event_type: &str, body: &str) -> Result<Outcome, ProcessError> {
    let (kind, fields) = if mapping.sale_types.iter().any(|t| t == event_type) {
        (Kind::Sale, &mapping.sale)
    } else if mapping.refund_types.iter().any(|t| t == event_type) {
        (Kind::Refund, &mapping.refund)
    } else {
        return Ok(Outcome::Ignored);
    };
    let fail = |why: String| ProcessError(format!("{event_type}: {why}"));
    let document: Value = serde_json::from_str(body).map_err(|error| fail(format!("the body is not JSON: {error}")))?;
    let order_id = read(&document, &fields.order_id, order_id).map_err(fail)?;
    let currency = read(&document, &fields.currency, currency).map_err(fail)?;
    let amount_minor = read(&document, &fields.amount, |value| {
        amount(value, mapping.amount_unit, &currency)
    })
    .map_err(fail)?;
    let at = read(&document, &fields.occurred_at, time).map_err(fail)?;
    Ok(Outcome::Sale(SaleChange {
        order_id,
        currency,
        amount_minor,
        at,
        kind,
    }))
}

/// The value at the first of `pointers` that is present and not null, converted; the error
/// names the pointer.
fn read<T>(
    document: &Value,
    pointers: &[String],
    convert: impl FnOnce(&Value) -> Result<T, String>,
) -> Result<T, String> {
    let found = pointers.iter().find_map(|pointer| match document.pointer(pointer) {
        None | Some(Value::Null) => None,
        Some(value) => Some((pointer, value)),
    });
    match (found, pointers) {
        (Some((pointer, value)), _) => convert(value).map_err(|why| format!("{pointer}: {} {why}", shown(value))),
        (None, [pointer]) if document.pointer(pointer).is_some() => Err(format!("{pointer} is null")),
        (None, [pointer]) => Err(format!("{pointer} is missing")),
        (None, _) => Err(format!("{} are all missing or null", pointers.join(", "))),
    }
}

/// A value as JSON text for an error message, shortened.
fn shown(value: &Value) -> String {
    const MAX: usize = 60;
    let text = value.to_string();
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

fn order_id(value: &Value) -> Result<String, String> {
    let id = match value {
        Value::String(id) => id.clone(),
        Value::Number(number) if number.is_i64() || number.is_u64() => number.to_string(),
        _ => return Err("is not a string or an integer".to_owned()),
    };
    if id.is_empty() {
        Err("is empty".to_owned())
    } else if id.chars().count() > MAX_ORDER_ID_CHARS {
        Err(format!("is longer than {MAX_ORDER_ID_CHARS} characters"))
    } else if id.chars().any(char::is_control) {
        Err("contains control characters".to_owned())
    } else {
        Ok(id)
    }
}

fn currency(value: &Value) -> Result<String, String> {
    let Value::String(code) = value else {
        return Err("is not a currency code".to_owned());
    };
    let code = code.to_ascii_uppercase();
    if money::is_currency_code(&code) {
        Ok(code)
    } else {
        Err("is not a 3-letter currency code".to_owned())
    }
}

fn amount(value: &Value, unit: AmountUnit, currency: &str) -> Result<i64, String> {
    let scale = match unit {
        AmountUnit::Minor => 0,
        AmountUnit::Major => money::minor_digits(currency),
    };
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => {
            let text = number.to_string();
            // Integers are exact; anything else was read as a double: only trust short ones.
            let integer = number.is_i64() || number.is_u64();
            if !integer && significant_digits(&text) > MAX_FLOAT_DIGITS {
                return Err(format!(
                    "has more digits than a JSON number carries exactly (at most {MAX_FLOAT_DIGITS}); send it as a string"
                ));
            }
            text
        }
        _ => return Err("is not a number or a decimal string".to_owned()),
    };
    let amount = money::parse_decimal(&text, scale).map_err(|error| match (error, unit) {
        (DecimalError::TooManyDecimals, AmountUnit::Major) => format!("has more decimals than {currency} allows"),
        (DecimalError::TooManyDecimals, AmountUnit::Minor) => "is not a whole number of minor units".to_owned(),
        (DecimalError::NotANumber, _) => "is not a decimal number".to_owned(),
        (DecimalError::OutOfRange, _) => "is out of range".to_owned(),
    })?;
    if amount < 0 {
        return Err("is negative".to_owned());
    }
    Ok(amount)
}

/// Digits of a number's text, without leading zeros and the exponent.
fn significant_digits(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
    mantissa
        .bytes()
        .filter(u8::is_ascii_digit)
        .skip_while(|digit| *digit == b'0')
        .count()
}

fn time(value: &Value) -> Result<DateTime<Utc>, String> {
    let at = match value {
        Value::String(text) => DateTime::parse_from_rfc3339(text)
            .map_err(|error| format!("is not an RFC 3339 time ({error})"))?
            .with_timezone(&Utc),
        Value::Number(number) => number
            .as_i64()
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
            .ok_or("is not whole Unix seconds")?,
        _ => return Err("is not an RFC 3339 time or Unix seconds".to_owned()),
    };
    if !(1970..=9999).contains(&at.year()) {
        return Err("is out of range (years 1970 to 9999)".to_owned());
    }
    Ok(at.trunc_subsecs(6))
}

/// Every source's mapping; sources without one use the canonical format.
#[derive(Debug, Clone)]
pub(crate) struct Mappings {
    by_source: HashMap<String, Mapping>,
    canonical: Mapping,
}

impl Default for Mappings {
    fn default() -> Self {
        Self {
            by_source: HashMap::new(),
            canonical: Mapping::preset(Preset::Canonical),
        }
    }
}

impl Mappings {
    /// The mapping of `source`.
    pub(crate) fn get(&self, source: &str) -> &Mapping {
        self.by_source.get(source).unwrap_or(&self.canonical)
    }

    /// For the log: `shop=shopify, stripe=stripe (others canonical)`.
    pub(crate) fn summary(&self) -> String {
        let mut sources: Vec<String> = self
            .by_source
            .iter()
            .map(|(source, mapping)| format!("{source}={}", mapping.preset.name()))
            .collect();
        sources.sort();
        if sources.is_empty() {
            "every source canonical".to_owned()
        } else {
            format!("{} (others canonical)", sources.join(", "))
        }
    }

    /// Reads the `[source.sales]` tables of `SOURCES_FILE`.
    pub(crate) fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError::invalid("SOURCES_FILE", Some(&shown), format!("a readable file ({error})"))
        })?;
        Self::from_toml(&text)
            .map_err(|why| ConfigError::invalid("SOURCES_FILE", Some(&shown), format!("a valid sources file: {why}")))
    }

    /// Parses the text of a sources file, reading only `name`, `body_format` and `sales` of
    /// each `[[source]]` (the request handler checks the rest); the error names the source and
    /// the field.
    pub(crate) fn from_toml(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|error| {
            webhook_core::config::error_at_line(text, error.span().map(|span| span.start), error.message())
        })?;
        let mut mappings = Self::default();
        for entry in file.source {
            let Some(sales) = entry.sales else { continue };
            let name = entry.name;
            if entry
                .body_format
                .as_deref()
                .is_some_and(|format| format != BodyFormat::Json.name())
            {
                return Err(format!(
                    "source {name:?}: field `sales`: sales are read from JSON bodies, not body_format = {:?}",
                    entry.body_format.unwrap_or_default()
                ));
            }
            let mapping = SalesEntry::read(sales).map_err(|why| format!("source {name:?}: {why}"))?;
            if mappings.by_source.insert(name.clone(), mapping).is_some() {
                return Err(format!("source {name:?}: field `name`: defined twice"));
            }
        }
        Ok(mappings)
    }
}

/// A sources file as the consumer reads it: the handler's keys are not its business.
#[derive(Deserialize)]
struct File {
    #[serde(default)]
    source: Vec<FileEntry>,
}

#[derive(Deserialize)]
struct FileEntry {
    name: String,
    #[serde(default)]
    body_format: Option<String>,
    #[serde(default)]
    sales: Option<toml::Value>,
}

/// `[source.sales]`: every key is read by hand, so an error names it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SalesEntry {
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

impl SalesEntry {
    fn read(value: toml::Value) -> Result<Mapping, String> {
        if !value.is_table() {
            return Err("field `sales`: expected a table ([source.sales])".to_owned());
        }
        let entry: Self = value
            .try_into()
            .map_err(|error: toml::de::Error| format!("field `sales`: {}", error.message().replace('\n', " ")))?;
        let preset = match entry.preset {
            None => Preset::Canonical,
            Some(value) => {
                let name = text("preset", &value)?;
                Preset::parse(name).ok_or_else(|| format!("field `sales.preset`: {name:?} is not {}", Preset::NAMES))?
            }
        };
        let mut mapping = Mapping::preset(preset);
        if let Some(value) = entry.amount_unit {
            mapping.amount_unit = match text("amount_unit", &value)? {
                "minor" => AmountUnit::Minor,
                "major" => AmountUnit::Major,
                other => return Err(format!("field `sales.amount_unit`: {other:?} is not minor or major")),
            };
        }
        if let Some(value) = entry.sale_types {
            mapping.sale_types = types("sale_types", &value)?;
        }
        if let Some(value) = entry.refund_types {
            mapping.refund_types = types("refund_types", &value)?;
        }
        if let Some(both) = mapping
            .refund_types
            .iter()
            .find(|refund| mapping.sale_types.contains(refund))
        {
            return Err(format!("field `sales.refund_types`: {both:?} is also a sale type"));
        }
        let overrides = [
            ("order_id", entry.order_id, "refund_order_id", entry.refund_order_id),
            ("amount", entry.amount, "refund_amount", entry.refund_amount),
            ("currency", entry.currency, "refund_currency", entry.refund_currency),
            (
                "occurred_at",
                entry.occurred_at,
                "refund_occurred_at",
                entry.refund_occurred_at,
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
}

impl Fields {
    fn field(&mut self, key: &str) -> &mut Vec<String> {
        match key {
            "order_id" => &mut self.order_id,
            "amount" => &mut self.amount,
            "currency" => &mut self.currency,
            _ => &mut self.occurred_at,
        }
    }
}

fn text<'v>(key: &str, value: &'v toml::Value) -> Result<&'v str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("field `sales.{key}`: expected a string"))
}

fn strings<'v>(key: &str, value: &'v toml::Value, what: &str) -> Result<Vec<&'v str>, String> {
    match value {
        toml::Value::String(one) => Ok(vec![one.as_str()]),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| item.as_str())
            .collect::<Option<Vec<&str>>>()
            .ok_or_else(|| format!("field `sales.{key}`: expected {what}")),
        _ => Err(format!("field `sales.{key}`: expected {what}")),
    }
}

fn types(key: &str, value: &toml::Value) -> Result<Vec<String>, String> {
    let types = strings(key, value, "a list of event types")?;
    if let Some(bad) = types
        .iter()
        .find(|t| webhook_core::envelope::check_event_type(t).is_err())
    {
        return Err(format!(
            "field `sales.{key}`: {bad:?} is not an event type (1 to 128 bytes, no control characters)"
        ));
    }
    Ok(types.into_iter().map(str::to_owned).collect())
}

fn pointer_list(key: &str, value: &toml::Value) -> Result<Vec<String>, String> {
    let list = strings(key, value, "a JSON pointer or a list of them")?;
    if list.is_empty() {
        return Err(format!("field `sales.{key}`: expected at least one JSON pointer"));
    }
    if let Some(bad) = list.iter().find(|pointer| !pointer.starts_with('/')) {
        return Err(format!(
            "field `sales.{key}`: {bad:?} is not a JSON pointer (it must start with '/', e.g. \"/data/amount\")"
        ));
    }
    Ok(list.into_iter().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn sale(order_id: &str, currency: &str, amount_minor: i64, at: &str, kind: Kind) -> Outcome {
        Outcome::Sale(SaleChange {
            order_id: order_id.to_owned(),
            currency: currency.to_owned(),
            amount_minor,
            at: DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&Utc),
            kind,
        })
    }

    fn run(mapping: &Mapping, event_type: &str, body: &Value) -> Result<Outcome, String> {
        process(mapping, event_type, &body.to_string()).map_err(|error| error.to_string())
    }

    fn canonical(event_type: &str, data: &Value) -> Value {
        json!({"id": "evt_1", "type": event_type, "occurred_at": "2026-11-02T10:30:00.123456Z", "data": data})
    }

    #[test]
    fn a_canonical_sale_and_refund_are_read_in_minor_units() {
        let mapping = Mapping::preset(Preset::Canonical);
        let body = canonical(
            "sale.completed",
            &json!({"order_id": "o-1", "amount": 1999, "currency": "EUR", "extra": [1]}),
        );
        assert_eq!(
            run(&mapping, "sale.completed", &body),
            Ok(sale("o-1", "EUR", 1999, "2026-11-02T10:30:00.123456Z", Kind::Sale))
        );
        let body = canonical(
            "sale.refunded",
            &json!({"order_id": "o-1", "amount": "500", "currency": "EUR"}),
        );
        assert_eq!(
            run(&mapping, "sale.refunded", &body),
            Ok(sale("o-1", "EUR", 500, "2026-11-02T10:30:00.123456Z", Kind::Refund))
        );
    }

    #[test]
    fn other_event_types_are_ignored_without_reading_the_body() {
        let mapping = Mapping::preset(Preset::Canonical);
        assert_eq!(process(&mapping, "push", "not even json"), Ok(Outcome::Ignored));
        assert_eq!(process(&mapping, "charge.succeeded", "{}"), Ok(Outcome::Ignored));
        assert_eq!(
            process(&Mapping::preset(Preset::Stripe), "sale.completed", "{}"),
            Ok(Outcome::Ignored)
        );
    }

    #[test]
    fn times_are_rfc3339_in_any_offset_or_unix_seconds_and_kept_to_the_microsecond() {
        let mapping = Mapping::preset(Preset::Canonical);
        let data = json!({"order_id": 42, "amount": 1, "currency": "EUR"});
        let mut body = canonical("sale.completed", &data);
        body["occurred_at"] = json!("2026-11-02T05:30:00.1234567-05:00");
        assert_eq!(
            run(&mapping, "sale.completed", &body),
            Ok(sale("42", "EUR", 1, "2026-11-02T10:30:00.123456Z", Kind::Sale))
        );
        body["occurred_at"] = json!(1_790_000_000);
        let Ok(Outcome::Sale(change)) = run(&mapping, "sale.completed", &body) else {
            panic!("not a sale")
        };
        assert_eq!(change.at, Utc.timestamp_opt(1_790_000_000, 0).unwrap());
        for (bad, why) in [
            (
                json!("2026-11-02 10:30"),
                "/occurred_at: \"2026-11-02 10:30\" is not an RFC 3339 time",
            ),
            (json!(1.5e9), "/occurred_at: 1500000000.0 is not whole Unix seconds"),
            (json!(-1), "/occurred_at: -1 is out of range"),
            (
                json!(true),
                "/occurred_at: true is not an RFC 3339 time or Unix seconds",
            ),
        ] {
            body["occurred_at"] = bad;
            let error = run(&mapping, "sale.completed", &body).unwrap_err();
            assert!(error.starts_with(&format!("sale.completed: {why}")), "{error}");
        }
    }

    #[test]
    fn the_stripe_preset_reads_charges_and_cumulative_refunds() {
        let mapping = Mapping::preset(Preset::Stripe);
        let charge = |event_type: &str, refunded: i64| {
            json!({
                "id": "evt_1", "object": "event", "type": event_type, "created": 1_790_000_000,
                "data": {"object": {"id": "ch_1", "object": "charge", "amount": 2000,
                                    "amount_refunded": refunded, "currency": "usd"}}
            })
        };
        let at = "2026-09-21T14:13:20Z";
        assert_eq!(
            run(&mapping, "charge.succeeded", &charge("charge.succeeded", 0)),
            Ok(sale("ch_1", "USD", 2000, at, Kind::Sale))
        );
        assert_eq!(
            run(&mapping, "charge.refunded", &charge("charge.refunded", 750)),
            Ok(sale("ch_1", "USD", 750, at, Kind::Refund))
        );
        // Zero-decimal currencies are already in their smallest unit.
        let mut yen = charge("charge.succeeded", 0);
        yen["data"]["object"]["currency"] = json!("jpy");
        assert_eq!(
            run(&mapping, "charge.succeeded", &yen),
            Ok(sale("ch_1", "JPY", 2000, at, Kind::Sale))
        );
        assert_eq!(
            run(
                &mapping,
                "payment_intent.succeeded",
                &charge("payment_intent.succeeded", 0)
            ),
            Ok(Outcome::Ignored)
        );
    }

    #[test]
    fn the_shopify_preset_reads_major_unit_strings_and_falls_back_to_created_at() {
        let mapping = Mapping::preset(Preset::Shopify);
        let order = json!({
            "id": 820_982_911_946_154_508_u64, "total_price": "199.90", "currency": "EUR",
            "processed_at": "2026-03-01T12:00:00+01:00", "created_at": "2026-02-28T09:00:00+01:00"
        });
        assert_eq!(
            run(&mapping, "orders/paid", &order),
            Ok(sale(
                "820982911946154508",
                "EUR",
                19_990,
                "2026-03-01T11:00:00Z",
                Kind::Sale
            ))
        );
        let mut unprocessed = order.clone();
        unprocessed["processed_at"] = Value::Null;
        assert_eq!(
            run(&mapping, "orders/paid", &unprocessed),
            Ok(sale(
                "820982911946154508",
                "EUR",
                19_990,
                "2026-02-28T08:00:00Z",
                Kind::Sale
            ))
        );
        let refund = json!({
            "id": 929_361_464, "order_id": 820_982_911_946_154_508_u64, "created_at": "2026-03-05T10:00:00-05:00",
            "transactions": [{"id": 1, "kind": "refund", "amount": "41.30", "currency": "EUR"}]
        });
        assert_eq!(
            run(&mapping, "refunds/create", &refund),
            Ok(sale(
                "820982911946154508",
                "EUR",
                4130,
                "2026-03-05T15:00:00Z",
                Kind::Refund
            ))
        );
        let mut no_time = order;
        no_time.as_object_mut().unwrap().remove("created_at");
        no_time["processed_at"] = Value::Null;
        assert_eq!(
            run(&mapping, "orders/paid", &no_time),
            Err("orders/paid: /processed_at, /created_at are all missing or null".to_owned())
        );
    }

    #[test]
    fn major_amounts_use_the_currencys_minor_digits() {
        let mut mapping = Mapping::preset(Preset::Canonical);
        mapping.amount_unit = AmountUnit::Major;
        let amount = |value: Value, currency: &str| {
            let body = canonical(
                "sale.completed",
                &json!({"order_id": "o", "amount": value, "currency": currency}),
            );
            match run(&mapping, "sale.completed", &body) {
                Ok(Outcome::Sale(change)) => Ok(change.amount_minor),
                Ok(Outcome::Ignored) => panic!("ignored"),
                Err(error) => Err(error),
            }
        };
        assert_eq!(amount(json!("12.34"), "EUR"), Ok(1234));
        assert_eq!(amount(json!(12.34), "EUR"), Ok(1234));
        assert_eq!(amount(json!(0.1), "USD"), Ok(10));
        assert_eq!(amount(json!(12), "EUR"), Ok(1200));
        assert_eq!(amount(json!("1500"), "JPY"), Ok(1500));
        assert_eq!(amount(json!("1.5"), "KWD"), Ok(1500));
        assert_eq!(amount(json!("1.234"), "BHD"), Ok(1234));
        assert_eq!(amount(json!("0"), "EUR"), Ok(0));
        assert_eq!(
            amount(json!("12.345"), "EUR"),
            Err("sale.completed: /data/amount: \"12.345\" has more decimals than EUR allows".to_owned())
        );
        assert_eq!(
            amount(json!("1500.5"), "JPY"),
            Err("sale.completed: /data/amount: \"1500.5\" has more decimals than JPY allows".to_owned())
        );
        assert_eq!(
            amount(json!(0.30000000000000004), "EUR"),
            Err("sale.completed: /data/amount: 0.30000000000000004 has more digits than a JSON number carries exactly (at most 15); send it as a string".to_owned())
        );
    }

    #[test]
    fn minor_amounts_must_be_whole_non_negative_and_in_range() {
        let mapping = Mapping::preset(Preset::Canonical);
        let error = |value: Value| {
            let body = canonical(
                "sale.completed",
                &json!({"order_id": "o", "amount": value, "currency": "EUR"}),
            );
            run(&mapping, "sale.completed", &body).unwrap_err()
        };
        assert_eq!(
            error(json!(12.5)),
            "sale.completed: /data/amount: 12.5 is not a whole number of minor units"
        );
        assert_eq!(error(json!(-1)), "sale.completed: /data/amount: -1 is negative");
        assert_eq!(
            error(json!("12,00")),
            "sale.completed: /data/amount: \"12,00\" is not a decimal number"
        );
        assert_eq!(
            error(json!(u64::MAX)),
            "sale.completed: /data/amount: 18446744073709551615 is out of range"
        );
        assert_eq!(
            error(json!({"value": 1})),
            "sale.completed: /data/amount: {\"value\":1} is not a number or a decimal string"
        );
        let body = canonical(
            "sale.completed",
            &json!({"order_id": "o", "amount": 1200.0, "currency": "EUR"}),
        );
        assert!(matches!(
            run(&mapping, "sale.completed", &body),
            Ok(Outcome::Sale(SaleChange { amount_minor: 1200, .. }))
        ));
    }

    #[test]
    fn malformed_sale_payloads_are_errors_naming_the_type_and_the_pointer() {
        let mapping = Mapping::preset(Preset::Canonical);
        let cases = [
            (
                json!({"order_id": "o", "currency": "EUR"}),
                "sale.completed: /data/amount is missing",
            ),
            (
                json!({"order_id": "o", "amount": null, "currency": "EUR"}),
                "sale.completed: /data/amount is null",
            ),
            (
                json!({"amount": 1, "currency": "EUR"}),
                "sale.completed: /data/order_id is missing",
            ),
            (
                json!({"order_id": "", "amount": 1, "currency": "EUR"}),
                "sale.completed: /data/order_id: \"\" is empty",
            ),
            (
                json!({"order_id": 1.5, "amount": 1, "currency": "EUR"}),
                "sale.completed: /data/order_id: 1.5 is not a string or an integer",
            ),
            (
                json!({"order_id": "x".repeat(201), "amount": 1, "currency": "EUR"}),
                "sale.completed: /data/order_id: \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… is longer than 200 characters",
            ),
            (
                json!({"order_id": "o", "amount": 1, "currency": "EURO"}),
                "sale.completed: /data/currency: \"EURO\" is not a 3-letter currency code",
            ),
            (
                json!({"order_id": "o", "amount": 1, "currency": 978}),
                "sale.completed: /data/currency: 978 is not a currency code",
            ),
            (
                json!({"order_id": "o", "amount": 1}),
                "sale.completed: /data/currency is missing",
            ),
        ];
        for (data, expected) in cases {
            let body = canonical("sale.completed", &data);
            assert_eq!(run(&mapping, "sale.completed", &body), Err(expected.to_owned()));
        }
        let no_time = json!({"type": "sale.completed", "data": {"order_id": "o", "amount": 1, "currency": "EUR"}});
        assert_eq!(
            run(&mapping, "sale.completed", &no_time),
            Err("sale.completed: /occurred_at is missing".to_owned())
        );
        assert_eq!(
            run(&mapping, "sale.refunded", &json!([1, 2])),
            Err("sale.refunded: /data/order_id is missing".to_owned())
        );
        let error = process(&mapping, "sale.completed", "{").unwrap_err().to_string();
        assert!(error.starts_with("sale.completed: the body is not JSON"), "{error}");
    }

    #[test]
    fn lowercase_currencies_are_accepted_in_capitals() {
        let mapping = Mapping::preset(Preset::Canonical);
        let body = canonical(
            "sale.completed",
            &json!({"order_id": "o", "amount": 1, "currency": "gbp"}),
        );
        assert!(matches!(
            run(&mapping, "sale.completed", &body),
            Ok(Outcome::Sale(SaleChange { ref currency, .. })) if currency == "GBP"
        ));
    }

    fn mappings(text: &str) -> Result<Mappings, String> {
        Mappings::from_toml(text)
    }

    const HANDLER_KEYS: &str = "scheme = \"hmac\"\nsecrets = [\"s\"]\nheader = \"X-Sig\"\n";

    #[test]
    fn a_sources_file_gives_each_source_its_preset_and_the_rest_the_canonical_format() {
        let text = format!(
            "[[source]]\nname = \"pay\"\nscheme = \"stripe\"\nsecrets = [\"s\"]\n[source.sales]\npreset = \"stripe\"\n\n\
             [[source]]\nname = \"shop\"\n{HANDLER_KEYS}delivery_id = {{ json = \"/id\" }}\n[source.sales]\npreset = \"shopify\"\n\n\
             [[source]]\nname = \"plain\"\nscheme = \"github\"\nsecrets = [\"s\"]\n"
        );
        let mappings = mappings(&text).unwrap();
        assert_eq!(mappings.get("pay"), &Mapping::preset(Preset::Stripe));
        assert_eq!(mappings.get("shop"), &Mapping::preset(Preset::Shopify));
        assert_eq!(mappings.get("plain"), &Mapping::preset(Preset::Canonical));
        assert_eq!(mappings.get("unlisted"), &Mapping::preset(Preset::Canonical));
        assert_eq!(mappings.summary(), "pay=stripe, shop=shopify (others canonical)");
        assert_eq!(Mappings::default().summary(), "every source canonical");
    }

    #[test]
    fn overrides_replace_the_presets_pointers_and_refunds_follow_the_sale_keys() {
        let text = "[[source]]\nname = \"acme\"\n[source.sales]\n\
                    sale_types = [\"order.paid\", \"order.completed\"]\nrefund_types = \"order.refunded\"\n\
                    order_id = \"/order/ref\"\namount = \"/order/total\"\ncurrency = [\"/order/currency\", \"/currency\"]\n\
                    occurred_at = \"/at\"\nrefund_amount = \"/order/refunded_total\"\namount_unit = \"major\"\n";
        let mapping = mappings(text).unwrap().get("acme").clone();
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

        let body = json!({"order": {"ref": "A-7", "total": "10.50", "refunded_total": "2.5", "currency": "chf"},
                          "at": "2026-05-01T00:00:00Z"});
        assert_eq!(
            run(&mapping, "order.completed", &body),
            Ok(sale("A-7", "CHF", 1050, "2026-05-01T00:00:00Z", Kind::Sale))
        );
        assert_eq!(
            run(&mapping, "order.refunded", &body),
            Ok(sale("A-7", "CHF", 250, "2026-05-01T00:00:00Z", Kind::Refund))
        );
        assert_eq!(run(&mapping, "sale.completed", &body), Ok(Outcome::Ignored));
    }

    #[test]
    fn a_preset_keeps_its_refund_pointers_unless_overridden() {
        let text = "[[source]]\nname = \"pay\"\n[source.sales]\npreset = \"stripe\"\ncurrency = \"/data/object/presentment_currency\"\namount_unit = \"minor\"\n";
        let mapping = mappings(text).unwrap().get("pay").clone();
        assert_eq!(mapping.refund.amount, ["/data/object/amount_refunded"]);
        assert_eq!(mapping.refund.currency, ["/data/object/presentment_currency"]);
        assert_eq!(mapping.sale.occurred_at, ["/created"]);
    }

    #[test]
    fn bad_mappings_name_the_source_and_the_field_in_one_line() {
        let source = |sales: &str| format!("[[source]]\nname = \"shop\"\n{HANDLER_KEYS}[source.sales]\n{sales}\n");
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
            let error = mappings(&source(sales)).unwrap_err();
            assert!(error.starts_with(expected), "{error:?} should start with {expected:?}");
            assert!(!error.contains('\n'), "{error:?}");
        }
        let error = mappings(&format!(
            "[[source]]\nname = \"shop\"\n{HANDLER_KEYS}sales = \"stripe\"\n"
        ))
        .unwrap_err();
        assert_eq!(
            error,
            "source \"shop\": field `sales`: expected a table ([source.sales])"
        );
        let twice = format!("{}{}", source("preset = \"stripe\""), source("preset = \"shopify\""));
        assert_eq!(
            mappings(&twice).unwrap_err(),
            "source \"shop\": field `name`: defined twice"
        );
        let form = format!("[[source]]\nname = \"slash\"\n{HANDLER_KEYS}body_format = \"form\"\n[source.sales]\n");
        assert_eq!(
            mappings(&form).unwrap_err(),
            "source \"slash\": field `sales`: sales are read from JSON bodies, not body_format = \"form\""
        );
        let error = mappings("[[source]]\nscheme = \"github\"\n[source.sales]\n").unwrap_err();
        assert!(error.contains("name"), "{error}");
        assert!(mappings("not toml [").unwrap_err().starts_with("line 1: "));
    }

    #[test]
    fn a_bad_sources_file_is_one_config_error_line_naming_sources_file() {
        let dir = std::env::temp_dir().join(format!("consumer-processors-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sources.toml");
        std::fs::write(
            &path,
            "[[source]]\nname = \"shop\"\n[source.sales]\npreset = \"nope\"\n",
        )
        .unwrap();
        let error = Mappings::from_file(&path).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "invalid configuration: SOURCES_FILE={:?}: expected a valid sources file: source \"shop\": field `sales.preset`: \"nope\" is not canonical, stripe or shopify",
                path.display().to_string()
            )
        );
        let error = Mappings::from_file(&dir.join("missing.toml")).unwrap_err().to_string();
        assert!(error.contains("expected a readable file"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
