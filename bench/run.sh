#!/usr/bin/env bash
# Measures webhook-inbox against the limits of the broker and the database on this machine,
# in one run, and writes the results to BENCHMARKS.md.
#
#   bench/run.sh            # full run (about 6 minutes)
#   QUICK=1 bench/run.sh    # short smoke of every step (about 2 minutes)
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

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap cleanup EXIT

"$ROOT/scripts/ensure-services"

log "building release binaries"
cargo build --release --locked -q -p request-handler -p consumer -p loadgen -p bench
BIN="$ROOT/target/release"

# CPU seconds (user+system) used so far by every running process called $1.
cpu_of() {
  local total=0 pid
  for pid in $(pgrep -x "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}'
}

# The CPU split of one phase: `phase_start`, run it, `phase_end NAME` writes cpu-NAME.json with
# the CPU seconds each process used meanwhile (loadgen's from bash's `time`, in LOADGEN_CPU).
PROCESSES=(request-handler consumer beam.smp mariadbd)
phase_start() {
  PHASE_T0=$(date +%s.%N); PHASE_CPU0=()
  for p in "${PROCESSES[@]}"; do PHASE_CPU0+=("$(cpu_of "$p")"); done
  LOADGEN_CPU=0
}
phase_end() { # name
  local i=0 p now fields=""
  for p in "${PROCESSES[@]}"; do
    now=$(cpu_of "$p")
    fields+=$(awk -v p="$p" -v a="${PHASE_CPU0[$i]}" -v b="$now" 'BEGIN {d = b - a; if (d < 0) d = 0; printf "\"%s\": %.2f, ", p, d}')
    i=$((i + 1))
  done
  awk -v t0="$PHASE_T0" -v t1="$(date +%s.%N)" -v f="$fields" -v l="$LOADGEN_CPU" \
    'BEGIN {printf "{%s\"loadgen\": %.2f, \"wall\": %.2f}\n", f, l, t1 - t0}' > "$OUT/cpu-$1.json"
}
# Runs loadgen with its summary going to file $1 (and stdout), adding its user+system CPU
# seconds (GNU time, when installed) to LOADGEN_CPU. Not in a pipeline: that would run it in a
# subshell and lose the sum.
timed_loadgen() { # summary-file loadgen-args...
  local summary=$1 took="0 0"
  shift
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f "%U %S" -o "$summary.time" "$BIN/loadgen" "$@" >"$summary"
    took=$(tail -n 1 "$summary.time")
  else
    "$BIN/loadgen" "$@" >"$summary"
  fi
  cat "$summary"
  LOADGEN_CPU=$(awk -v a="$LOADGEN_CPU" -v t="$took" 'BEGIN {split(t, x, " "); printf "%.2f", a + x[1] + x[2]}')
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

start_consumer() { # log addr -> sets STARTED_PID (not in a subshell, so cleanup knows it)
  CONSUMER_ADDR=$2 "$BIN/consumer" >"$OUT/$1.log" 2>&1 &
  STARTED_PID=$!; PIDS+=("$STARTED_PID")
  wait_ready "http://$2/readyz"
}

stored() { mariadb -uroot -N -e "SELECT COUNT(*) FROM \`$DB\`.events"; }

wait_stored() { # count start -> seconds from start (the consumers' launch) until stored
  local target=$1 start=$2 now n
  while :; do
    n=$(stored)
    [[ $n -ge $target ]] && break
    sleep 0.1
  done
  now=$(date +%s.%N)
  awk -v a="$start" -v b="$now" 'BEGIN {printf "%.2f", b - a}'
}

log "raw limits"
for c in "${CONCURRENCIES[@]}"; do
  "$BIN/raw-publish" -n "$RAW_MESSAGES" -c "$c" | tee "$OUT/raw-publish-c$c.json"
  # The same, through a topic exchange with the handler's properties and headers: what the
  # design's topology costs the broker.
  "$BIN/raw-publish" -n "$RAW_MESSAGES" -c "$c" --as-handler | tee "$OUT/raw-publish-topology-c$c.json"
done
"$BIN/raw-insert" -n "$RAW_ROWS" -b 500 | tee "$OUT/raw-insert.json"

log "system: handler and one consumer"
"$BIN/consumer" migrate >/dev/null
start_handler
start_consumer consumer "$CONSUMER_ADDR"; CONSUMER_PID=$STARTED_PID

for c in "${CONCURRENCIES[@]}"; do
  log "closed loop, concurrency $c, ${CLOSED_SECONDS}s"
  phase_start
  timed_loadgen "$OUT/closed-c$c.json" --url "$URL" -c "$c" -d "$CLOSED_SECONDS" --drain --json
  phase_end "closed-c$c"
done

log "steady 2000 req/s for ${STEADY_SECONDS}s"
phase_start
timed_loadgen "$OUT/steady.json" --url "$URL" -c 64 -r 2000 -d "$STEADY_SECONDS" --drain --json
phase_end steady
read -r HANDLER_RSS HANDLER_CPU < <(proc_stats "$HANDLER_PID")
read -r CONSUMER_RSS CONSUMER_CPU < <(proc_stats "$CONSUMER_PID")

# Each drain starts from empty tables, as the raw inserter does, so that the drains compare
# with the limit and with each other rather than with how much earlier phases stored.
kill "$CONSUMER_PID"; wait "$CONSUMER_PID" 2>/dev/null || true
drain() { # name event-type consumers -> sets DRAINED (seconds)
  local name=$1 event_type=$2 consumers=$3 pids=() i
  log "backlog of $BACKLOG ($event_type) drained by $consumers consumer(s)"
  mariadb -uroot -e "TRUNCATE TABLE \`$DB\`.events; TRUNCATE TABLE \`$DB\`.sales"
  "$BIN/loadgen" --url "$URL" -c 64 -n "$BACKLOG" --event-type "$event_type" --json > "$OUT/backlog-fill-$name.json"
  phase_start
  LAUNCHED=$(date +%s.%N)
  for i in $(seq 1 "$consumers"); do
    start_consumer "consumer-$name-$i" "127.0.0.1:$((3101 + i))"; pids+=("$STARTED_PID")
  done
  DRAINED=$(wait_stored "$BACKLOG" "$LAUNCHED")
  phase_end "$name"
  read -r DRAIN_RSS DRAIN_CPU < <(proc_stats "${pids[0]}")
  echo "$name: $BACKLOG in ${DRAINED}s, first consumer peak RSS ${DRAIN_RSS} KiB, CPU ${DRAIN_CPU}s" | tee "$OUT/$name.txt"
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
drain drain-1 sale.completed 1; DRAIN1=$DRAINED; DRAIN1_RSS=$DRAIN_RSS; DRAIN1_CPU=$DRAIN_CPU
drain drain-2 sale.completed 2; DRAIN2=$DRAINED
drain drain-events ping 1; DRAIN_EVENTS=$DRAINED

log "writing BENCHMARKS.md"
python3 "$ROOT/bench/report.py" "$OUT" \
  --drain1 "$DRAIN1" --drain2 "$DRAIN2" --drain-events "$DRAIN_EVENTS" --backlog "$BACKLOG" \
  --handler-rss "$HANDLER_RSS" --handler-cpu "$HANDLER_CPU" \
  --consumer-rss "$CONSUMER_RSS" --consumer-cpu "$CONSUMER_CPU" \
  --drain-rss "$DRAIN1_RSS" --drain-cpu "$DRAIN1_CPU" \
  --command "${QUICK:+QUICK=1 }bench/run.sh" > "$ROOT/BENCHMARKS.md"
echo "results in $OUT and BENCHMARKS.md" >&2
