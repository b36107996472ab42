#!/usr/bin/env bash
# Benchmark (not a test): the same workload, seed and release loadgen against the Rust
# booking-server (SQLite in memory) and then against the Node.js peer on the official
# socket.io package (examples/node-server, in memory), one after the other, each as its own
# process on this machine over loopback. Prints each run's loadgen summary, then one table:
# verified deliveries/s, lost, writes done and writes answered 503 (unavailable), fan-out
# p50/p99, CPU seconds per 100k verified deliveries of the server and of the generator (whole
# run, from /proc), RSS per tab of each, and the seconds the generator was saturated (when it
# was, its latency figures are its own).
#
#   scripts/bench.sh                                   # 3000 tabs, 30 s, 20 actions/s, seed 7
#   TABS=3000 RATE=60 scripts/bench.sh                 # heavier
#   SERVERS=rust RUNS=3 scripts/bench.sh               # the Rust server only, three times
set -euo pipefail
cd "$(dirname "$0")/.."
TABS=${TABS:-3000}
DURATION=${DURATION:-30s}
RATE=${RATE:-20}
RAMP=${RAMP:-500}
SEED=${SEED:-7}
RUNS=${RUNS:-1}
SERVERS=${SERVERS:-rust node}
PORT=${PORT:-5077}
OUT=${OUT:-target/bench}
# Extra flags of the Rust server, e.g. RUST_FLAGS="--write-threads 0".
RUST_FLAGS=${RUST_FLAGS:-}
SECRET=bench-secret-of-a-loopback-only-server

cargo build --release -q -p booking-server -p booking-loadgen
if [[ " $SERVERS " == *" node "* && ! -d examples/node-server/node_modules/socket.io ]]; then
    npm ci --prefix examples/node-server --no-audit --no-fund --silent
fi
mkdir -p "$OUT"

# CPU seconds (user + system) of a live process.
cpu_s() { awk '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / 100 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null || true' EXIT

start_server() {
    case $1 in
        rust)
            AUTH_SECRET=$SECRET DATABASE_URL=sqlite::memory: LOG_LEVEL=warn \
                ./target/release/booking-server --port "$PORT" $RUST_FLAGS &
            ;;
        node)
            AUTH_SECRET=$SECRET PORT=$PORT \
                node examples/node-server/server.mjs >/dev/null &
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
        echo "== bench: $name server, run $run: $TABS tabs, $DURATION at $RATE actions/s, seed $SEED"
        start_server "$name"
        before=$(cpu_s "$server")
        report="$OUT/$name-$run.json"
        set +e
        ./target/release/loadgen --host "http://127.0.0.1:$PORT" --auth-secret "$SECRET" \
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
        rows+=("$name $run $before $after $rss $report")
        sleep 2
    done
done

echo
echo "bench: $TABS tabs, $DURATION of actions at $RATE/s, seed $SEED, on $(nproc) cores ($(uname -m)), $(date -u +%Y-%m-%d)"
node - "${rows[@]}" <<'JS'
const fs = require("fs");
const head = ["server", "run", "verified deliveries/s", "lost", "writes ok / unavailable",
  "fan-out p50 / p99 ms",
  "server CPU-s per 100k", "generator CPU-s per 100k", "server KiB/tab", "generator KiB/tab",
  "generator saturated s"];
const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
for (const row of process.argv.slice(2)) {
  const [name, run, before, after, rssKib, path] = row.split(" ");
  const r = JSON.parse(fs.readFileSync(path, "utf8"));
  const delivered = Math.max(r.delivery.delivered, 1);
  const per100k = (cpu) => (cpu / delivered * 1e5).toFixed(2);
  const f = r.latency_ms.fanout;
  const a = r.actions;
  lines.push(`| ${[name, run,
    Math.round(r.throughput.deliveries_per_s).toLocaleString("en"),
    r.delivery.lost,
    `${a.created + a.updated + a.cancelled + a.deleted} / ${a.unavailable}`,
    `${f.p50.toFixed(1)} / ${f.p99.toFixed(1)}`,
    per100k(after - before),
    per100k(r.generator.cpu_s),
    (rssKib / r.tabs).toFixed(1),
    (r.memory.rss_per_tab_bytes / 1024).toFixed(1),
    `${r.generator.saturated_s} of ${r.generator.sampled_s}`].join(" | ")} |`);
}
console.log(lines.join("\n"));
JS
