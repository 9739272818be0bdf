# One image with the three binaries (request-handler, consumer, dashboard); docker-compose.yml
# picks one per service with `command:`.
#
#   docker build -t webhook-inbox .
#   docker run --rm webhook-inbox consumer --help

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src

# 1. Dependencies, cached until a manifest or Cargo.lock changes: the real manifests over stub
#    sources. Cargo needs every workspace member's manifest, so each member has one line here.
COPY Cargo.toml Cargo.lock ./
COPY webhook-core/Cargo.toml webhook-core/
COPY request-handler/Cargo.toml request-handler/
COPY consumer/Cargo.toml consumer/
COPY dashboard/Cargo.toml dashboard/
COPY testkit/Cargo.toml testkit/
COPY loadgen/Cargo.toml loadgen/
COPY bench/Cargo.toml bench/
COPY fault-suite/Cargo.toml fault-suite/
RUN for manifest in */Cargo.toml; do \
        member="${manifest%/Cargo.toml}"; \
        mkdir -p "$member/src"; \
        : > "$member/src/lib.rs"; \
        echo 'fn main() {}' > "$member/src/main.rs"; \
    done \
 && cargo build --release --locked -p request-handler -p consumer -p dashboard \
 && rm -rf -- */src

# 2. The real sources. `migrations/` comes with them: `sqlx::migrate!` embeds the migrations in
#    the consumer binary at build time. COPY keeps the files' own modification times, which can
#    be older than the stub build, so touch them for cargo to see the change.
COPY . .
RUN find . -path ./target -prune -o -name '*.rs' -exec touch {} + \
 && cargo build --release --locked -p request-handler -p consumer -p dashboard

FROM debian:bookworm-slim AS runtime
# curl is for the healthchecks in docker-compose.yml.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin webhooks \
 && install -d -o webhooks -g webhooks -m 0700 /var/lib/webhook-inbox/spool /var/lib/webhook-inbox/dashboard-users
# The handler's spool (SPOOL_DIR) and the dashboard's users file (docker-compose.yml): owned
# by the service's user, so that a new named volume mounted here is too.
COPY --from=builder \
     /src/target/release/request-handler \
     /src/target/release/consumer \
     /src/target/release/dashboard \
     /usr/local/bin/
# An empty working directory: each binary reads ./.env if there is one, and there is none here;
# configuration comes from the environment.
WORKDIR /app
USER webhooks:webhooks
# request-handler, consumer (health and metrics), dashboard
EXPOSE 3000 3001 3002
CMD ["request-handler"]
