#!/usr/bin/env bash
# Measures webhook-inbox against the limits of the broker and the database on this machine,
# in one run, and writes the results to BENCHMARKS.md: the raw publisher and inserter, the
# handler's CPU per request beside its floors (an actix-web server doing nothing, the raw
# publisher's client CPU) and a careful Node peer under the same wrk load, the steady rate
# beside the raw publisher at that rate, and the steady rate again with 10,000 connections held.
#
#   bench/run.sh            # full run (about 10 minutes)
#   QUICK=1 bench/run.sh    # short smoke of every step (about 3 minutes)
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
  CLOSED_SECONDS=3; STEADY_SECONDS=5; BACKLOG=20000; RAW_MESSAGES=10000; RAW_ROWS=50000; WRK_SECONDS=3
else
  CLOSED_SECONDS=10; STEADY_SECONDS=60; BACKLOG=200000; RAW_MESSAGES=50000; RAW_ROWS=200000; WRK_SECONDS=10
fi
STEADY_RATE=2000
IDLE_CONNECTIONS=10000
WRK_CONNECTIONS=50
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

# The many-connections phase holds 10,000 sockets in the handler and as many in idle-conns.
ulimit -n "$(ulimit -Hn)"
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt $((IDLE_CONNECTIONS + 1000)) ]]; then
  echo "open-files limit $(ulimit -n) is below $((IDLE_CONNECTIONS + 1000)): raise the hard limit" >&2
  exit 1
fi
# wrk loads the handler, the HTTP floor and the Node peer alike.
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get install -y -q wrk >/dev/null
fi

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
# The drain's floors: a backlog of the same size consumed in the consumer's shape (2
# connections, prefetch 1000, batches of 500, one multiple ack each), acked without writing
# (the broker alone), then with each batch written as the raw inserter writes it, to a database
# of its own. The fill and the database's creation and drop are outside the phase; raw-drain's
# own CPU is in its summary.
for mode in broker insert; do
  "$BIN/raw-drain" fill --queue "$PREFIX.raw-drain-$mode" -n "$BACKLOG"
  written=()
  if [[ $mode == insert ]]; then
    mariadb -uroot -e "CREATE DATABASE \`${DB}_raw_drain\` COLLATE utf8mb4_bin"
    mariadb -uroot "${DB}_raw_drain" < "$ROOT/migrations/20261101000001_create_events.sql"
    written=(--database-url "mysql://root@127.0.0.1:3306/${DB}_raw_drain")
  fi
  phase_start
  "$BIN/raw-drain" drain --queue "$PREFIX.raw-drain-$mode" -n "$BACKLOG" "${written[@]}" | tee "$OUT/raw-drain-$mode.json"
  phase_end "raw-drain-$mode"
done
mariadb -uroot -e "DROP DATABASE \`${DB}_raw_drain\`"

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

log "steady $STEADY_RATE req/s for ${STEADY_SECONDS}s"
phase_start
timed_loadgen "$OUT/steady.json" --url "$URL" -c 64 -r "$STEADY_RATE" -d "$STEADY_SECONDS" --drain --json
phase_end steady
read -r HANDLER_RSS HANDLER_CPU < <(proc_stats "$HANDLER_PID")
read -r CONSUMER_RSS CONSUMER_CPU < <(proc_stats "$CONSUMER_PID")

log "steady $STEADY_RATE req/s for ${STEADY_SECONDS}s with $IDLE_CONNECTIONS connections held"
"$BIN/idle-conns" --addr "$HANDLER_ADDR" -c "$IDLE_CONNECTIONS" --seconds $((STEADY_SECONDS + 600)) \
  >"$OUT/idle-conns.json" 2>"$OUT/idle-conns.log" &
IDLE_PID=$!; PIDS+=("$IDLE_PID")
until grep -q "connections open" "$OUT/idle-conns.log"; do
  kill -0 "$IDLE_PID" 2>/dev/null || { cat "$OUT/idle-conns.log" >&2; exit 1; }
  sleep 0.5
done
cat "$OUT/idle-conns.log" >&2
phase_start
timed_loadgen "$OUT/steady-conns.json" --url "$URL" -c 64 -r "$STEADY_RATE" -d "$STEADY_SECONDS" --drain --json
phase_end steady-conns
# The handler's resident memory while it holds them, and how many it held.
awk '/VmRSS/ {print $2}' "/proc/$HANDLER_PID/status" >"$OUT/conns-handler-rss.txt"
ss -Htn state established "( sport = :${HANDLER_ADDR##*:} )" | wc -l >"$OUT/conns-established.txt"
kill "$IDLE_PID"; wait "$IDLE_PID" 2>/dev/null || true

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

# The broker's own latency at the steady rate, then the handler's at the same rate, duration and
# body size, back to back and alike: no consumer running in either (the raw publisher has none),
# latency from each scheduled send. The steady phase above is the whole system's, with the
# consumer and MariaDB storing beside it on the same two cores.
log "raw publish open loop, $STEADY_RATE msg/s for ${STEADY_SECONDS}s"
"$BIN/raw-publish" --rate "$STEADY_RATE" --seconds "$STEADY_SECONDS" | tee "$OUT/raw-steady.json"
log "steady $STEADY_RATE req/s for ${STEADY_SECONDS}s, the handler alone"
phase_start
timed_loadgen "$OUT/steady-alone.json" --url "$URL" -c 64 -r "$STEADY_RATE" -d "$STEADY_SECONDS" --json
phase_end steady-alone
# Nothing consumed them: the phases that follow start from an empty queue, as before.
rabbitmqctl -q purge_queue "$PREFIX.events" >/dev/null

