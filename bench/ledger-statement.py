#!/usr/bin/env python3
"""What the ledger's statement costs MariaDB, in its current form and as a plain multi-row insert.

Makes two databases migrated by the consumer (`consumer migrate`, the binary given), stores
BATCHES x 500 events in each, then times BATCHES 500-row ledger statements for them from one
`mariadb` client: in one the consumer's form (a union of one-row selects joined to `events`,
which tells a stored message from a duplicate), in the other a multi-row VALUES insert with the
outcome given. Then again with the ledger's triggers dropped. The two forms take turns going
first. Prints microseconds per row. Both databases are dropped at the end.

The union form copies the statement of `record_ledger` in consumer/src/store.rs (keep them
alike); the values are written into the text here, where the consumer binds them as
parameters, so the server's parameter conversion (about 6 % of its time in a drain, see
bench/ANALYSIS.md) is not in these numbers.

    bench/ledger-statement.py target/release/consumer [BATCHES]
"""

import hashlib
import os
import subprocess
import sys
import time
import uuid

ROWS = 500
UPDATE = (
    " ON DUPLICATE KEY UPDATE seen_at = VALUES(seen_at), outcome = IF(outcome IS NULL OR "
    "(outcome = 'dead_lettered' AND VALUES(outcome) IN ('stored', 'duplicate')), VALUES(outcome), outcome), "
    "due_at = IF(outcome IS NULL, VALUES(due_at), NULL)"
)
COLUMNS = "INSERT INTO ledger_messages (received_at, accepted_id, source, day, outcome, first_seen_at, seen_at, due_at) "


def sql(database, text):
    subprocess.run(["mariadb", "-uroot", database], input=text, text=True, check=True)


def received_at(n):
    seconds, micros = divmod(n, 1_000_000)
    return f"2026-12-03 10:{(seconds // 60) % 60:02d}:{seconds % 60:02d}.{micros:06d}"


def identity(n):
    return hashlib.sha256(f"shop\0d-{n}\0{received_at(n)}".encode()).hexdigest()


def union_statement(numbers):
    selects = " UNION ALL ".join(
        f"SELECT X'{identity(n)}' AS m_id, 'shop' AS m_source, 'd-{n}' AS m_delivery_id, "
        f"CAST('{received_at(n)}' AS DATETIME(6)) AS m_received_at, 'settled' AS m_fate, "
        "CAST(NULL AS DATETIME(6)) AS m_due_at"
        for n in numbers
    )
    return (
        COLUMNS + "SELECT m_received_at, m_id, m_source, DATE(m_received_at), CASE m_fate WHEN 'settled' "
        "THEN IF(e.received_at <=> m_received_at, 'stored', 'duplicate') WHEN 'dead' THEN 'dead_lettered' END, "
        f"UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), m_due_at FROM ({selects}) AS m "
        "LEFT JOIN events e ON e.source = m_source AND e.delivery_id = m_delivery_id" + UPDATE + ";"
    )


def values_statement(numbers):
    rows = ",".join(
        f"('{received_at(n)}', X'{identity(n)}', 'shop', DATE('{received_at(n)}'), 'stored', "
        "UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), NULL)"
        for n in numbers
    )
    return COLUMNS + "VALUES " + rows + UPDATE + ";"


def run(database, form, batches, offset):
    batch_numbers = [range(offset + b * ROWS, offset + (b + 1) * ROWS) for b in range(batches)]
    sql(database, "\n".join(
        "INSERT INTO events (source, delivery_id, event_type, body, body_sha256, received_at, stored_at) VALUES "
        + ",".join(f"('shop', 'd-{n}', 'sale.completed', '{{}}', '{'0' * 64}', '{received_at(n)}', UTC_TIMESTAMP(6))" for n in numbers)
        + ";"
        for numbers in batch_numbers
    ))
    statement = union_statement if form == "union" else values_statement
    text = "\n".join(statement(numbers) for numbers in batch_numbers)
    started = time.monotonic()
    sql(database, text)
    return (time.monotonic() - started) * 1e6 / (batches * ROWS)


def main():
    consumer = sys.argv[1]
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    databases = {form: f"bench_ledger_{form}_{uuid.uuid4().hex[:8]}" for form in ["union", "values"]}
    try:
        for database in databases.values():
            sql("", f"CREATE DATABASE `{database}` COLLATE utf8mb4_bin")
            env = dict(os.environ, DATABASE_URL=f"mysql://root@127.0.0.1:3306/{database}")
            subprocess.run([consumer, "migrate"], env=env, check=True, capture_output=True)
        offset = 0
        for triggers in ["on", "off"]:
            if triggers == "off":
                for database in databases.values():
                    sql(database, "DROP TRIGGER ledger_messages_count_accepted; DROP TRIGGER ledger_messages_count_outcome;")
            for turn in range(2):
                offset += batches * ROWS
                forms = list(databases.items())
                for form, database in forms if turn == 0 else reversed(forms):
                    print(f"ledger triggers {triggers}\t{form}\t{run(database, form, batches, offset):.1f} µs a row", flush=True)
    finally:
        for database in databases.values():
            sql("", f"DROP DATABASE IF EXISTS `{database}`")


if __name__ == "__main__":
    main()
