//! The invariant, as a pure function of what was sent, what was answered, what is in `events`
//! and what is in `{P}.dead`: every delivery id answered 200 is stored once or dead-lettered,
//! nothing is stored twice, and the dead-letter queue holds exactly what should be there, each
//! with the reason it should have.

use std::collections::{HashMap, HashSet};

use crate::load::{Answer, Kind, Sent};

/// How many ids a failure lists at most.
const SHOWN_IDS: usize = 10;

/// A row of `events`, as read back.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) delivery_id: String,
    pub(crate) body_sha256: String,
    /// How many redeliveries or resends the consumer folded into this row.
    pub(crate) duplicates: u64,
}

/// Everything a scenario saw.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// Every request sent through the handler, with its answer.
    pub(crate) sent: Vec<Sent>,
    /// Delivery ids of messages published straight to the exchange (confirmed by the broker)
    /// that must end in the dead-letter queue: poison, and events too large for the database.
    pub(crate) poison: Vec<String>,
    /// For some of those, what their `error` header must start with.
    pub(crate) reasons: HashMap<String, &'static str>,
    /// Every row of `events`.
    pub(crate) rows: Vec<Row>,
    /// The `message_id` of every dead letter (empty when it has none).
    pub(crate) dead: Vec<String>,
    /// The `error` header of each dead letter, by `message_id`.
    pub(crate) dead_errors: HashMap<String, String>,
}

/// What the `error` header of a dead letter of `kind` starts with.
fn reason_of(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::OverlongOrderId | Kind::RefusedByDatabase => Some("retries exhausted after "),
        Kind::Oversized => Some("too large for the database: "),
        Kind::Event | Kind::Sale | Kind::OverlongDeliveryId | Kind::OverlongEventType => None,
    }
}

/// The numbers of one scenario and what failed.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub(crate) sent: usize,
    pub(crate) ok: usize,
    pub(crate) server_errors: usize,
    pub(crate) other: usize,
    pub(crate) rows: usize,
    /// Delivery ids with more than one row.
    pub(crate) duplicates: usize,
    pub(crate) dead: usize,
    /// Answered 200, but neither stored nor dead-lettered.
    pub(crate) lost: usize,
    /// Stored although not answered 200 (a 500 whose message the broker had taken after all,
    /// or a connection cut before the answer): allowed, the vendor retries and it is stored once.
    pub(crate) stored_without_200: usize,
    /// Redeliveries folded into existing rows (the `duplicates` column): harmless by design.
    pub(crate) redeliveries: u64,
    /// One line per broken promise; empty means the scenario passed.
    pub(crate) problems: Vec<String>,
}

