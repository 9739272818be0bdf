#!/usr/bin/env bash
# Measures the dashboard's page and GET /api/health over a large database, with the dashboard
# and migrations of an older revision (views that sum every row) and of this tree (views over
# the per-day and per-month counts): a year of EVENTS events of five vendors (with their
# orders and dead letters) and, in turn, each of REJECTIONS rejections of made-up sources.
#
#   bench/dashboard-scale.sh                 # 10,000,000 events; 100k, 300k, 1M rejections
#   EVENTS=100000 REJECTIONS="1000 3000" bench/dashboard-scale.sh   # a quick try
#   BEFORE_RUNS=0 bench/dashboard-scale.sh   # this tree only: no build or run of the older one
#
# BEFORE (default 8aed889, the last revision without the counts) is built in a temporary copy
# with its own target directory, unless BEFORE_DASHBOARD names its dashboard binary. The data is generated once, into one database of its own
# (dropped at the end): first under the old schema, measured with the old dashboard as the
# rejections grow; then the rejections are cut back to the first size, the new migrations
# applied (their fill of the counts is timed), and the new dashboard measured as they grow
# again, stored as the new consumer stores them. Each figure is the median of RUNS requests
# (BEFORE_RUNS for the old dashboard, whose requests take minutes at these sizes) after one
# warm-up request, whose time is given too. The full run needs about 5 GiB of disk.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BEFORE=${BEFORE:-8aed889}
EVENTS=${EVENTS:-10000000}
REJECTIONS=${REJECTIONS:-100000 300000 1000000}
RUNS=${RUNS:-3}
BEFORE_RUNS=${BEFORE_RUNS:-1}
MAX_SECONDS=${MAX_SECONDS:-900}
SERVER=${BENCH_DATABASE_SERVER:-mysql://root@127.0.0.1:3306}
DB="bench_dashboard_$(date -u +%Y%m%dT%H%M%SZ)"
export DATABASE_URL="$SERVER/$DB"
ADDR=127.0.0.1:3190
WORK=$(mktemp -d)
OUT="$ROOT/bench/results/$DB"
mkdir -p "$OUT"

log() { printf '\n== %s\n' "$*" >&2; }

DASHBOARD_PID=
cleanup() {
  [[ -n $DASHBOARD_PID ]] && kill "$DASHBOARD_PID" 2>/dev/null || true
  mariadb -uroot -e "DROP DATABASE IF EXISTS \`$DB\`" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

log "building this tree's dashboard and bench tools (release)"
cargo build --release --locked -q -p dashboard -p bench
NEW_DASHBOARD="$ROOT/target/release/dashboard"
DATA="$ROOT/target/release/dashboard-data"

mkdir -p "$WORK/before"
git archive "$BEFORE" | tar -x -C "$WORK/before"
if ((BEFORE_RUNS == 0)); then
  OLD_DASHBOARD=
elif [[ -n ${BEFORE_DASHBOARD:-} ]]; then
  OLD_DASHBOARD=$BEFORE_DASHBOARD
else
  log "building the dashboard of $BEFORE (release, in $WORK)"
  (cd "$WORK/before" && CARGO_TARGET_DIR="$WORK/before-target" cargo build --release --locked -q -p dashboard)
  OLD_DASHBOARD="$WORK/before-target/release/dashboard"
fi

# Seconds of one request, or ">MAX_SECONDS".
request() { # path
  curl -s -o /dev/null --max-time "$MAX_SECONDS" -w '%{time_total}' "http://$ADDR$1" || echo ">$MAX_SECONDS"
}

# One line of the results: label, rejections, path, warm-up seconds, median seconds, and the
# machine's load average then (the machine may be shared).
measure() { # label binary rejections runs
  "$2" >"$OUT/dashboard-$1-$3.log" 2>&1 &
  DASHBOARD_PID=$!
  for _ in $(seq 1 100); do curl -fsS "http://$ADDR/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  for path in / /api/health; do
    local first times=()
    first=$(request "$path")
    for _ in $(seq 1 "$4"); do times+=("$(request "$path")"); done
    local median
    median=$(printf '%s\n' "${times[@]}" | sort -g | sed -n "$((($4 + 1) / 2))p")
    printf '%s\t%s\t%s\t%s\t%s\tload %s\n' "$1" "$3" "$path" "$first" "$median" \
      "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$OUT/results.tsv"
  done
  kill "$DASHBOARD_PID"; wait "$DASHBOARD_PID" 2>/dev/null || true; DASHBOARD_PID=
}

export DASHBOARD_ADDR=$ADDR RUST_LOG=warn
mariadb -uroot -e "CREATE DATABASE \`$DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
"$DATA" migrate --migrations "$WORK/before/migrations"
log "$EVENTS events"
"$DATA" events --count "$EVENTS" | tee "$OUT/events.log"

first_size=${REJECTIONS%% *}
stored=0
for size in $REJECTIONS; do
  ((BEFORE_RUNS == 0 && size > first_size)) && break
  log "before: $size rejections"
  "$DATA" rejections --from "$stored" --count $((size - stored)) >/dev/null
  stored=$size
  ((BEFORE_RUNS > 0)) && measure before "$OLD_DASHBOARD" "$size" "$BEFORE_RUNS"
done

log "cutting the rejections back to $first_size; applying this tree's migrations"
"$DATA" keep-rejections "$first_size" >/dev/null
"$DATA" migrate --migrations "$ROOT/migrations" | tee "$OUT/migrate.log"
stored=$first_size
for size in $REJECTIONS; do
  log "after: $size rejections"
  if ((size > stored)); then
    "$DATA" rejections --bucketed --from "$stored" --count $((size - stored)) >/dev/null
  fi
  stored=$size
  measure after "$NEW_DASHBOARD" "$size" "$RUNS"
done
mariadb -uroot "$DB" -e "SELECT COUNT(*) AS events FROM events; SELECT COUNT(*) AS orders FROM sales; \
  SELECT COUNT(*) AS rejections FROM rejections; SELECT COUNT(*) AS daily_counts FROM daily_counts; \
  SELECT COUNT(*) AS sales_months FROM sales_months" | tee "$OUT/sizes.txt"
log "results in $OUT/results.tsv"
