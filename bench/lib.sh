# Shared by the bench scripts (`source` it after setting ROOT; set PREFIX and DB, or call
# bench_env, before the cleanup runs): logging, the services' environment, waiting for a
# service, filling a backlog, and a cleanup that stops the processes in PIDS, drops DB and
# removes every queue and exchange of PREFIX.

log() { printf '\n== %s\n' "$*" >&2; }

# The environment of a bench script that runs the services: a fresh PREFIX and DB named NAME
# and the time (STAMP), the broker and database the services use, the handler on 127.0.0.1:PORT
# and the consumer on the next port.
bench_env() { # name port
  STAMP=$(date -u +%Y%m%dT%H%M%SZ)
  PREFIX="bench_$1_$STAMP"
  DB="bench_$1_$STAMP"
  export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
  export AMQP_PREFIX=$PREFIX
  export DATABASE_URL="mysql://root@127.0.0.1:3306/$DB"
  export WEBHOOK_SECRET=bench-secret
  export RUST_LOG=warn
  export HANDLER_ADDR=127.0.0.1:$2
  export CONSUMER_ADDR=127.0.0.1:$(($2 + 1))
}

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  mariadb -uroot -e "DROP DATABASE IF EXISTS \`$DB\`; DROP DATABASE IF EXISTS \`${DB}_raw_drain\`" 2>/dev/null || true
  for q in events dead rejected retry.1 retry.2 retry.3 retry.4 retry.5 raw-drain-broker raw-drain-insert; do
    rabbitmqctl -q delete_queue "$PREFIX.$q" >/dev/null 2>&1 || true
  done
  for x in "$PREFIX" "$PREFIX.dlx" "$PREFIX.node-peer.x"; do delete_exchange "$x"; done
}

# rabbitmqctl has no delete_exchange (3.10): ask the broker directly, in the default vhost.
delete_exchange() { # name
  rabbitmqctl -q eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$1\">>), false, <<\"bench\">>)." >/dev/null 2>&1 || true
}

wait_ready() { # url
  for _ in $(seq 1 200); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "not ready: $1" >&2; return 1
}

# Sends COUNT signed events of TYPE to the handler at URL with loadgen ($BIN), and fails unless
# every one was answered 200.
fill_backlog() { # url count type
  local filled
  filled=$("$BIN/loadgen" --url "$1" -c 64 -n "$2" --event-type "$3" --json 2>/dev/null)
  grep -Eq "\"200\": *$2[,}]" <<<"$filled" || { echo "the backlog was not all accepted: $filled" >&2; return 1; }
}
