//! `consumer replay`: runs stored events through the current processors again, for a fixed
//! processor or one added after the fact (a `[source.sales]` table for a source that had none).
//!
//! The events of one source (and maybe one event type) received in `[since, until)` are read in
//! id order, a page at a time; each page is one transaction, as a batch of the live consumer:
//! the same processors ([`crate::processors::Mappings::outcome`]), the same sales upsert (an
//! event applied again changes nothing, and a late older event never overwrites a newer one),
//! and the event's status set to what its processor says now. So replaying twice changes
//! nothing the second time. Replay adds and corrects sales; it never deletes one (that is
//! `consumer erase`). Events without a body (purged or erased) are skipped and counted; an
//! event its processor refuses now is left as it is and reported.

use std::fmt::Write as _;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::mysql::MySqlPool;
use webhook_core::payload::BodyFormat;
use webhook_core::when;

use crate::processors::{Mappings, Outcome, SaleChange};
use crate::settings::Settings;
use crate::store::{self, ReplayRange, Reprocessed, StoreError, StoredEvent};

/// Events per page (and transaction).
const PAGE: u32 = 500;
/// How often a page is tried again after a deadlock or lock wait timeout.
const CONFLICT_ATTEMPTS: u32 = 5;
/// Failures listed in the summary at most (all are counted).
const MAX_FAILURES_SHOWN: usize = 50;

/// What `consumer replay` was asked.
#[derive(Debug, Clone)]
pub struct Request {
    pub source: String,
    pub event_type: Option<String>,
    /// Received at or after.
    pub since: DateTime<Utc>,
    /// Received before.
    pub until: DateTime<Utc>,
    /// Say what would change, change nothing.
    pub dry_run: bool,
}

/// How a replay went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Events in the range.
    pub total: u64,
    /// Events read so far.
    pub examined: u64,
    /// Events whose status or order changed (or would, in a dry run).
    pub changed: u64,
    pub unchanged: u64,
    /// Events skipped because their body was purged (`RETENTION_DAYS`).
    pub skipped_purged: u64,
    /// Events skipped because they were erased.
    pub skipped_erased: u64,
    /// Events their processor refuses now: (delivery id, why), the first
    /// [`MAX_FAILURES_SHOWN`].
    pub failures: Vec<(String, String)>,
    pub failed: u64,
    pub dry_run: bool,
}

impl Summary {
    /// `replay: 500/1234 examined`
    pub fn progress_line(&self) -> String {
        format!("replay: {}/{} examined", self.examined, self.total)
    }

    /// The final summary.
    pub fn lines(&self) -> String {
        let mut text = String::new();
        let changed = if self.dry_run { "would change" } else { "changed" };
        let _ = writeln!(
            text,
            "{}examined {}, {changed} {}, unchanged {}, skipped {} (purged {}, erased {}), failed {}",
            if self.dry_run { "dry run: " } else { "" },
            self.examined,
            self.changed,
            self.unchanged,
            self.skipped_purged + self.skipped_erased,
            self.skipped_purged,
            self.skipped_erased,
            self.failed
        );
        for (id, why) in &self.failures {
            let _ = writeln!(text, "failed delivery_id={id:?}: {why}");
        }
        if self.failed > self.failures.len() as u64 {
            let _ = writeln!(text, "… and {} more failed", self.failed - self.failures.len() as u64);
        }
        if self.changed == 0 && self.failed == 0 && !self.dry_run {
            let _ = writeln!(
                text,
                "nothing changed: the stored events already say what the processors say"
            );
        }
        text
    }
}

/// `--since` / `--until`: RFC 3339 (`2026-11-01T00:00:00Z`) or a date (`2026-11-01`, UTC). A
/// date given to `--until` means the end of that day, so `--since 2026-11-01 --until
/// 2026-11-30` is all of November.
pub fn parse_time(text: &str, end_of_day: bool) -> Result<DateTime<Utc>, String> {
    when::parse(text, end_of_day, when::Naive::Refused).ok_or_else(|| format!("{text:?}: expected {}", when::FORMATS))
}