#[cfg(test)]
impl Verdict {
    pub(crate) fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Up to [`SHOWN_IDS`] ids, sorted, and how many there are in all.
fn listed(ids: &[&str]) -> String {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    let shown: Vec<String> = ids.iter().take(SHOWN_IDS).map(|id| format!("{id:?}")).collect();
    if ids.len() > SHOWN_IDS {
        format!("{} (and {} more)", shown.join(", "), ids.len() - SHOWN_IDS)
    } else {
        shown.join(", ")
    }
}

/// Checks the invariant.
pub(crate) fn verdict(observed: &Observed) -> Verdict {
    let mut verdict = Verdict {
        sent: observed.sent.len(),
        rows: observed.rows.len(),
        dead: observed.dead.len(),
        ..Verdict::default()
    };
    let mut problems = Vec::new();

    let mut stored: HashMap<&str, Vec<&Row>> = HashMap::new();
    for row in &observed.rows {
        stored.entry(row.delivery_id.as_str()).or_default().push(row);
        verdict.redeliveries += row.duplicates;
    }
    let mut dead: HashMap<&str, usize> = HashMap::new();
    for id in &observed.dead {
        *dead.entry(id.as_str()).or_default() += 1;
    }
    let sent: HashMap<&str, &Sent> = observed.sent.iter().map(|sent| (sent.id.as_str(), sent)).collect();
    let poison: HashSet<&str> = observed.poison.iter().map(String::as_str).collect();

    let mut lost = Vec::new();
    let mut bad_stored = Vec::new();
    let mut good_dead = Vec::new();
    let mut bad_not_dead = Vec::new();
    let mut not_refused = Vec::new();
    let mut corrupt = Vec::new();
    for one in &observed.sent {
        let id = one.id.as_str();
        match &one.answer {
            Answer::Ok => verdict.ok += 1,
            Answer::ServerError => verdict.server_errors += 1,
            Answer::Other(_) => verdict.other += 1,
        }
        let rows = stored.get(id);
        let is_dead = dead.contains_key(id);
        if let Some(rows) = rows
            && rows.iter().any(|row| row.body_sha256 != one.sha256)
        {
            corrupt.push(id);
        }
        match one.kind {
            Kind::Event | Kind::Sale => {
                if one.answer == Answer::Ok && rows.is_none() && !is_dead {
                    lost.push(id);
                }
                if one.answer != Answer::Ok && rows.is_some() {
                    verdict.stored_without_200 += 1;
                }
                if is_dead {
                    good_dead.push(id);
                }
            }
            Kind::OverlongOrderId | Kind::RefusedByDatabase | Kind::Oversized => {
                if rows.is_some() {
                    bad_stored.push(id);
                }
                if one.answer == Answer::Ok && !is_dead {
                    if rows.is_none() {
                        lost.push(id);
                    }
                    bad_not_dead.push(id);
                }
            }
            Kind::OverlongDeliveryId | Kind::OverlongEventType => {
                if one.answer != Answer::Other("400".to_owned()) {
                    not_refused.push(id);
                }
                if rows.is_some() {
                    bad_stored.push(id);
                }
                if is_dead {
                    good_dead.push(id);
                }
            }
        }
    }
    verdict.lost = lost.len();
    if !lost.is_empty() {
        problems.push(format!(
            "{} event(s) answered 200 are neither in events nor in the dead-letter queue: {}",
            lost.len(),
            listed(&lost)
        ));
    }
    let twice: Vec<&str> = stored
        .iter()
        .filter(|(_, rows)| rows.len() > 1)
        .map(|(id, _)| *id)
        .collect();
    verdict.duplicates = twice.len();
    if !twice.is_empty() {
        problems.push(format!(
            "{} delivery id(s) stored more than once: {}",
            twice.len(),
            listed(&twice)
        ));
    }
    if !corrupt.is_empty() {
        problems.push(format!(
            "{} stored body(ies) differ from what was sent: {}",
            corrupt.len(),
            listed(&corrupt)
        ));
    }
    let unknown_rows: Vec<&str> = stored.keys().copied().filter(|id| !sent.contains_key(id)).collect();
    if !unknown_rows.is_empty() {
        problems.push(format!(
            "{} row(s) with a delivery id that was never sent: {}",
            unknown_rows.len(),
            listed(&unknown_rows)
        ));
    }
    if !bad_stored.is_empty() {
        problems.push(format!(
            "{} event(s) that must not be stored were stored: {}",
            bad_stored.len(),
            listed(&bad_stored)
        ));
    }
    if !bad_not_dead.is_empty() {
        problems.push(format!(
            "{} refused event(s) answered 200 did not end in the dead-letter queue: {}",
            bad_not_dead.len(),
            listed(&bad_not_dead)
        ));
    }
    if !not_refused.is_empty() {
        problems.push(format!(
            "{} request(s) with an over-long field were not answered 400: {}",
            not_refused.len(),
            listed(&not_refused)
        ));
    }
    let missing_poison: Vec<&str> = poison.iter().copied().filter(|id| !dead.contains_key(id)).collect();
    if !missing_poison.is_empty() {
        problems.push(format!(
            "{} poison message(s) are not in the dead-letter queue: {}",
            missing_poison.len(),
            listed(&missing_poison)
        ));
    }
    if !good_dead.is_empty() {
        problems.push(format!(
            "{} good event(s) were dead-lettered: {}",
            good_dead.len(),
            listed(&good_dead)
        ));
    }
    let unexpected_dead: Vec<&str> = dead
        .keys()
        .copied()
        .filter(|id| {
            !poison.contains(id)
                && sent.get(id).is_none_or(|one| reason_of(one.kind).is_none())
                && !good_dead.contains(id)
        })
        .collect();
    if !unexpected_dead.is_empty() {
        problems.push(format!(
            "{} dead letter(s) that should not be there: {}",
            unexpected_dead.len(),
            listed(&unexpected_dead)
        ));
    }
    let dead_twice: Vec<&str> = dead
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(id, _)| *id)
        .collect();
    if !dead_twice.is_empty() {
        problems.push(format!(
            "{} message(s) dead-lettered more than once: {}",
            dead_twice.len(),
            listed(&dead_twice)
        ));
    }
    let wrong_reason: Vec<&str> = observed
        .dead_errors
        .iter()
        .filter(|(id, error)| {
            let expected = observed
                .reasons
                .get(id.as_str())
                .copied()
                .or_else(|| sent.get(id.as_str()).and_then(|one| reason_of(one.kind)));
            expected.is_some_and(|prefix| !error.starts_with(prefix))
        })
        .map(|(id, _)| id.as_str())
        .collect();
    if !wrong_reason.is_empty() {
        problems.push(format!(
            "{} dead letter(s) without the reason they should have: {}",
            wrong_reason.len(),
            listed(&wrong_reason)
        ));
    }
    verdict.problems = problems;
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(id: &str, kind: Kind, answer: Answer) -> Sent {
        Sent {
            id: id.to_owned(),
            kind,
            sha256: format!("sha-{id}"),
            answer,
            sent_at: tokio::time::Instant::now(),
            answered_at: tokio::time::Instant::now(),
        }
    }

