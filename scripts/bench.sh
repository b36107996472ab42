#!/usr/bin/env bash
# Benchmark (not a test): a release booking-server and a release loadgen as two processes on
# this machine, over loopback. Prints the loadgen summary, then the figures the README quotes:
# tabs held, verified deliveries/s with 0 lost, fan-out p50/p99, loadgen RSS per tab.
#
#   scripts/bench.sh                      # 5000 tabs, 60 s, 12 actions/s
#   TABS=2000 DURATION=30s RATE=20 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TABS=${TABS:-5000}
DURATION=${DURATION:-60s}
RATE=${RATE:-12}
RAMP=${RAMP:-500}
PORT=${PORT:-5077}
OUT=${OUT:-target/bench-report.json}
SECRET=bench-secret

cargo build --release -q -p booking-server -p booking-loadgen
AUTH_SECRET=$SECRET DATABASE_URL=sqlite::memory: LOG_LEVEL=warn \
    SOCKET_QUEUE_SIZE=4096 ./target/release/booking-server --port "$PORT" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && break
    sleep 0.1
done

set +e
./target/release/loadgen --host "http://127.0.0.1:$PORT" --auth-secret "$SECRET" \
    --tabs "$TABS" --ramp-up "$RAMP" --duration "$DURATION" --actions-per-sec "$RATE" \
    --seed 1 --progress-every 10s --report-json "$OUT"
code=$?
set -e
server_rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
python3 - "$OUT" "$server_rss_kb" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
d, l, t, m = r["delivery"], r["latency_ms"], r["throughput"], r["memory"]
print(f"bench: tabs {r['tabs_joined']}/{r['tabs']} joined, owed {d['owed']} lost {d['lost']} "
      f"dup {d['duplicated']} unexpected {d['unexpected']}, {t['deliveries_per_s']:.0f} deliveries/s, "
      f"{t['actions_per_s']:.1f} actions/s, fan-out p50 {l['fanout']['p50']:.2f} ms p99 {l['fanout']['p99']:.2f} ms, "
      f"action p99 {l['action']['p99']:.2f} ms, loadgen RSS {m['rss_bytes']/2**20:.0f} MiB "
      f"({m['rss_per_tab_bytes']/1024:.1f} KiB/tab), server RSS {int(sys.argv[2])/1024:.0f} MiB")
PY
exit $code
