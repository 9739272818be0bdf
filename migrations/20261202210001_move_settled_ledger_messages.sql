-- The rows with an outcome, under the same identity. The old rows did not keep `received_at`:
-- `first_seen_at` (when the consumer first read the message, a little later) stands in for it.
-- Such a row is found again only by a message that has both, so a broker redelivery of a
-- settled message, or a replay of a dead letter recorded before this migration, is counted as
-- a new accepted message (with its outcome: the balance holds, `accepted` is one higher). Run
-- with the consumers stopped (`consumer migrate`), as the README says for every upgrade, there
-- are no redeliveries in hand.
INSERT INTO ledger_messages_by_time (received_at, accepted_id, source, day, outcome, first_seen_at, seen_at, due_at)
SELECT first_seen_at, UNHEX(accepted_id), source, day, outcome, first_seen_at, seen_at, NULL
FROM ledger_messages WHERE outcome IS NOT NULL
