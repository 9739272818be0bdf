//! What to do with a batch, decided before any I/O: the rows to insert with the sales they
//! carry, and what becomes of every delivery (stored, a copy of another, retried or
//! dead-lettered) and why. Pure: [`crate::settle`] carries a plan out, and turns the rows the
//! database refuses into retries or dead letters with [`Plan::refuse`].
//!
//! A delivery fails on its own, before anything is tried, when it is poison, when its
//! processor refuses its body, or when its row would be larger than the database's
//! `max_allowed_packet` (MariaDB answers a packet far above it by closing the connection, which
//! would otherwise look like an outage).

use std::collections::HashMap;

use crate::message::{Content, Message};
use crate::processors::{Mappings, Outcome, SaleChange};
use crate::retry::{self, Decision};
use crate::store::EventRow;

/// The settings a plan follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rules {
    /// `MAX_RETRIES`.
    pub(crate) max_retries: u32,
    /// The database's `max_allowed_packet`, once read: a row whose insert would be larger can
    /// never be stored and is dead-lettered before it is tried.
    pub(crate) max_allowed_packet: Option<u64>,
}

/// Why the database did not store a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// It refused the row's data (or dropped the connection over it alone): down the retry
    /// ladder, as the cause may pass (a constraint lifted, a column widened).
    Data(String),
    /// It refused the row's packet as larger than `max_allowed_packet`: dead-lettered at once.
    TooLarge(String),
}

/// What becomes of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Its row is inserted (with its sale, if any); acked once committed.
    Store,
    /// A later delivery of the same source, delivery id and body as delivery `of`: acked with
    /// it and counted as a duplicate, never inserted itself.
    Copy { of: usize },
    /// A later delivery of the same source and delivery id as delivery `of`, which is stored,
    /// but with another body: the first stored wins, so it is acked and counted as a duplicate
    /// and as a conflict, never inserted (its sale, if any, is not applied).
    Conflict { of: usize },
    /// Not stored now: down the retry ladder or to the dead-letter exchange, then acked.
    Decided(Decision),
}

/// One row to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    /// The delivery stored.
    pub(crate) index: usize,
    /// The sale or refund it carries (status `processed`), or none (status `ignored`).
    pub(crate) sale: Option<SaleChange>,
    /// The later deliveries of the batch with the same source, delivery id and body.
    pub(crate) copies: Vec<usize>,
    /// The later deliveries of the batch with the same source and delivery id but another body.
    pub(crate) conflicts: Vec<usize>,
}

/// What to do with a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The rows to insert, sorted by (source, delivery id), so that concurrent consumers lock
    /// index entries in the same order; one per source and delivery id.
    pub(crate) rows: Vec<Row>,
    /// What becomes of each delivery, in delivery order.
    pub(crate) fates: Vec<Fate>,
    /// How many deliveries their processor refused (they go down the retry ladder).
    pub(crate) refused_by_processor: u64,
    /// Each delivery's `retry-count`.
    retry_counts: Vec<u32>,
    rules: Rules,
}

/// The deliveries of one (source, delivery id) seen so far in a batch.
#[derive(Default)]
struct Group {
    /// The row, once one of them is to be stored: its delivery and its position in the rows.
    row: Option<(usize, usize)>,
    /// Deliveries that failed on their own before any was to be stored.
    failed: Vec<usize>,
}