# Floors and the peer, at the end, with no consumer running: the same wrk load (one signed
# 100-byte body, $WRK_CONNECTIONS connections) on the handler, on an actix-web server that only
# reads the body (the HTTP floor), on the handler publishing through its shared connection
# only, and on the Node peer; CPU per request is the server's
# user+system CPU over the run (from /proc/<pid>/stat) divided by the requests answered. The
# publish floor is the raw publisher's own client CPU per message, 100-byte bodies, as many in
# flight as wrk's connections.
log "floors and peer: wrk, $WRK_CONNECTIONS connections, ${WRK_SECONDS}s"
WRK_BODY=$(python3 -c 'import json; b = json.dumps({"id": "wrk-1", "type": "ping", "pad": ""}); print(b[:-2] + "x" * (100 - len(b)) + "\"}")')
WRK_SIGNATURE=$(printf '%s' "$WRK_BODY" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
cat >"$OUT/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$WRK_BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Hub-Signature-256"] = "sha256=$WRK_SIGNATURE"
wrk.headers["X-GitHub-Delivery"] = "wrk-1"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "seconds": %.3f, "requests_per_second": %.1f, "socket_errors": %d, "non_2xx": %d, "p50_ms": %.3f, "p99_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
# CPU seconds (user+system) of the processes $@ so far.
pids_cpu() {
  local ticks=0 pid
  for pid in "$@"; do ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.3f", t / hz}'
}
# wrk against $2, CPU of the processes the function $3 names measured around it -> wrk-$1.json
# (wrk's summary with "cpu_seconds" added).
wrk_measured() { # name url pids-function
  local before after
  before=$(pids_cpu $($3))
  wrk -t2 -c "$WRK_CONNECTIONS" -d "${WRK_SECONDS}s" -s "$OUT/post.lua" "$2" >"$OUT/wrk-$1.txt"
  after=$(pids_cpu $($3))
  tail -n 1 "$OUT/wrk-$1.txt" | python3 -c 'import json, sys; r = json.loads(sys.stdin.read()); r["cpu_seconds"] = round(float(sys.argv[1]) - float(sys.argv[2]), 3); print(json.dumps(r))' "$after" "$before" | tee "$OUT/wrk-$1.json"
}
handler_pids() { echo "$HANDLER_PID"; }
wrk_measured handler "$URL" handler_pids
rabbitmqctl -q purge_queue "$PREFIX.events" >/dev/null

# The same handler with every publish through its shared lapin connection: the before of the
# workers' own connections.
HANDLER_ADDR=127.0.0.1:3192 PUBLISH_PER_WORKER=false "$BIN/request-handler" >"$OUT/handler-shared.log" 2>&1 &
SHARED_PID=$!; PIDS+=("$SHARED_PID")
wait_ready "http://127.0.0.1:3192/readyz"
shared_pids() { echo "$SHARED_PID"; }
wrk_measured handler-shared http://127.0.0.1:3192/webhook shared_pids
kill "$SHARED_PID"; wait "$SHARED_PID" 2>/dev/null || true
rabbitmqctl -q purge_queue "$PREFIX.events" >/dev/null

"$BIN/http-floor" --addr 127.0.0.1:3190 >"$OUT/http-floor.log" 2>&1 &
FLOOR_PID=$!; PIDS+=("$FLOOR_PID")
until curl -s -o /dev/null -X POST http://127.0.0.1:3190/webhook; do sleep 0.1; done
floor_pids() { echo "$FLOOR_PID"; }
wrk_measured http-floor http://127.0.0.1:3190/webhook floor_pids
kill "$FLOOR_PID"; wait "$FLOOR_PID" 2>/dev/null || true

"$BIN/raw-publish" -n "$RAW_MESSAGES" -c "$WRK_CONNECTIONS" --body-bytes 100 | tee "$OUT/raw-publish-floor.json"

if command -v node >/dev/null && command -v npm >/dev/null; then
  (cd "$ROOT/bench/peers/node" && npm ci --no-audit --no-fund --silent)
  NODE_PEER_ADDR=127.0.0.1:3180 NODE_PEER_QUEUE="$PREFIX.node-peer" node "$ROOT/bench/peers/node/server.js" \
    >"$OUT/node-peer.log" 2>&1 &
  NODE_PID=$!; PIDS+=("$NODE_PID")
  until [[ $(curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:3180/webhook) == 401 ]]; do
    kill -0 "$NODE_PID" 2>/dev/null || { cat "$OUT/node-peer.log" >&2; exit 1; }
    sleep 0.2
  done
  node_pids() { echo "$NODE_PID" $(pgrep -P "$NODE_PID" || true); }
  wrk_measured node-peer http://127.0.0.1:3180/webhook node_pids
  kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true
  rabbitmqctl -q delete_queue "$PREFIX.node-peer" >/dev/null 2>&1 || true
  delete_exchange "$PREFIX.node-peer.x"
else
  log "node not installed: no Node peer in this run"
fi

log "writing BENCHMARKS.md"
python3 "$ROOT/bench/report.py" "$OUT" \
  --drain1 "$DRAIN1" --drain2 "$DRAIN2" --drain-events "$DRAIN_EVENTS" --backlog "$BACKLOG" \
  --handler-rss "$HANDLER_RSS" --handler-cpu "$HANDLER_CPU" \
  --consumer-rss "$CONSUMER_RSS" --consumer-cpu "$CONSUMER_CPU" \
  --drain-rss "$DRAIN1_RSS" --drain-cpu "$DRAIN1_CPU" \
  --command "${QUICK:+QUICK=1 }bench/run.sh" > "$ROOT/BENCHMARKS.md"
echo "results in $OUT and BENCHMARKS.md" >&2
