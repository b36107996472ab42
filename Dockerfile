# syntax=docker/dockerfile:1
# Both images from one build of the workspace (build from the repository root):
#   docker build --target server  -t booking-server .
#   docker build --target loadgen -t booking-loadgen .

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Every workspace member must be present for the manifest to load; nothing else is copied, so
# changes elsewhere keep the layer cache.
COPY Cargo.toml Cargo.lock ./
COPY server ./server
COPY loadgen ./loadgen
COPY testkit ./testkit
# The web app's committed build, embedded in booking-server by server/build.rs.
COPY web/dist ./web/dist
# target/ lives in a cache mount, so copy the binaries out within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p booking-server -p booking-loadgen \
    && cp target/release/booking-server target/release/loadgen /usr/local/bin/

FROM debian:bookworm-slim AS runtime
# libssl3: the loadgen's Socket.IO client links OpenSSL for its WebSocket transport.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/*

FROM runtime AS loadgen
# Reports (--report-json, --report-file) are written relative to the working directory.
RUN useradd --system --uid 10001 --home-dir /var/lib/loadgen --create-home \
        --shell /usr/sbin/nologin loadgen
COPY --from=builder /usr/local/bin/loadgen /usr/local/bin/loadgen
USER loadgen
WORKDIR /var/lib/loadgen
EXPOSE 9100
ENTRYPOINT ["/usr/local/bin/loadgen"]

FROM runtime AS server
# The default DATABASE_URL is a SQLite file in the working directory, so make it writable.
RUN useradd --system --uid 10001 --home-dir /var/lib/booking --create-home \
        --shell /usr/sbin/nologin booking
COPY --from=builder /usr/local/bin/booking-server /usr/local/bin/booking-server
USER booking
WORKDIR /var/lib/booking
ENV BIND=0.0.0.0 \
    PORT=5000
EXPOSE 5000
ENTRYPOINT ["/usr/local/bin/booking-server"]