/// What the current processors make of one stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Skip { erased: bool },
    Failed(String),
    Run(Option<SaleChange>),
}

fn verdict(mappings: &Mappings, source: &str, event: &StoredEvent) -> Verdict {
    let Some(body) = &event.body else {
        return Verdict::Skip {
            erased: event.status == store::STATUS_ERASED,
        };
    };
    let Some(format) = BodyFormat::from_content_type(Some(&event.content_type)) else {
        return Verdict::Failed(format!("stored with an unknown content type {:?}", event.content_type));
    };
    match mappings.outcome(source, &event.event_type, format, body) {
        Ok(Outcome::Sale(change)) => Verdict::Run(Some(change)),
        Ok(Outcome::Ignored) => Verdict::Run(None),
        Err(error) => Verdict::Failed(error.to_string()),
    }
}

/// Replays what `request` names with the processors of `settings` (`SOURCES_FILE`), telling
/// `progress` after each page. Errors before anything is done: no event of the source, or of
/// the type, is stored; `since` is not before `until`.
pub async fn replay(
    settings: &Settings,
    pool: &MySqlPool,
    request: &Request,
    mut progress: impl FnMut(&Summary),
) -> anyhow::Result<Summary> {
    if request.since >= request.until {
        anyhow::bail!(
            "--since {} is not before --until {}: nothing to replay",
            request.since.to_rfc3339(),
            request.until.to_rfc3339()
        );
    }
    let source = request.source.as_str();
    if !store::source_is_stored(pool, source)
        .await
        .context("looking for the source")?
    {
        anyhow::bail!("no event of source {source:?} is stored: nothing to replay");
    }
    if let Some(event_type) = &request.event_type
        && !store::event_type_is_stored(pool, source, event_type)
            .await
            .context("looking for the event type")?
    {
        anyhow::bail!("no event of source {source:?} and type {event_type:?} is stored: nothing to replay");
    }
    let range = ReplayRange {
        source,
        event_type: request.event_type.as_deref(),
        since: request.since,
        until: request.until,
    };
    let mut summary = Summary {
        total: store::count_in_range(pool, &range)
            .await
            .context("counting the events")?,
        dry_run: request.dry_run,
        ..Summary::default()
    };
    let mappings = &settings.sales;
    let mut after = 0;
    loop {
        let page = store::events_in_range(pool, &range, after, PAGE)
            .await
            .context("reading stored events")?;
        let Some(last) = page.last() else { break };
        after = last.id;
        summary.examined += page.len() as u64;
        let verdicts: Vec<Verdict> = page.iter().map(|event| verdict(mappings, source, event)).collect();
        let mut runs = Vec::new();
        for (event, verdict) in page.iter().zip(&verdicts) {
            match verdict {
                Verdict::Skip { erased: true } => summary.skipped_erased += 1,
                Verdict::Skip { erased: false } => summary.skipped_purged += 1,
                Verdict::Failed(why) => {
                    summary.failed += 1;
                    if summary.failures.len() < MAX_FAILURES_SHOWN {
                        summary.failures.push((event.delivery_id.clone(), why.clone()));
                    }
                }
                Verdict::Run(sale) => runs.push(Reprocessed {
                    id: event.id,
                    delivery_id: &event.delivery_id,
                    stored_status: &event.status,
                    sale: sale.as_ref(),
                }),
            }
        }
        if !runs.is_empty() {
            let changed = reprocess(pool, source, &runs, request.dry_run).await?;
            let count = changed.iter().filter(|changed| **changed).count() as u64;
            summary.changed += count;
            summary.unchanged += runs.len() as u64 - count;
        }
        progress(&summary);
    }
    Ok(summary)
}