/// Plans a batch: poison is dead-lettered; the events are grouped by (source, delivery id). In
/// each group the deliveries are looked at in order until one is stored: each is checked
/// against `max_allowed_packet` (too large: dead-lettered) and run through its source's
/// processor (`mappings`; refused: down the retry ladder), and the first that passes becomes
/// the row. A later delivery is a copy of an earlier one with the same body, or, once the row
/// is chosen, a conflict when its body differs: the first stored wins.
pub(crate) fn plan(messages: &[Message], mappings: &Mappings, rules: Rules) -> Plan {
    let mut fates = Vec::with_capacity(messages.len());
    let mut refused_by_processor = 0;
    let mut rows: Vec<Row> = Vec::new();
    let mut groups: HashMap<(&str, &str), Group> = HashMap::new();
    for (index, message) in messages.iter().enumerate() {
        let event = match &message.content {
            Content::Poison { why, .. } => {
                fates.push(Fate::Decided(retry::poison(why)));
                continue;
            }
            Content::Event(event) => event,
        };
        let envelope = &event.envelope;
        let group = groups
            .entry((envelope.source.as_str(), envelope.delivery_id.as_str()))
            .or_default();
        let body_of = |delivery: usize| messages[delivery].event().map(|event| event.sha256.as_str());
        let same_body = |delivery: usize| body_of(delivery) == Some(event.sha256.as_str());
        if let Some((stored, row)) = group.row {
            if same_body(stored) {
                rows[row].copies.push(index);
                fates.push(Fate::Copy { of: stored });
            } else {
                rows[row].conflicts.push(index);
                fates.push(Fate::Conflict { of: stored });
            }
            continue;
        }
        if let Some(&failed) = group.failed.iter().find(|&&failed| same_body(failed)) {
            // The same body fails the same way: its copies go with it.
            fates.push(Fate::Copy { of: failed });
            continue;
        }
        if let Some(limit) = rules.max_allowed_packet {
            let needed = EventRow::of(event).packet_bytes();
            if needed > limit {
                group.failed.push(index);
                let why = format!("its row needs {needed} bytes in one packet, max_allowed_packet is {limit} bytes");
                fates.push(Fate::Decided(retry::too_large(&why)));
                continue;
            }
        }
        let outcome = mappings.outcome(
            &envelope.source,
            &envelope.event_type,
            envelope.body_format,
            &event.body,
        );
        match outcome {
            Ok(outcome) => {
                group.row = Some((index, rows.len()));
                rows.push(Row {
                    index,
                    sale: match outcome {
                        Outcome::Sale(change) => Some(change),
                        Outcome::Ignored => None,
                    },
                    copies: Vec::new(),
                    conflicts: Vec::new(),
                });
                fates.push(Fate::Store);
            }
            // A processor error is a failure of that message alone: it is never inserted, so
            // it neither blocks nor rolls back the rest of the batch.
            Err(error) => {
                group.failed.push(index);
                refused_by_processor += 1;
                let decision = retry::after_refusal(envelope.retry_count, rules.max_retries, &error.to_string());
                fates.push(Fate::Decided(decision));
            }
        }
    }
    let key = |row: &Row| {
        messages[row.index]
            .event()
            .map(|event| (event.envelope.source.as_str(), event.envelope.delivery_id.as_str()))
    };
    rows.sort_by(|a, b| key(a).cmp(&key(b)));
    Plan {
        rows,
        fates,
        refused_by_processor,
        retry_counts: messages.iter().map(Message::retry_count).collect(),
        rules,
    }
}

impl Plan {
    /// The database did not store row `row` (a position in [`Plan::rows`]): its delivery goes
    /// down the retry ladder (dead-lettered once its retries are spent), or, when too large, to
    /// the dead letters at once. Its copies stay copies: acked with it, as duplicates. Its
    /// conflicts, whose bodies differ, were never tried: each goes down the retry ladder on its
    /// own, to be stored if it comes first.
    pub(crate) fn refuse(&mut self, row: usize, refusal: &Refusal) {
        let row = &self.rows[row];
        let max_retries = self.rules.max_retries;
        self.fates[row.index] = Fate::Decided(match refusal {
            Refusal::Data(error) => retry::after_refusal(self.retry_counts[row.index], max_retries, error),
            Refusal::TooLarge(error) => retry::too_large(error),
        });
        let why = format!(
            "not stored with its batch: delivery {} of the batch has its source and delivery id, another body, and was not stored",
            row.index
        );
        for &conflict in &row.conflicts {
            self.fates[conflict] = Fate::Decided(retry::after_refusal(self.retry_counts[conflict], max_retries, &why));
        }
    }

    /// The deliveries to republish, in delivery order, with what to do.
    pub(crate) fn decisions(&self) -> impl Iterator<Item = (usize, &Decision)> {
        self.fates.iter().enumerate().filter_map(|(index, fate)| match fate {
            Fate::Decided(decision) => Some((index, decision)),
            Fate::Store | Fate::Copy { .. } | Fate::Conflict { .. } => None,
        })
    }

