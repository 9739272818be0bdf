#!/usr/bin/env bash
# Measures webhook-inbox against the limits of the broker and the database on this machine,
# in one run, and writes the results to BENCHMARKS.md.
#
#   bench/run.sh            # full run (about 6 minutes)
#   QUICK=1 bench/run.sh    # short smoke of every step (about 1 minute)
#
# Needs RabbitMQ on 127.0.0.1:5672 (guest/guest) and MariaDB/MySQL on 127.0.0.1:3306 (root, no
# password); starts them when they are installed but stopped. Uses a fresh AMQP_PREFIX and a
# fresh database, both removed at the end.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
RESULTS="$ROOT/bench/results"
mkdir -p "$RESULTS"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$RESULTS/$STAMP"
mkdir -p "$OUT"

QUICK=${QUICK:-}
if [[ -n $QUICK ]]; then
  CLOSED_SECONDS=3; STEADY_SECONDS=5; BACKLOG=20000; RAW_MESSAGES=10000; RAW_ROWS=50000
else
  CLOSED_SECONDS=10; STEADY_SECONDS=60; BACKLOG=200000; RAW_MESSAGES=50000; RAW_ROWS=200000
fi
CONCURRENCIES=(16 64)
SECRET=bench-secret
PREFIX="bench_$STAMP"
DB="bench_$STAMP"
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export AMQP_PREFIX=$PREFIX
export DATABASE_URL="mysql://root@127.0.0.1:3306/$DB"
export WEBHOOK_SECRET=$SECRET
export RUST_LOG=warn
export HANDLER_ADDR=127.0.0.1:3100
export CONSUMER_ADDR=127.0.0.1:3101
URL="http://$HANDLER_ADDR/webhook"

log() { printf '\n== %s\n' "$*" >&2; }

"$ROOT/scripts/ensure-services"

log "building release binaries"
cargo build --release --locked -q -p request-handler -p consumer -p loadgen -p bench
BIN="$ROOT/target/release"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  mariadb -uroot -e "DROP DATABASE IF EXISTS \`$DB\`" 2>/dev/null || true
  for q in events dead rejected retry.1 retry.2 retry.3 retry.4 retry.5; do
    rabbitmqctl -q delete_queue "$PREFIX.$q" >/dev/null 2>&1 || true
  done
  rabbitmqctl -q delete_exchange "$PREFIX" >/dev/null 2>&1 || true
  rabbitmqctl -q delete_exchange "$PREFIX.dlx" >/dev/null 2>&1 || true
}
trap cleanup EXIT

wait_ready() { # url
  for _ in $(seq 1 200); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "not ready: $1" >&2; return 1
}

# Peak RSS (KiB) and CPU seconds (user+system) of a running process.
proc_stats() { # pid
  local hwm ticks
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$1/status")
  ticks=$(awk '{print $14 + $15}' "/proc/$1/stat")
  echo "$hwm $(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz}')"
}

start_handler() {
  "$BIN/request-handler" >"$OUT/handler.log" 2>&1 &
  HANDLER_PID=$!; PIDS+=("$HANDLER_PID")
  wait_ready "http://$HANDLER_ADDR/readyz"
}

start_consumer() { # log name
  CONSUMER_ADDR=$2 "$BIN/consumer" >"$OUT/$1.log" 2>&1 &
  local pid=$!; PIDS+=("$pid")
  wait_ready "http://$2/readyz"
  echo "$pid"
}

stored() { mariadb -uroot -N -e "SELECT COUNT(*) FROM \`$DB\`.events"; }

wait_stored() { # count -> seconds taken
  local target=$1 start now n
  start=$(date +%s.%N)
  while :; do
    n=$(stored)
    [[ $n -ge $target ]] && break
    sleep 0.2
  done
  now=$(date +%s.%N)
  awk -v a="$start" -v b="$now" 'BEGIN {printf "%.2f", b - a}'
}

log "raw limits"
for c in "${CONCURRENCIES[@]}"; do
  "$BIN/raw-publish" -n "$RAW_MESSAGES" -c "$c" | tee "$OUT/raw-publish-c$c.json"
done
"$BIN/raw-insert" -n "$RAW_ROWS" -b 500 | tee "$OUT/raw-insert.json"

log "system: handler and one consumer"
"$BIN/consumer" migrate >/dev/null
start_handler
CONSUMER_PID=$(start_consumer consumer "$CONSUMER_ADDR")

for c in "${CONCURRENCIES[@]}"; do
  log "closed loop, concurrency $c, ${CLOSED_SECONDS}s"
  "$BIN/loadgen" --url "$URL" -c "$c" -d "$CLOSED_SECONDS" --drain --json | tee "$OUT/closed-c$c.json"
done

log "steady 2000 req/s for ${STEADY_SECONDS}s"
"$BIN/loadgen" --url "$URL" -c 64 -r 2000 -d "$STEADY_SECONDS" --drain --json | tee "$OUT/steady.json"
read -r HANDLER_RSS HANDLER_CPU < <(proc_stats "$HANDLER_PID")
read -r CONSUMER_RSS CONSUMER_CPU < <(proc_stats "$CONSUMER_PID")

log "backlog of $BACKLOG drained by one consumer"
kill "$CONSUMER_PID"; wait "$CONSUMER_PID" 2>/dev/null || true
BEFORE=$(stored)
"$BIN/loadgen" --url "$URL" -c 64 -n "$BACKLOG" --json > "$OUT/backlog-fill-1.json"
CONSUMER_PID=$(start_consumer consumer-drain "$CONSUMER_ADDR")
DRAIN1=$(wait_stored $((BEFORE + BACKLOG)))
read -r DRAIN_RSS DRAIN_CPU < <(proc_stats "$CONSUMER_PID")
echo "one consumer: $BACKLOG in ${DRAIN1}s" | tee "$OUT/drain-1.txt"

log "backlog of $BACKLOG drained by two consumers"
kill "$CONSUMER_PID"; wait "$CONSUMER_PID" 2>/dev/null || true
BEFORE=$(stored)
"$BIN/loadgen" --url "$URL" -c 64 -n "$BACKLOG" --json > "$OUT/backlog-fill-2.json"
P1=$(start_consumer consumer-a 127.0.0.1:3102)
P2=$(start_consumer consumer-b 127.0.0.1:3103)
DRAIN2=$(wait_stored $((BEFORE + BACKLOG)))
echo "two consumers: $BACKLOG in ${DRAIN2}s" | tee "$OUT/drain-2.txt"
kill "$P1" "$P2" 2>/dev/null || true

log "writing BENCHMARKS.md"
python3 "$ROOT/bench/report.py" "$OUT" \
  --drain1 "$DRAIN1" --drain2 "$DRAIN2" --backlog "$BACKLOG" \
  --handler-rss "$HANDLER_RSS" --handler-cpu "$HANDLER_CPU" \
  --consumer-rss "$CONSUMER_RSS" --consumer-cpu "$CONSUMER_CPU" \
  --drain-rss "$DRAIN_RSS" --drain-cpu "$DRAIN_CPU" \
  --command "${QUICK:+QUICK=1 }bench/run.sh" > "$ROOT/BENCHMARKS.md"
echo "results in $OUT and BENCHMARKS.md" >&2