/// One page's transaction, tried again on a lock conflict.
async fn reprocess(
    pool: &MySqlPool,
    source: &str,
    runs: &[Reprocessed<'_>],
    dry_run: bool,
) -> anyhow::Result<Vec<bool>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store::reprocess(pool, source, runs, dry_run).await {
            Err(StoreError::Conflict(error)) if attempt < CONFLICT_ATTEMPTS => {
                log::debug!(
                    "replay: lock conflict, trying the page again: error={:?}",
                    error.to_string()
                );
                tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
            }
            result => return result.context("applying a page of replayed events"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, body: Option<&str>, status: &str) -> StoredEvent {
        StoredEvent {
            id: 1,
            delivery_id: "d-1".to_owned(),
            event_type: event_type.to_owned(),
            content_type: "application/json".to_owned(),
            body: body.map(str::to_owned),
            status: status.to_owned(),
        }
    }

    #[test]
    fn times_are_rfc3339_or_dates_and_an_until_date_takes_in_its_whole_day() {
        let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            parse_time("2026-11-01T10:00:00+01:00", false).unwrap(),
            at("2026-11-01T09:00:00Z")
        );
        assert_eq!(parse_time("2026-11-01", false).unwrap(), at("2026-11-01T00:00:00Z"));
        assert_eq!(parse_time("2026-11-30", true).unwrap(), at("2026-12-01T00:00:00Z"));
        assert_eq!(
            parse_time("2026-11-30T12:00:00Z", true).unwrap(),
            at("2026-11-30T12:00:00Z")
        );
        for bad in ["yesterday", "2026-13-01", "2026-11-01 10:00", ""] {
            let error = parse_time(bad, false).unwrap_err();
            assert!(error.contains("expected an RFC 3339 time"), "{error}");
        }
    }

    #[test]
    fn each_stored_event_gets_what_the_processors_say_now() {
        let mappings = Mappings::default();
        let sale = r#"{"type":"sale.completed","occurred_at":"2026-11-01T10:00:00Z","data":{"order_id":"o-1","amount":1999,"currency":"EUR"}}"#;
        match verdict(&mappings, "shop", &event("sale.completed", Some(sale), "ignored")) {
            Verdict::Run(Some(change)) => assert_eq!((change.order_id.as_str(), change.amount_minor), ("o-1", 1999)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            verdict(&mappings, "shop", &event("ping", Some("{}"), "ignored")),
            Verdict::Run(None)
        );
        assert_eq!(
            verdict(&mappings, "shop", &event("sale.completed", None, "processed")),
            Verdict::Skip { erased: false }
        );
        assert_eq!(
            verdict(&mappings, "shop", &event("sale.completed", None, store::STATUS_ERASED)),
            Verdict::Skip { erased: true }
        );
        let Verdict::Failed(why) = verdict(&mappings, "shop", &event("sale.completed", Some("{}"), "ignored")) else {
            panic!("a sale without its fields fails");
        };
        assert!(why.starts_with("sale.completed: "), "{why}");
        let mut form = event("sale.completed", Some("a=b"), "ignored");
        form.content_type = "application/x-www-form-urlencoded".to_owned();
        assert_eq!(verdict(&mappings, "shop", &form), Verdict::Run(None));
    }

    #[test]
    fn the_summary_says_when_nothing_changed() {
        let summary = Summary {
            total: 3,
            examined: 3,
            unchanged: 2,
            skipped_purged: 1,
            ..Summary::default()
        };
        assert_eq!(summary.progress_line(), "replay: 3/3 examined");
        let text = summary.lines();
        assert!(
            text.starts_with("examined 3, changed 0, unchanged 2, skipped 1 (purged 1, erased 0), failed 0\n"),
            "{text}"
        );
        assert!(text.contains("nothing changed"), "{text}");
        let dry = Summary {
            changed: 2,
            dry_run: true,
            failures: vec![("d-9".to_owned(), "sale.completed: /data/amount is missing".to_owned())],
            failed: 1,
            ..summary
        };
        let text = dry.lines();
        assert!(text.starts_with("dry run: examined 3, would change 2,"), "{text}");
        assert!(
            text.contains("failed delivery_id=\"d-9\": sale.completed: /data/amount is missing"),
            "{text}"
        );
        assert!(!text.contains("nothing changed"), "{text}");
    }
}
