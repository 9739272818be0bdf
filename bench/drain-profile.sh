#!/usr/bin/env bash
# Where MariaDB's time goes while one consumer drains a backlog of sale events: fills the queue
# through the handler with BACKLOG events (loadgen), starts one consumer, and records mariadbd
# with perf for SECONDS from two seconds after the start (the release binaries; perf from
# Debian's linux-perf). Prints the inclusive shares of the server's main paths (triggers,
# row writes, the union of the ledger's statement, commits), and leaves the whole profile in
# bench/results/drain-profile-STAMP.perf for `perf report -i`.
#
#   bench/drain-profile.sh                    # 200,000 events, 8 s
#   BACKLOG=100000 SECONDS_RECORDED=5 bench/drain-profile.sh
#
# Uses a fresh AMQP_PREFIX and database, both removed at the end.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BACKLOG=${BACKLOG:-200000}
SECONDS_RECORDED=${SECONDS_RECORDED:-8}
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_env profile 3120
mkdir -p "$ROOT/bench/results"
PROFILE="$ROOT/bench/results/drain-profile-$STAMP.perf"
trap cleanup EXIT

"$ROOT/scripts/ensure-services"
command -v perf >/dev/null || { log "installing perf"; apt-get install -y -q linux-perf >/dev/null; }
log "building release binaries"
cargo build --release --locked -q -p request-handler -p consumer -p loadgen
BIN="$ROOT/target/release"

"$BIN/consumer" migrate >/dev/null
"$BIN/request-handler" >/dev/null 2>&1 &
PIDS+=("$!")
wait_ready "http://$HANDLER_ADDR/readyz"
log "filling the queue with $BACKLOG sale events"
fill_backlog "http://$HANDLER_ADDR/webhook" "$BACKLOG" sale.completed
"$BIN/consumer" >/dev/null 2>&1 &
PIDS+=("$!")
wait_ready "http://$CONSUMER_ADDR/readyz"
sleep 2
log "recording mariadbd for ${SECONDS_RECORDED}s"
# The server on 127.0.0.1:3306, not any other mariadbd of this machine (tests start their own).
SERVER_PID=$(cat "$(mariadb -uroot -N -e 'SELECT @@pid_file')")
perf record -q -F 999 -g -o "$PROFILE" -p "$SERVER_PID" -- sleep "$SECONDS_RECORDED"
stored=$(mariadb -uroot -N -e "SELECT COUNT(*) FROM \`$DB\`.events")
((stored < BACKLOG)) || log "the drain ended before the recording did: the shares below include idle time"
echo "stored when the recording ended: $stored of $BACKLOG"
perf report -i "$PROFILE" --children --sort sym -g none 2>/dev/null \
  | grep -E '\] (mysqld_stmt_execute|mysql_insert|Table_triggers_list::process_triggers|handler::ha_write_row|handler::ha_update_row|Prepared_statement::set_parameters|st_select_lex_unit::(prepare|exec)|ha_commit_trans)$'
echo "profile: $PROFILE"