    fn row(id: &str) -> Row {
        Row {
            delivery_id: id.to_owned(),
            body_sha256: format!("sha-{id}"),
            duplicates: 0,
        }
    }

    fn good_run() -> Observed {
        Observed {
            sent: vec![
                sent("a", Kind::Event, Answer::Ok),
                sent("b", Kind::Sale, Answer::Ok),
                sent("c", Kind::Event, Answer::ServerError),
                sent("d", Kind::OverlongOrderId, Answer::Ok),
                sent("e", Kind::OverlongDeliveryId, Answer::Other("400".to_owned())),
            ],
            poison: vec!["p".to_owned()],
            rows: vec![row("a"), row("b")],
            dead: vec!["d".to_owned(), "p".to_owned()],
            reasons: HashMap::from([("p".to_owned(), "poison: ")]),
            dead_errors: HashMap::from([
                ("d".to_owned(), "retries exhausted after 2: too long".to_owned()),
                ("p".to_owned(), "poison: missing headers".to_owned()),
            ]),
        }
    }

    #[test]
    fn a_run_where_every_200_is_stored_or_dead_lettered_passes() {
        let verdict = verdict(&good_run());
        assert!(verdict.passed(), "{:?}", verdict.problems);
        assert_eq!(
            (verdict.sent, verdict.ok, verdict.server_errors, verdict.other),
            (5, 3, 1, 1)
        );
        assert_eq!((verdict.rows, verdict.dead, verdict.lost), (2, 2, 0));
    }

    #[test]
    fn a_500_that_was_stored_after_all_is_allowed_and_counted() {
        let mut observed = good_run();
        observed.rows.push(row("c"));
        let verdict = verdict(&observed);
        assert!(verdict.passed(), "{:?}", verdict.problems);
        assert_eq!(verdict.stored_without_200, 1);
    }

    #[test]
    fn a_200_that_is_nowhere_is_lost_and_named() {
        let mut observed = good_run();
        observed.rows.retain(|row| row.delivery_id != "b");
        let verdict = verdict(&observed);
        assert_eq!(verdict.lost, 1);
        assert!(verdict.problems[0].contains("\"b\""), "{:?}", verdict.problems);
    }

    #[test]
    fn a_delivery_id_stored_twice_fails() {
        let mut observed = good_run();
        observed.rows.push(row("a"));
        let verdict = verdict(&observed);
        assert_eq!(verdict.duplicates, 1);
        assert!(!verdict.passed());
    }

    #[test]
    fn the_dead_letter_queue_must_hold_exactly_the_poison_and_the_refused() {
        let mut observed = good_run();
        observed.dead.retain(|id| id != "p");
        assert!(!verdict(&observed).passed());

        let mut observed = good_run();
        observed.dead.retain(|id| id != "d");
        let result = verdict(&observed);
        assert_eq!(result.lost, 1);
        assert!(!result.passed());

        let mut observed = good_run();
        observed.dead.push("a".to_owned());
        assert!(!verdict(&observed).passed());

        let mut observed = good_run();
        observed.dead.push("stranger".to_owned());
        assert!(!verdict(&observed).passed());

        let mut observed = good_run();
        observed.dead.push("p".to_owned());
        assert!(!verdict(&observed).passed());
    }

    #[test]
    fn a_refused_event_that_was_stored_or_a_changed_body_fails() {
        let mut observed = good_run();
        observed.rows.push(row("d"));
        assert!(!verdict(&observed).passed());

        let mut observed = good_run();
        observed.rows[0].body_sha256 = "other".to_owned();
        assert!(!verdict(&observed).passed());
    }

    #[test]
    fn every_dead_letter_must_carry_the_reason_it_should_have() {
        let mut observed = good_run();
        observed
            .dead_errors
            .insert("p".to_owned(), "retries exhausted after 2: x".to_owned());
        let result = verdict(&observed);
        assert!(
            result.problems[0].contains("without the reason"),
            "{:?}",
            result.problems
        );

        let mut observed = good_run();
        observed.sent.push(sent("big", Kind::Oversized, Answer::Ok));
        observed.dead.push("big".to_owned());
        observed.dead_errors.insert(
            "big".to_owned(),
            "retries exhausted after 2: connection reset".to_owned(),
        );
        assert!(!verdict(&observed).passed());
        observed.dead_errors.insert(
            "big".to_owned(),
            "too large for the database: its row needs …".to_owned(),
        );
        assert!(verdict(&observed).passed(), "{:?}", verdict(&observed).problems);
    }

    #[test]
    fn an_over_long_field_must_be_answered_400() {
        let mut observed = good_run();
        observed.sent[4].answer = Answer::Ok;
        assert!(!verdict(&observed).passed());
    }
}
