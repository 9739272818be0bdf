#!/usr/bin/env bash
# What the triggers cost the consumer (those that keep daily_counts, sales_months and the
# ledger's counts): a backlog of BACKLOG sale events (each an `events` row, a `sales` row and a
# ledger row) drained by one consumer into empty tables, with every trigger the migrations
# made, with none, and with each one's body replaced by one that does nothing, in turn, ROUNDS
# times each. The same release binaries every way; only the triggers differ (dropped, restored
# from a dump taken after the migrations, or made empty).
#
#   bench/trigger-cost.sh                     # 100,000 events, 3 rounds
#   BACKLOG=20000 ROUNDS=1 bench/trigger-cost.sh
#
# Uses a fresh AMQP_PREFIX and database, both removed at the end.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BACKLOG=${BACKLOG:-100000}
ROUNDS=${ROUNDS:-3}
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_env triggers 3110
URL="http://$HANDLER_ADDR/webhook"
trap cleanup EXIT

"$ROOT/scripts/ensure-services"
log "building release binaries"
cargo build --release --locked -q -p request-handler -p consumer -p loadgen
BIN="$ROOT/target/release"

sql() { mariadb -uroot -N "$DB" -e "$1"; }

# on: every trigger as the migrations made it; off: none; noop: each one in its place (same
# table, timing and event) with a body that does nothing, so the difference from off is what
# invoking a trigger costs without its work.
triggers() { # on | off | noop
  local name timing event table
  for name in $(sql "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"); do
    sql "DROP TRIGGER $name"
  done
  case $1 in
    on) mariadb -uroot "$DB" < "$TRIGGERS_SQL" ;;
    noop)
      while read -r name timing event table; do
        sql "CREATE TRIGGER $name $timing $event ON $table FOR EACH ROW SET @trigger_cost_noop = NULL"
      done <"$TRIGGERS_LIST"
      ;;
  esac
}

"$BIN/consumer" migrate >/dev/null
TRIGGERS_SQL=$(mktemp)
TRIGGERS_LIST=$(mktemp)
trap 'cleanup; rm -f "$TRIGGERS_SQL" "$TRIGGERS_LIST"' EXIT
mariadb-dump -uroot --no-data --no-create-info --skip-opt --triggers "$DB" > "$TRIGGERS_SQL"
sql "SELECT TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS
     WHERE TRIGGER_SCHEMA = DATABASE()" >"$TRIGGERS_LIST"
log "triggers measured: $(sql "SELECT GROUP_CONCAT(TRIGGER_NAME ORDER BY TRIGGER_NAME SEPARATOR ' ') FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()")"
"$BIN/request-handler" >/dev/null 2>&1 &
PIDS+=("$!")
wait_ready "http://$HANDLER_ADDR/readyz"

for round in $(seq 1 "$ROUNDS"); do
  # Alternate which goes first, so that neither always drains into a fresher server.
  modes=(on off noop)
  ((round % 2 == 0)) && modes=(noop off on)
  for mode in "${modes[@]}"; do
    triggers "$mode"
    sql "TRUNCATE TABLE events; TRUNCATE TABLE sales; TRUNCATE TABLE daily_counts; TRUNCATE TABLE sales_months; TRUNCATE TABLE ledger_messages; TRUNCATE TABLE ledger_counts"
    wait_ready "http://$HANDLER_ADDR/readyz"
    fill_backlog "$URL" "$BACKLOG" sale.completed
    started=$(date +%s.%N)
    "$BIN/consumer" >/dev/null 2>&1 &
    consumer=$!
    PIDS+=("$consumer")
    while (($(sql "SELECT COUNT(*) FROM events") < BACKLOG)); do sleep 0.1; done
    seconds=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
    kill "$consumer"; wait "$consumer" 2>/dev/null || true
    printf 'round %s\ttriggers %s\t%s events in %s s\t%.0f events/s\tload %s\n' "$round" "$mode" "$BACKLOG" \
      "$seconds" "$(awk -v n="$BACKLOG" -v s="$seconds" 'BEGIN {print n / s}')" "$(cut -d' ' -f1 /proc/loadavg)"
  done
done