    /// How many deliveries are copies of another or conflict with a stored one (all are
    /// duplicates: the same source and delivery id arrived before).
    pub(crate) fn copies(&self) -> u64 {
        self.fates
            .iter()
            .filter(|fate| matches!(fate, Fate::Copy { .. } | Fate::Conflict { .. }))
            .count() as u64
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::Utc;
    use lapin::BasicProperties;
    use proptest::prelude::*;
    use webhook_core::envelope::Envelope;
    use webhook_core::payload::BodyFormat;

    use crate::retry::DeadReason;

    pub(crate) const RULES: Rules = Rules {
        max_retries: 3,
        max_allowed_packet: Some(LIMIT),
    };
    /// The `max_allowed_packet` of the tests: a body of 3,000 bytes is too large.
    pub(crate) const LIMIT: u64 = 4096;
    /// A JSON body too large for [`LIMIT`].
    pub(crate) fn big_body() -> String {
        format!("{{\"pad\":\"{}\"}}", "x".repeat(3000))
    }

    /// A delivery of an event, as the handler publishes it.
    pub(crate) fn event(source: &str, id: &str, event_type: &str, retry_count: u32, body: &str) -> Message {
        let envelope = Envelope {
            source: source.to_owned(),
            delivery_id: id.to_owned(),
            event_type: event_type.to_owned(),
            received_at: Utc::now(),
            retry_count,
            body_format: BodyFormat::Json,
        };
        Message::read(envelope.routing_key(), envelope.properties(), body.as_bytes().to_vec())
    }

    /// A plain event (no processor).
    pub(crate) fn plain(source: &str, id: &str) -> Message {
        event(source, id, "push", 0, r#"{"a":1}"#)
    }

    /// A delivery with no headers at all.
    pub(crate) fn poison() -> Message {
        Message::read("k".to_owned(), BasicProperties::default(), b"not json".to_vec())
    }

    /// A canonical sale of `order` for `amount` cents.
    pub(crate) fn sale_body(order: &str, amount: i64) -> String {
        format!(
            r#"{{"type":"sale.completed","occurred_at":"2026-11-01T10:00:00Z","data":{{"order_id":"{order}","amount":{amount},"currency":"EUR"}}}}"#
        )
    }

    /// A sale event whose body lacks the amount: its processor refuses it.
    pub(crate) const BAD_SALE: &str =
        r#"{"data":{"order_id":"o","currency":"EUR"},"occurred_at":"2026-11-01T10:00:00Z"}"#;

    fn planned(messages: &[Message]) -> Plan {
        plan(messages, &Mappings::default(), RULES)
    }

    fn keys(plan: &Plan, messages: &[Message]) -> Vec<(String, String)> {
        plan.rows
            .iter()
            .map(|row| {
                let envelope = &messages[row.index].event().unwrap().envelope;
                (envelope.source.clone(), envelope.delivery_id.clone())
            })
            .collect()
    }

    #[test]
    fn every_event_of_a_clean_batch_is_a_row_sorted_by_source_and_delivery_id() {
        let messages = vec![plain("b", "2"), plain("a", "9"), plain("a", "1")];
        let plan = planned(&messages);
        assert_eq!(plan.fates, vec![Fate::Store; 3]);
        assert_eq!(
            keys(&plan, &messages),
            [("a", "1"), ("a", "9"), ("b", "2")].map(|(s, d)| (s.to_owned(), d.to_owned()))
        );
        assert!(plan.rows.iter().all(|row| row.sale.is_none() && row.copies.is_empty()));
        assert_eq!(plan.decisions().count(), 0);
    }

    #[test]
    fn duplicates_in_one_batch_are_one_row_and_copies_of_the_first() {
        let messages = vec![
            plain("b", "2"),
            plain("a", "1"),
            plain("b", "2"),
            poison(),
            plain("a", "2"),
            plain("b", "2"),
            plain("c", "1"),
        ];
        let plan = planned(&messages);
        assert_eq!(plan.fates[2], Fate::Copy { of: 0 });
        assert_eq!(plan.fates[5], Fate::Copy { of: 0 });
        assert_eq!(plan.copies(), 2);
        let rows: Vec<(usize, Vec<usize>)> = plan.rows.iter().map(|row| (row.index, row.copies.clone())).collect();
        assert_eq!(rows, vec![(1, vec![]), (4, vec![]), (0, vec![2, 5]), (6, vec![])]);
        // The same delivery id from another source is another event.
        assert_eq!(plan.fates[4], Fate::Store);
    }

    #[test]
    fn poison_is_dead_lettered_at_once_and_never_a_row() {
        let messages = vec![plain("a", "1"), poison()];
        let plan = planned(&messages);
        assert_eq!(
            plan.fates[1],
            Fate::Decided(Decision::DeadLetter {
                reason: DeadReason::Poison,
                error: "poison: missing headers".to_owned()
            })
        );
        assert_eq!(plan.rows.len(), 1);
        assert_eq!(plan.decisions().map(|(index, _)| index).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn a_sale_is_carried_by_its_row_and_other_types_are_ignored() {
        let messages = vec![
            event("shop", "s1", "sale.completed", 0, &sale_body("o-1", 1999)),
            plain("shop", "p1"),
        ];
        let plan = planned(&messages);
        let sale = plan.rows[1].sale.as_ref().unwrap();
        assert_eq!((sale.order_id.as_str(), sale.amount_minor), ("o-1", 1999));
        assert_eq!(plan.rows[0].sale, None);
    }

    #[test]
    fn a_body_its_processor_refuses_is_retried_alone_and_its_copies_are_acked_with_it() {
        let messages = vec![
            event("shop", "bad", "sale.completed", 1, BAD_SALE),
            plain("shop", "good"),
            event("shop", "bad", "sale.completed", 1, BAD_SALE),
        ];
        let plan = planned(&messages);
        match &plan.fates[0] {
            Fate::Decided(Decision::Retry { attempt: 2, error }) => {
                assert_eq!(error, "sale.completed: /data/amount is missing");
            }
            other => panic!("not retried: {other:?}"),
        }
        assert_eq!(plan.fates[2], Fate::Copy { of: 0 });
        assert_eq!(plan.rows.len(), 1);
        assert_eq!(plan.rows[0].index, 1);
        assert_eq!(plan.refused_by_processor, 1);
    }

    #[test]
    fn a_processor_refusal_with_its_retries_spent_is_dead_lettered() {
        let messages = vec![event("shop", "bad", "sale.completed", RULES.max_retries, BAD_SALE)];
        let plan = planned(&messages);
        assert!(matches!(
            &plan.fates[0],
            Fate::Decided(Decision::DeadLetter {
                reason: DeadReason::RetriesExhausted,
                error
            }) if error == "retries exhausted after 3: sale.completed: /data/amount is missing"
        ));
    }

    #[test]
    fn a_form_body_is_stored_without_a_sale() {
        let envelope = Envelope {
            source: "slash".to_owned(),
            delivery_id: "t1".to_owned(),
            // A sale type: still not read, as sales come from JSON only.
            event_type: "sale.completed".to_owned(),
            received_at: Utc::now(),
            retry_count: 0,
            body_format: BodyFormat::Form,
        };
        let messages = vec![Message::read(
            "k".to_owned(),
            envelope.properties(),
            b"command=%2Fdeploy&trigger_id=t1".to_vec(),
        )];
        let plan = planned(&messages);
        assert_eq!(plan.fates, vec![Fate::Store]);
        assert_eq!(plan.rows[0].sale, None);
    }

    #[test]
    fn a_row_the_database_refuses_goes_down_the_retry_ladder_and_its_copies_stay_copies() {
        let messages = vec![plain("a", "1"), plain("a", "2"), plain("a", "2"), plain("a", "3")];
        let mut plan = planned(&messages);
        plan.refuse(1, &Refusal::Data("CONSTRAINT failed".to_owned()));
        assert_eq!(
            plan.fates,
            vec![
                Fate::Store,
                Fate::Decided(Decision::Retry {
                    attempt: 1,
                    error: "CONSTRAINT failed".to_owned()
                }),
                Fate::Copy { of: 1 },
                Fate::Store,
            ]
        );
        assert_eq!(plan.decisions().map(|(index, _)| index).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn a_mixed_batch_gives_each_delivery_its_own_fate() {
        let messages = vec![
            plain("a", "1"),
            poison(),
            event("shop", "bad", "sale.completed", 0, BAD_SALE),
            plain("a", "1"),
            event("shop", "s", "sale.completed", 0, &sale_body("o", 5)),
            plain("a", "refused"),
        ];
        let mut plan = planned(&messages);
        let refused = plan.rows.iter().position(|row| row.index == 5).unwrap();
        plan.refuse(refused, &Refusal::Data("no".to_owned()));
        let kinds: Vec<&str> = plan
            .fates
            .iter()
            .map(|fate| match fate {
                Fate::Store => "store",
                Fate::Copy { .. } => "copy",
                Fate::Conflict { .. } => "conflict",
                Fate::Decided(Decision::Retry { .. }) => "retry",
                Fate::Decided(Decision::DeadLetter { .. }) => "dead",
            })
            .collect();
        assert_eq!(kinds, ["store", "dead", "retry", "copy", "store", "retry"]);
    }

    #[test]
    fn a_row_larger_than_max_allowed_packet_is_dead_lettered_before_it_is_tried() {
        let big = big_body();
        let messages = vec![
            plain("a", "1"),
            event("a", "big", "push", 0, &big),
            event("a", "big", "push", 0, &big),
            plain("a", "2"),
        ];
        let planned = planned(&messages);
        let Fate::Decided(Decision::DeadLetter {
            reason: DeadReason::TooLarge,
            error,
        }) = &planned.fates[1]
        else {
            panic!("not dead-lettered as too large: {:?}", planned.fates[1]);
        };
        assert!(
            error.starts_with("too large for the database: its row needs ")
                && error.ends_with(" bytes in one packet, max_allowed_packet is 4096 bytes"),
            "{error}"
        );
        assert_eq!(planned.fates[2], Fate::Copy { of: 1 });
        assert_eq!(planned.rows.iter().map(|row| row.index).collect::<Vec<_>>(), vec![0, 3]);
        // Before the limit is known, it is tried (and the database's answer decides).
        let unknown = Rules {
            max_allowed_packet: None,
            ..RULES
        };
        assert_eq!(plan(&messages, &Mappings::default(), unknown).fates[1], Fate::Store);
    }

    #[test]
    fn a_row_the_database_refuses_as_too_large_is_dead_lettered_whatever_its_retries() {
        let messages = vec![plain("a", "1")];
        let mut plan = planned(&messages);
        plan.refuse(
            0,
            &Refusal::TooLarge("Got a packet bigger than 'max_allowed_packet' bytes".to_owned()),
        );
        assert_eq!(
            plan.fates[0],
            Fate::Decided(Decision::DeadLetter {
                reason: DeadReason::TooLarge,
                error: "too large for the database: Got a packet bigger than 'max_allowed_packet' bytes".to_owned()
            })
        );
    }

    #[test]
    fn a_later_delivery_with_another_body_is_a_conflict_of_the_first_and_never_a_row() {
        let messages = vec![
            event("a", "1", "push", 0, r#"{"v":"first"}"#),
            event("a", "1", "push", 0, r#"{"v":"second"}"#),
            event("a", "1", "push", 0, r#"{"v":"first"}"#),
        ];
        let plan = planned(&messages);
        assert_eq!(
            plan.fates,
            vec![Fate::Store, Fate::Conflict { of: 0 }, Fate::Copy { of: 0 }]
        );
        assert_eq!(
            (plan.rows[0].copies.clone(), plan.rows[0].conflicts.clone()),
            (vec![2], vec![1])
        );
        assert_eq!(plan.copies(), 2);
    }

    #[test]
    fn when_the_first_body_fails_on_its_own_the_next_other_body_is_stored() {
        let messages = vec![
            event("shop", "s", "sale.completed", 0, BAD_SALE),
            event("shop", "s", "sale.completed", 0, BAD_SALE),
            event("shop", "s", "sale.completed", 0, &sale_body("o", 7)),
            event("shop", "s", "sale.completed", 0, &sale_body("o", 8)),
        ];
        let plan = planned(&messages);
        assert!(matches!(plan.fates[0], Fate::Decided(Decision::Retry { .. })));
        assert_eq!(plan.fates[1], Fate::Copy { of: 0 });
        assert_eq!(plan.fates[2], Fate::Store);
        assert_eq!(plan.fates[3], Fate::Conflict { of: 2 });
        assert_eq!(plan.rows[0].sale.as_ref().unwrap().amount_minor, 7);
    }

    #[test]
    fn conflicts_of_a_row_the_database_refuses_are_retried_on_their_own() {
        let messages = vec![
            event("a", "1", "push", 0, r#"{"v":"first"}"#),
            event("a", "1", "push", 2, r#"{"v":"second"}"#),
            event("a", "1", "push", 0, r#"{"v":"first"}"#),
        ];
        let mut plan = planned(&messages);
        plan.refuse(0, &Refusal::Data("CONSTRAINT failed".to_owned()));
        assert!(matches!(
            &plan.fates[0],
            Fate::Decided(Decision::Retry { attempt: 1, .. })
        ));
        match &plan.fates[1] {
            Fate::Decided(Decision::Retry { attempt: 3, error }) => assert!(
                error.starts_with("not stored with its batch: delivery 0 of the batch has its source and delivery id"),
                "{error}"
            ),
            other => panic!("not retried on its own: {other:?}"),
        }
        assert_eq!(plan.fates[2], Fate::Copy { of: 0 });
        check_plan(&messages, &plan);
    }

    /// How a generated delivery is made.
    #[derive(Debug, Clone)]
    enum Kind {
        Poison,
        /// An event of source `source % 2` and delivery id `id`, with one of two bodies (0, 1),
        /// or one too large for the database (2).
        Plain {
            source: u8,
            id: u8,
            body: u8,
        },
        /// A sale, good or refused by its processor, with this retry count.
        Sale {
            id: u8,
            good: bool,
            retry_count: u32,
        },
    }

    fn kinds() -> impl Strategy<Value = Vec<Kind>> {
        let kind = prop_oneof![
            1 => Just(Kind::Poison),
            4 => (0..2u8, 0..6u8, prop_oneof![8 => 0..2u8, 1 => Just(2u8)]).prop_map(|(source, id, body)| Kind::Plain { source, id, body }),
            2 => (0..4u8, any::<bool>(), 0..5u32).prop_map(|(id, good, retry_count)| Kind::Sale { id, good, retry_count }),
        ];
        prop::collection::vec(kind, 0..40)
    }

    fn build(kinds: &[Kind]) -> Vec<Message> {
        kinds
            .iter()
            .map(|kind| match kind {
                Kind::Poison => poison(),
                Kind::Plain { source, id, body } => {
                    let body = match body {
                        0 => r#"{"a":1}"#.to_owned(),
                        1 => r#"{"a":2}"#.to_owned(),
                        _ => big_body(),
                    };
                    event(&format!("s{}", source % 2), &format!("d{id}"), "push", 0, &body)
                }
                Kind::Sale { id, good, retry_count } => {
                    let body = if *good { sale_body("o", 1) } else { BAD_SALE.to_owned() };
                    event("shop", &format!("sale-{id}"), "sale.completed", *retry_count, &body)
                }
            })
            .collect()
    }

    /// The (source, delivery id) of an event.
    fn key_of(message: &Message) -> (&str, &str) {
        let envelope = &message.event().unwrap().envelope;
        (envelope.source.as_str(), envelope.delivery_id.as_str())
    }

    fn body_of(message: &Message) -> &str {
        &message.event().unwrap().sha256
    }

    /// Checks what must hold of every plan: one fate per delivery; a delivery is acked (a row,
    /// a copy, a conflict) or republished (retry or dead letter), never both; the rows, their
    /// copies and their conflicts say the same as the fates; one row per (source, delivery
    /// id), sorted.
    pub(crate) fn check_plan(messages: &[Message], plan: &Plan) {
        assert_eq!(plan.fates.len(), messages.len(), "one fate per delivery");
        // How often each delivery is a row, a row's copy, a row's conflict.
        let mut as_row = vec![0; messages.len()];
        let mut as_copy = vec![0; messages.len()];
        let mut as_conflict = vec![0; messages.len()];
        for row in &plan.rows {
            as_row[row.index] += 1;
            for &copy in &row.copies {
                as_copy[copy] += 1;
            }
            for &conflict in &row.conflicts {
                as_conflict[conflict] += 1;
            }
        }
        let mut republished = 0;
        for (index, fate) in plan.fates.iter().enumerate() {
            let counts = (as_row[index], as_copy[index], as_conflict[index]);
            match fate {
                Fate::Store => assert_eq!(counts, (1, 0, 0), "stored {index}"),
                Fate::Copy { of } => {
                    assert!(*of < index, "{index} copies a later delivery");
                    assert_eq!(key_of(&messages[*of]), key_of(&messages[index]));
                    assert_eq!(body_of(&messages[*of]), body_of(&messages[index]));
                    assert_eq!(counts, (0, as_row[*of], 0), "copy {index}");
                    if as_row[*of] == 0 {
                        assert!(matches!(plan.fates[*of], Fate::Decided(_)), "{index} copies {of}");
                    }
                }
                Fate::Conflict { of } => {
                    assert!(*of < index, "{index} conflicts with a later delivery");
                    assert_eq!(key_of(&messages[*of]), key_of(&messages[index]));
                    assert_ne!(body_of(&messages[*of]), body_of(&messages[index]));
                    assert_eq!(counts, (0, 0, 1), "conflict {index}");
                    assert_eq!(plan.fates[*of], Fate::Store, "{index} conflicts with {of}, not stored");
                }
                Fate::Decided(decision) => {
                    republished += 1;
                    assert_eq!(as_copy[index], 0, "republished {index} is also a copy");
                    assert!(as_row[index] <= 1 && as_conflict[index] <= 1);
                    if as_conflict[index] == 1 {
                        let row = plan.rows.iter().find(|row| row.conflicts.contains(&index)).unwrap();
                        assert!(
                            matches!(plan.fates[row.index], Fate::Decided(_)),
                            "{index} retried, its row stored"
                        );
                    }
                    if let Decision::Retry { attempt, .. } = decision {
                        assert_eq!(*attempt, messages[index].retry_count() + 1);
                        assert!(messages[index].retry_count() < RULES.max_retries);
                    }
                }
            }
            if messages[index].event().is_none() {
                assert!(
                    matches!(fate, Fate::Decided(Decision::DeadLetter { .. })),
                    "poison {index}: {fate:?}"
                );
            }
        }
        assert_eq!(plan.decisions().count(), republished);
        let keys = keys(plan, messages);
        assert!(
            keys.windows(2).all(|pair| pair[0] < pair[1]),
            "rows unique and sorted: {keys:?}"
        );
    }

    proptest! {
        #[test]
        fn every_delivery_gets_exactly_one_fate_and_none_is_both_acked_and_retried(
            kinds in kinds(),
            refusals in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        ) {
            let messages = build(&kinds);
            let mut plan = planned(&messages);
            check_plan(&messages, &plan);
            // In each (source, delivery id), the first delivery that passes its checks is the
            // row: those before it failed on their own, those after it are its copies (same
            // body) or conflicts (another body).
            for (index, message) in messages.iter().enumerate() {
                if message.event().is_none() {
                    continue;
                }
                let row = plan.rows.iter().find(|row| key_of(&messages[row.index]) == key_of(message));
                match row.map(|row| row.index) {
                    Some(stored) if stored < index => {
                        let expected = if body_of(&messages[stored]) == body_of(message) {
                            Fate::Copy { of: stored }
                        } else {
                            Fate::Conflict { of: stored }
                        };
                        prop_assert_eq!(&plan.fates[index], &expected);
                    }
                    Some(stored) if stored == index => prop_assert_eq!(&plan.fates[index], &Fate::Store),
                    _ => {
                        let failed = match &plan.fates[index] {
                            Fate::Decided(_) => true,
                            Fate::Copy { of } => matches!(plan.fates[*of], Fate::Decided(_)),
                            _ => false,
                        };
                        prop_assert!(failed, "{} before its row: {:?}", index, plan.fates[index]);
                    }
                }
            }
            // What the database refuses keeps every delivery accounted for.
            if !plan.rows.is_empty() {
                for refusal in refusals {
                    let row = refusal.index(plan.rows.len());
                    plan.refuse(row, &Refusal::Data("refused".to_owned()));
                    let decided = matches!(plan.fates[plan.rows[row].index], Fate::Decided(_));
                    prop_assert!(decided, "refused row {} not decided", row);
                }
                check_plan(&messages, &plan);
            }
        }
    }
}
