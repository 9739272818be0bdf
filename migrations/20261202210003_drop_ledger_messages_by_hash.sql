-- The old table, with its two triggers (made again on the new one below).
DROP TABLE ledger_messages
