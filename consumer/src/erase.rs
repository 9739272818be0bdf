//! `consumer erase`: erases stored events, found by delivery id or by a value at a JSON
//! pointer in their bodies (a customer id, an email address), with what they set in `sales`,
//! and leaves a tombstone per event in `erasures` (who, when, why, how it was matched).
//!
//! The event's row stays in `events` as its dedup key, with no body and status `erased`: a
//! vendor's retry of it is a duplicate, and the consumer stores neither its body nor its sale
//! ([`crate::store::insert_events`] skips erased rows). An event that arrives later with a new
//! delivery id is a new event and is stored, whatever it holds: an erasure clears what is
//! stored, it is not a filter (that would mean keeping the very value to be forgotten).

use anyhow::Context;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::mysql::MySqlPool;

use crate::store::{self, Erased, StoredEvent, Tombstone};

/// Bodies read per page when matching by pointer.
const PAGE: u32 = 500;
/// Longest pointer accepted (it goes into the tombstone).
const MAX_POINTER_CHARS: usize = 200;

/// Which events to erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The event of the source with this delivery id.
    DeliveryId(String),
    /// Every stored event of the source whose JSON body has `value` at `pointer`.
    Pointer { pointer: String, value: String },
}

/// What `consumer erase` was asked.
#[derive(Debug, Clone)]
pub struct Request {
    pub source: String,
    pub target: Target,
    /// Who erases (`--by`, else the OS user): kept in the tombstone.
    pub by: String,
    /// Why (`--reason`), optional: kept in the tombstone.
    pub reason: Option<String>,
    /// Only say what would be erased.
    pub dry_run: bool,
}

/// What it did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The delivery ids of the events matched.
    pub matched: Vec<String>,
    /// Events erased now.
    pub erased: u64,
    /// Events matched that had been erased before (nothing changed).
    pub erased_before: u64,
    /// Orders whose row in `sales` was cleared or deleted.
    pub sales_cleared: u64,
    /// Bodies read to match a pointer.
    pub scanned: u64,
    pub dry_run: bool,
}

impl Report {
    /// The command's output.
    pub fn lines(&self, source: &str) -> String {
        let mut text = String::new();
        let verb = if self.dry_run { "would erase" } else { "erased" };
        for id in &self.matched {
            text.push_str(&format!("{verb} source={source:?} delivery_id={id:?}\n"));
        }
        if self.dry_run {
            text.push_str(&format!(
                "dry run: {} event(s) would be erased; nothing was changed\n",
                self.matched.len()
            ));
        } else {
            text.push_str(&format!(
                "erased {} event(s), {} already erased before, {} order(s) cleared in sales; tombstones in erasures\n",
                self.erased, self.erased_before, self.sales_cleared
            ));
        }
        text
    }
}

/// Who erases: `--by` if given, else the OS user (`USER`, `LOGNAME`), else `unknown`.
pub fn operator(by: Option<&str>, lookup: impl Fn(&str) -> Option<String>) -> String {
    by.map(str::to_owned)
        .or_else(|| lookup("USER"))
        .or_else(|| lookup("LOGNAME"))
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A JSON pointer as `--pointer` takes it: `/customer/id` (RFC 6901), at most 200 characters.
pub fn check_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.starts_with('/') {
        return Err(format!(
            "--pointer {pointer:?}: expected a JSON pointer such as /customer/id"
        ));
    }
    if pointer.chars().count() > MAX_POINTER_CHARS {
        return Err(format!("--pointer: longer than {MAX_POINTER_CHARS} characters"));
    }
    Ok(())
}

/// Whether `value` (found at the pointer) is `wanted`: a string equal to it, or a number or
/// boolean whose JSON text is it (`--value 42` matches `42` and `"42"`).
pub fn value_matches(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(text) => text == wanted,
        Value::Number(number) => number.to_string() == wanted,
        Value::Bool(flag) => flag.to_string() == wanted,
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}

/// Whether `event`'s body has `wanted` at `pointer`.
fn body_matches(event: &StoredEvent, pointer: &str, wanted: &str) -> bool {
    let Some(body) = &event.body else {
        return false;
    };
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|document| document.pointer(pointer).map(|value| value_matches(value, wanted)))
        .unwrap_or(false)
}

