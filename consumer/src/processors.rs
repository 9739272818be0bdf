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

use chrono::{DateTime, Datelike, SubsecRound, Utc};
use serde_json::Value;
use webhook_core::money::{self, DecimalError};
use webhook_core::payload::{self, BodyFormat, NotJson};
use webhook_core::sources::SourcesFile;
pub(crate) use webhook_core::sources::{AmountUnit, Preset, SalesMapping as Mapping};

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
    // The handler's definition of JSON (webhook_core::payload), so what it answered 200 for is
    // read here.
    let document: Value = payload::parse_json(body).map_err(|error| {
        fail(match error {
            NotJson::Syntax(error) => format!("the body is not JSON: {error}"),
            other => other.to_string(),
        })
    })?;
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

    /// What the processors make of an event of `source` and `event_type` with `body` in
    /// `format`: sales are read from JSON; form bodies (slash commands and the like) are
    /// stored only. The one rule for the live consumer ([`crate::plan`]) and `consumer replay`.
    pub(crate) fn outcome(
        &self,
        source: &str,
        event_type: &str,
        format: BodyFormat,
        body: &str,
    ) -> Result<Outcome, ProcessError> {
        match format {
            BodyFormat::Json => process(self.get(source), event_type, body),
            BodyFormat::Form => Ok(Outcome::Ignored),
        }
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

    /// The mapping of every source of a sources file that has a `[source.sales]` table.
    pub(crate) fn from_sources(file: &SourcesFile) -> Self {
        let mut mappings = Self::default();
        for source in file.sources() {
            if let Some(sales) = &source.sales {
                mappings.by_source.insert(source.name.to_string(), sales.clone());
            }
        }
        mappings
    }
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
    fn bodies_past_the_handlers_json_limits_are_refused_by_the_same_definition() {
        let mapping = Mapping::preset(Preset::Canonical);
        let deep = format!(
            r#"{{"type":"sale.completed","data":{{"order_id":"o","amount":1,"currency":"EUR","x":{}1{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(
            process(&mapping, "sale.completed", &deep).unwrap_err().to_string(),
            "sale.completed: body is not accepted as JSON: nested deeper than 64 levels"
        );
        let long = format!(r#"{{"data":{{"amount":1{}}}}}"#, "0".repeat(100_000));
        assert_eq!(
            process(&mapping, "sale.completed", &long).unwrap_err().to_string(),
            "sale.completed: body is not accepted as JSON: a number longer than 100 characters"
        );
        assert!(webhook_core::payload::read_json(deep.as_bytes(), &[]).is_err());
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

    fn mappings(text: &str) -> Mappings {
        Mappings::from_sources(&SourcesFile::parse(text).unwrap())
    }

    const HANDLER_KEYS: &str =
        "scheme = \"hmac\"\nsecrets = [\"s\"]\nheader = \"X-Sig\"\ndelivery_id = \"body_hash\"\n";

    #[test]
    fn a_sources_file_gives_each_source_its_preset_and_the_rest_the_canonical_format() {
        let text = format!(
            "[[source]]\nname = \"pay\"\nscheme = \"stripe\"\nsecrets = [\"s\"]\n[source.sales]\npreset = \"stripe\"\n\n\
             [[source]]\nname = \"shop\"\n{HANDLER_KEYS}[source.sales]\npreset = \"shopify\"\n\n\
             [[source]]\nname = \"plain\"\nscheme = \"github\"\nsecrets = [\"s\"]\n"
        );
        let mappings = mappings(&text);
        assert_eq!(mappings.get("pay"), &Mapping::preset(Preset::Stripe));
        assert_eq!(mappings.get("shop"), &Mapping::preset(Preset::Shopify));
        assert_eq!(mappings.get("plain"), &Mapping::preset(Preset::Canonical));
        assert_eq!(mappings.get("unlisted"), &Mapping::preset(Preset::Canonical));
        assert_eq!(mappings.summary(), "pay=stripe, shop=shopify (others canonical)");
        assert_eq!(Mappings::default().summary(), "every source canonical");
    }

    #[test]
    fn a_sources_files_overrides_decide_what_an_event_becomes() {
        let text = format!(
            "[[source]]\nname = \"acme\"\n{HANDLER_KEYS}[source.sales]\n\
             sale_types = [\"order.paid\", \"order.completed\"]\nrefund_types = \"order.refunded\"\n\
             order_id = \"/order/ref\"\namount = \"/order/total\"\ncurrency = [\"/order/currency\", \"/currency\"]\n\
             occurred_at = \"/at\"\nrefund_amount = \"/order/refunded_total\"\namount_unit = \"major\"\n"
        );
        let mapping = mappings(&text).get("acme").clone();
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
}
