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
start_b() { AMQP_PREFIX=expB HANDLER_ADDR=127.0.0.1:3201 $B/request-handler >>"$OUT/expB.log" 2>&1 & Bp=$!; until curl -fs -o /dev/null http://127.0.0.1:3201/readyz; do sleep 0.2; done; }
AMQP_PREFIX=expA HANDLER_ADDR=127.0.0.1:3200 $B/request-handler >"$OUT/expA.log" 2>&1 & A=$!
start_b
cleanup_exp() {
  kill "$A" "$Bp" 2>/dev/null || true
  rm -rf "$OUT"
  for q in $(rabbitmqctl -q list_queues name | grep '^exp[AB]\.' || true); do rabbitmqctl -q delete_queue "$q" >/dev/null; done
  for e in $(rabbitmqctl -q list_exchanges name | grep '^exp[AB]' || true); do
    rabbitmqctl -q eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$e\">>), false, <<\"bench\">>)." >/dev/null 2>&1 || true
  done
}
trap cleanup_exp EXIT
until curl -fs -o /dev/null http://127.0.0.1:3200/readyz; do sleep 0.2; done
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
kill $Bp; wait $Bp 2>/dev/null || true; start_b
fill
trial delete-2 delete