/// Erases what `request` names. Errors, with nothing changed: no event of the source is stored,
/// no event has that delivery id, or no stored body has that value at that pointer.
/// `scanned` is told the bodies read so far, page by page.
pub async fn erase(pool: &MySqlPool, request: &Request, mut scanned: impl FnMut(u64)) -> anyhow::Result<Report> {
    let source = request.source.as_str();
    if !store::source_is_stored(pool, source)
        .await
        .context("looking for the source")?
    {
        anyhow::bail!("no event of source {source:?} is stored: nothing to erase");
    }
    let mut report = Report {
        dry_run: request.dry_run,
        ..Report::default()
    };
    let (events, matched_by) = match &request.target {
        Target::DeliveryId(id) => {
            let Some(event) = store::find_event(pool, source, id)
                .await
                .context("looking for the event")?
            else {
                anyhow::bail!("no event of source {source:?} with delivery id {id:?} is stored: nothing erased");
            };
            (vec![event], "delivery_id".to_owned())
        }
        Target::Pointer { pointer, value } => {
            check_pointer(pointer).map_err(anyhow::Error::msg)?;
            let mut found = Vec::new();
            let mut after = 0;
            loop {
                let page = store::json_bodies_after(pool, source, after, PAGE)
                    .await
                    .context("reading stored bodies")?;
                let Some(last) = page.last() else { break };
                after = last.id;
                report.scanned += page.len() as u64;
                scanned(report.scanned);
                found.extend(page.into_iter().filter(|event| body_matches(event, pointer, value)));
            }
            if found.is_empty() {
                anyhow::bail!(
                    "no stored body of source {source:?} has {value:?} at {pointer} ({} read; purged and erased bodies cannot be matched): nothing erased",
                    report.scanned
                );
            }
            let digest = hex::encode(Sha256::digest(value.as_bytes()));
            (found, format!("pointer {pointer} sha256:{digest}"))
        }
    };
    let tombstone = Tombstone {
        erased_by: &request.by,
        reason: request.reason.as_deref(),
        matched_by: &matched_by,
    };
    for event in events {
        if request.dry_run {
            if event.status == store::STATUS_ERASED {
                report.erased_before += 1;
            } else {
                report.matched.push(event.delivery_id);
            }
            continue;
        }
        match store::erase_event(pool, source, event.id, &tombstone)
            .await
            .with_context(|| format!("erasing delivery id {:?}", event.delivery_id))?
        {
            Erased::Now { sales_cleared } => {
                report.erased += 1;
                report.sales_cleared += sales_cleared;
                log::info!(
                    "erased: source={source:?} delivery_id={:?} by={:?} sales_cleared={sales_cleared}",
                    event.delivery_id,
                    request.by
                );
                report.matched.push(event.delivery_id);
            }
            Erased::Before => report.erased_before += 1,
            Erased::Missing => {}
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(body: Option<&str>) -> StoredEvent {
        StoredEvent {
            id: 1,
            delivery_id: "d".to_owned(),
            event_type: "t".to_owned(),
            content_type: "application/json".to_owned(),
            body: body.map(str::to_owned),
            status: "ignored".to_owned(),
        }
    }

    #[test]
    fn a_value_matches_strings_exactly_and_numbers_and_booleans_by_their_text() {
        assert!(value_matches(&Value::from("cus_1"), "cus_1"));
        assert!(!value_matches(&Value::from("cus_1"), "cus_10"));
        assert!(!value_matches(&Value::from("Cus_1"), "cus_1"));
        assert!(value_matches(&Value::from(42), "42"));
        assert!(value_matches(&Value::from(true), "true"));
        assert!(!value_matches(&Value::Null, "null"));
        assert!(!value_matches(&serde_json::json!(["cus_1"]), "cus_1"));
    }

    #[test]
    fn a_body_matches_only_at_the_pointer() {
        let body = r#"{"customer":{"id":"cus_1","email":"a@example.com"},"note":"cus_2"}"#;
        assert!(body_matches(&event(Some(body)), "/customer/id", "cus_1"));
        assert!(!body_matches(&event(Some(body)), "/customer/id", "cus_2"));
        assert!(!body_matches(&event(Some(body)), "/customer/name", "cus_1"));
        assert!(body_matches(&event(Some(r#"[{"id":7}]"#)), "/0/id", "7"));
        // No body (purged), or one that is not JSON: never a match.
        assert!(!body_matches(&event(None), "/customer/id", "cus_1"));
        assert!(!body_matches(&event(Some("id=cus_1")), "/id", "cus_1"));
    }

    #[test]
    fn pointers_start_with_a_slash_and_are_bounded() {
        assert!(check_pointer("/customer/id").is_ok());
        assert!(
            check_pointer("customer.id")
                .unwrap_err()
                .contains("expected a JSON pointer")
        );
        assert!(check_pointer("").is_err());
        assert!(check_pointer(&format!("/{}", "a".repeat(200))).is_err());
    }

    #[test]
    fn the_operator_is_by_else_the_os_user_else_unknown() {
        let env =
            |user: Option<&'static str>| move |name: &str| (name == "USER").then(|| user.map(str::to_owned)).flatten();
        assert_eq!(operator(Some("dpo"), env(Some("root"))), "dpo");
        assert_eq!(operator(None, env(Some("alice"))), "alice");
        assert_eq!(operator(None, env(None)), "unknown");
        assert_eq!(operator(Some("  "), env(None)), "unknown");
    }
}
