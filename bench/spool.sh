#!/usr/bin/env bash
# Measures the spool beside the normal path: the same release handler and loadgen, closed
# loop at concurrency 16 and 64, 1 KiB bodies, once publishing to the broker (the normal
# path: 200 "queued" once confirmed) and once with no broker at all and the source spooling
# (every request written to the spool with fsync and group commit, 200 "spooled"). Prints a
# Markdown table for BENCHMARKS.md; the raw summaries go to bench/results/<time>-spool/.
#
#   bench/spool.sh                 # 10 s per run
#   SECONDS_PER_RUN=3 bench/spool.sh
#
# Needs RabbitMQ on 127.0.0.1:5672 (guest/guest) for the normal path; uses a fresh
# AMQP_PREFIX (removed at the end) and a spool in a temporary directory (removed too).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/bench/results/$STAMP-spool"
mkdir -p "$OUT"
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CONCURRENCIES=(16 64)
SECRET=bench-secret
PREFIX="bench_spool_$STAMP"
SPOOL_TMP=$(mktemp -d)
ADDR=127.0.0.1:3110
export RUST_LOG=warn

cargo build --release --locked -q -p request-handler -p loadgen
BIN="$ROOT/target/release"

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh" # delete_exchange (its cleanup is replaced below)
HANDLER_PID=
cleanup() {
  [[ -n $HANDLER_PID ]] && kill "$HANDLER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  for q in events dead rejected retry.1 retry.2 retry.3 retry.4 retry.5; do
    rabbitmqctl -q delete_queue "$PREFIX.$q" >/dev/null 2>&1 || true
  done
  delete_exchange "$PREFIX"; delete_exchange "$PREFIX.dlx"
  rm -rf "$SPOOL_TMP"
}
trap cleanup EXIT

# Polls /readyz until it says `"broker":"$1"`.
wait_broker() {
  for _ in $(seq 1 300); do
    curl -fsS "http://$ADDR/readyz" 2>/dev/null | grep -q "\"broker\":\"$1\"" && return 0
    sleep 0.1
  done
  echo "the handler never said broker $1" >&2; return 1
}

# start_handler NAME VAR=VALUE...: the release handler with these variables.
start_handler() {
  local name=$1; shift
  env AMQP_PREFIX="$PREFIX" HANDLER_ADDR="$ADDR" "$@" "$BIN/request-handler" >"$OUT/handler-$name.log" 2>&1 &
  HANDLER_PID=$!
}

stop_handler() {
  kill "$HANDLER_PID"; wait "$HANDLER_PID" 2>/dev/null || true; HANDLER_PID=
}

metric() { curl -fsS "http://$ADDR/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

run_loadgen() { # name concurrency
  "$BIN/loadgen" --url "http://$ADDR/webhook" --secret "$SECRET" -c "$2" -d "$SECONDS_PER_RUN" \
    --body-bytes 1024 --event-type push --json >"$OUT/$1-c$2.json" || true
}

# The normal path: the broker confirms.
start_handler queued WEBHOOK_SECRET="$SECRET" AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f
wait_broker connected
for c in "${CONCURRENCIES[@]}"; do run_loadgen queued "$c"; done
stop_handler

# The spool: no broker answers (a closed port), so every request is spooled at once.
cat >"$SPOOL_TMP/sources.toml" <<EOF
[[source]]
name = "default"
scheme = "github"
secrets = ["$SECRET"]
when_broker_down = "spool"
EOF
CLOSED=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for c in "${CONCURRENCIES[@]}"; do
  rm -rf "$SPOOL_TMP/spool"
  start_handler "spooled-c$c" SOURCES_FILE="$SPOOL_TMP/sources.toml" SPOOL_DIR="$SPOOL_TMP/spool" \
    AMQP_URL="amqp://guest:guest@127.0.0.1:$CLOSED/%2f"
  wait_broker spooling
  run_loadgen spooled "$c"
  echo "{\"commits\": $(metric webhook_handler_spool_commits_total), \"messages\": $(metric webhook_handler_spool_messages)}" \
    >"$OUT/spooled-c$c-spool.json"
  stop_handler
done

python3 - "$OUT" "${CONCURRENCIES[@]}" <<'EOF'
import json, sys
out, concurrencies = sys.argv[1], sys.argv[2:]
print("| path | concurrency | req/s | p50 ms | p90 ms | p99 ms | max ms | statuses | spooled per fsync |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
for path in ("queued", "spooled"):
    for c in concurrencies:
        run = json.load(open(f"{out}/{path}-c{c}.json"))
        latency = run["latency_ms"]
        per_fsync = ""
        if path == "spooled":
            spool = json.load(open(f"{out}/spooled-c{c}-spool.json"))
            per_fsync = f"{spool['messages'] / max(spool['commits'], 1):.1f}"
        print(
            f"| {path} | {c} | {run['requests_per_second']:,.0f} | {latency['p50']:.2f} | {latency['p90']:.2f} "
            f"| {latency['p99']:.2f} | {latency['max']:.2f} | {json.dumps(run['statuses'])} | {per_fsync} |"
        )
EOF
