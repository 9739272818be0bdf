#!/usr/bin/env bash
# Does deleting a 120,000-message quorum queue stall a publisher on another queue? Two
# handlers (prefixes expA, expB; ports 3200, 3201); loadgen fills expB.events, then runs A at
# 2,000 req/s for 40 s, deleting expB.events 15 s in (or, for the control, not). Prints each
# trial's latency percentiles. Run after `cargo build --release -p request-handler -p loadgen`.
#
#   bench/queue-delete-pause.sh
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(pwd)/target/release
OUT=$(mktemp -d)
export AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f WEBHOOK_SECRET=bench-secret RUST_LOG=warn
# shellcheck source=bench/lib.sh
source bench/lib.sh
start() { # prefix port -> sets STARTED
  AMQP_PREFIX=$1 HANDLER_ADDR=127.0.0.1:$2 "$B/request-handler" >>"$OUT/$1.log" 2>&1 &
  STARTED=$!
  wait_ready "http://127.0.0.1:$2/readyz"
}
cleanup_exp() {
  kill "$A" "$Bp" 2>/dev/null || true
  rm -rf "$OUT"
  for q in $(rabbitmqctl -q list_queues name | grep '^exp[AB]\.' || true); do rabbitmqctl -q delete_queue "$q" >/dev/null; done
  for e in $(rabbitmqctl -q list_exchanges name | grep '^exp[AB]' || true); do delete_exchange "$e"; done
}
A=; Bp=
trap cleanup_exp EXIT
start expA 3200; A=$STARTED
start expB 3201; Bp=$STARTED
fill() { $B/loadgen --url http://127.0.0.1:3201/webhook -c 64 -n 120000 --json > "$OUT/fill.json"; sleep 10; }
trial() { # name action
  $B/loadgen --url http://127.0.0.1:3200/webhook -c 64 -r 2000 -d 40 --json > "$OUT/$1.json" 2>/dev/null &
  local L=$!
  sleep 15
  if [[ $2 == delete ]]; then echo "$1: delete at $(date +%T.%N)"; rabbitmqctl -q delete_queue expB.events; echo "$1: deleted at $(date +%T.%N)"; fi
  wait $L
  python3 -c "import json; d=json.load(open('$OUT/$1.json')); print('$1', d['latency_ms'], d['statuses'])"
}
fill
trial control-1 none
trial delete-1 delete
kill "$Bp"; wait "$Bp" 2>/dev/null || true; start expB 3201; Bp=$STARTED
fill
trial delete-2 delete
