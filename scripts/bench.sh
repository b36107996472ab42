#!/usr/bin/env bash
# Benchmark (not a test): the same workload, seed and release loadgen against the Rust
# booking-server (SQLite in memory) and then against the Node.js peer on the official
# socket.io package (examples/node-server, in memory), with each tab client (the loadgen's
# own, then rust_socketio), one run after the other, each server and generator a process of
# its own over loopback. With two cores or more the server is pinned to core 0 and the
# generator to core 1 (taskset), so each figure is charged to the process that caused it.
# Prints each run's loadgen summary, then one table: verified deliveries/s, lost, writes done
# and writes answered 503 (unavailable), fan-out p50/p99, the server's CPU seconds per 100k
# verified deliveries (whole run, from /proc), the generator's CPU µs per verified delivery
# while acting (the steady state) and over its whole run (connects and the final log read
# included), RSS per tab of each, and the seconds the generator was saturated (when it was,
# its latency figures are its own).
#
#   scripts/bench.sh                                   # 3000 tabs, 30 s, 20 actions/s, seed 7
#   TABS=3000 RATE=60 scripts/bench.sh                 # heavier
#   SERVERS=rust CLIENTS=own RUNS=3 scripts/bench.sh   # one pair, three times
#   PIN=0 scripts/bench.sh                             # no pinning
#   LOADGEN=/tmp/loadgen-before scripts/bench.sh       # another build of the generator
set -euo pipefail
cd "$(dirname "$0")/.."
TABS=${TABS:-3000}
DURATION=${DURATION:-30s}
RATE=${RATE:-20}
RAMP=${RAMP:-500}
SEED=${SEED:-7}
RUNS=${RUNS:-1}
SERVERS=${SERVERS:-rust node}
CLIENTS=${CLIENTS:-own rust_socketio}
PIN=${PIN:-1}
PORT=${PORT:-5077}
OUT=${OUT:-target/bench}
# Extra flags of the Rust server, e.g. RUST_FLAGS="--write-threads 0".
RUST_FLAGS=${RUST_FLAGS:-}
# The generator binary (another build's, to compare two).
LOADGEN=${LOADGEN:-./target/release/loadgen}
SECRET=bench-secret-of-a-loopback-only-server

cargo build --release -q -p booking-server -p booking-loadgen
if [[ " $SERVERS " == *" node "* && ! -d examples/node-server/node_modules/socket.io ]]; then
    npm ci --prefix examples/node-server --no-audit --no-fund --silent
fi
mkdir -p "$OUT"

# Core pinning: the server on core 0, the generator on core 1.
server_on=() generator_on=()
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    server_on=(taskset -c 0) generator_on=(taskset -c 1)
fi

# CPU seconds (user + system) of a live process.
cpu_s() { awk '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / 100 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null || true' EXIT

start_server() {
    case $1 in
        rust)
            AUTH_SECRET=$SECRET DATABASE_URL=sqlite::memory: LOG_LEVEL=warn \
                "${server_on[@]}" ./target/release/booking-server --port "$PORT" $RUST_FLAGS &
            ;;
        node)
            AUTH_SECRET=$SECRET PORT=$PORT \
                "${server_on[@]}" node examples/node-server/server.mjs >/dev/null &
            ;;
        *) echo "bench: unknown server '$1' (rust or node)" >&2; exit 2 ;;
    esac
    server=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && return
        sleep 0.1
    done
    echo "bench: the $1 server did not get ready on port $PORT" >&2
    exit 2
}

rows=()
for run in $(seq 1 "$RUNS"); do
    for name in $SERVERS; do
      for client in $CLIENTS; do
        echo "== bench: $name server, $client client, run $run: $TABS tabs, $DURATION at $RATE actions/s, seed $SEED"
        start_server "$name"
        before=$(cpu_s "$server")
        report="$OUT/$name-$client-$run.json"
        set +e
        "${generator_on[@]}" "$LOADGEN" --host "http://127.0.0.1:$PORT" \
            --auth-secret "$SECRET" --client "$client" \
            --tabs "$TABS" --ramp-up "$RAMP" --duration "$DURATION" --actions-per-sec "$RATE" \
            --seed "$SEED" --progress-every 10s --report-json "$report"
        code=$?
        set -e
        after=$(cpu_s "$server")
        rss=$(rss_kib "$server")
        kill "$server"
        wait "$server" 2>/dev/null || true
        server=
        if [ ! -s "$report" ]; then
            echo "bench: the loadgen could not run against the $name server (exit $code)" >&2
            exit 2
        fi
        rows+=("$name $client $run $before $after $rss $report")
        sleep 2
      done
    done
done

echo
pinned="not pinned"
[ ${#server_on[@]} -gt 0 ] && pinned="server on core 0, generator on core 1"
echo "bench: $TABS tabs, $DURATION of actions at $RATE/s, seed $SEED, on $(nproc) cores ($(uname -m)), $pinned, $(date -u +%Y-%m-%d)"
node - "${rows[@]}" <<'JS'
const fs = require("fs");
const head = ["server", "client", "run", "verified deliveries/s", "lost",
  "writes ok / unavailable", "fan-out p50 / p99 ms", "server CPU-s per 100k",
  "generator µs per delivery, acting / whole run", "server KiB/tab", "generator KiB/tab",
  "generator saturated s"];
const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
for (const row of process.argv.slice(2)) {
  const [name, client, run, before, after, rssKib, path] = row.split(" ");
  const r = JSON.parse(fs.readFileSync(path, "utf8"));
  const delivered = Math.max(r.delivery.delivered, 1);
  const per100k = (cpu) => (cpu / delivered * 1e5).toFixed(2);
  const f = r.latency_ms.fanout;
  const a = r.actions;
  const us = (cpu) => (cpu / delivered * 1e6).toFixed(1);
  lines.push(`| ${[name, client, run,
    Math.round(r.throughput.deliveries_per_s).toLocaleString("en"),
    r.delivery.lost,
    `${a.created + a.updated + a.cancelled + a.deleted} / ${a.unavailable}`,
    `${f.p50.toFixed(1)} / ${f.p99.toFixed(1)}`,
    per100k(after - before),
    `${us(r.generator.window_cpu_s ?? 0)} / ${us(r.generator.cpu_s)}`,
    (rssKib / r.tabs).toFixed(1),
    (r.memory.rss_per_tab_bytes / 1024).toFixed(1),
    `${r.generator.saturated_s} of ${r.generator.sampled_s}`].join(" | ")} |`);
}
console.log(lines.join("\n"));
JS
