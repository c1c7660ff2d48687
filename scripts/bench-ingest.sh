#!/usr/bin/env bash
# `just bench`: ingest benchmark of the gateway (issue: ingest gateway).
#
# Release build; a private Redis (no persistence) on its own port, the
# gateway, and the load generator (oha, keep-alive connections) all on this
# machine. Payloads are 200 bytes. Prints:
#   - the raw Redis XADD ceiling (redis-benchmark, same payload size), unpipelined and pipelined;
#   - single writes at max rate with 64 connections (writes/s);
#   - p50/p99 latency at a fixed 5,000 writes/s;
#   - the batch endpoint at 100 messages per request (messages/s);
#   - gateway RSS after the run.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${BENCH_DURATION:-15s}"
REDIS_PORT="${BENCH_REDIS_PORT:-6391}"
GW_PORT="${BENCH_GATEWAY_PORT:-3391}"
WORK="$(mktemp -d)"
export PATH="$HOME/.cargo/bin:$PATH"

command -v oha >/dev/null 2>&1 || cargo install oha --locked
cargo build --release -p wal-gateway
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

cleanup() {
  [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null || true
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --dir "$WORK" --logfile "$WORK/redis.log"
for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

WAL_LISTEN="127.0.0.1:$GW_PORT" WAL_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
  WAL_DATABASE_URL="sqlite://$WORK/ns.db?mode=rwc" WAL_API_KEYS=bench-key-0123456789 \
  WAL_ADMIN_API_KEYS=bench-admin-0123456789 WAL_LOG_LEVEL=warn \
  "$target_dir/release/wal-gateway" &
GW_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$GW_PORT/api/v1/health/liveness" >/dev/null 2>&1 && break; sleep 0.1; done

curl -fs -o /dev/null -X POST "http://127.0.0.1:$GW_PORT/api/v1/namespaces" \
  -H 'X-API-Key: bench-admin-0123456789' -H 'Content-Type: application/json' \
  -d '{"name":"bench","shardConfig":{"strategy":"round_robin","partitionCount":4},
       "backendConfig":{"retention":{"maxLen":200000}},
       "targetConfigs":[{"identifier":"sink","type":"http","config":{"url":"http://127.0.0.1:9/x"}}]}'

# A payload whose serialized JSON is exactly 200 bytes.
PAYLOAD=$(python3 -c 'import json; pad=200-len(json.dumps({"data":""},separators=(",",":"))); print(json.dumps({"data":"x"*pad},separators=(",",":")))')
SINGLE="{\"namespace\":\"bench\",\"payload\":$PAYLOAD}"
python3 - "$SINGLE" > "$WORK/batch.json" <<'PY'
import json, sys
one = json.loads(sys.argv[1])
print(json.dumps({"messages": [one] * 100}, separators=(",", ":")))
PY
VALUE=$(python3 -c 'print("x"*200)')

summary() { python3 - "$1" "$2" <<'PY'
import json, sys
label, path = sys.argv[1], sys.argv[2]
d = json.load(open(path))
s = d["summary"]; lat = d.get("latencyPercentiles", {})
codes = d.get("statusCodeDistribution", {})
print(f"{label}: {s['requestsPerSec']:.0f} req/s, success {s['successRate']*100:.2f}%, "
      f"p50 {lat.get('p50', 0)*1000:.2f} ms, p99 {lat.get('p99', 0)*1000:.2f} ms, statuses {codes}")
PY
}
rps() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["requestsPerSec"])' "$1"; }

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB; redis $(redis-server --version | awk '{print $3}'); duration $DURATION per run"
echo "== raw Redis XADD ceiling (redis-benchmark, 50 clients, 200-byte value)"
redis-benchmark -p "$REDIS_PORT" -c 50 -n 200000 -q XADD bench:raw MAXLEN '~' 100000 '*' f "$VALUE" | tr '\r' '\n' | tail -1 | sed 's/^/  unpipelined: /'
redis-benchmark -p "$REDIS_PORT" -c 50 -n 1000000 -P 16 -q XADD bench:raw MAXLEN '~' 100000 '*' f "$VALUE" | tr '\r' '\n' | tail -1 | sed 's/^/  pipeline 16: /'

URL="http://127.0.0.1:$GW_PORT/api/v1/wal/write"
HDRS=(-H 'X-API-Key: bench-key-0123456789' -H 'Content-Type: application/json')

echo "== warm-up"
oha --no-tui -c 64 -z 3s -m POST "${HDRS[@]}" -d "$SINGLE" --output-format json "$URL" > "$WORK/warm.json"

echo "== single writes, 64 connections, max rate"
oha --no-tui -c 64 -z "$DURATION" -m POST "${HDRS[@]}" -d "$SINGLE" --output-format json "$URL" > "$WORK/max.json"
summary "  single max" "$WORK/max.json"

echo "== single writes at a fixed 5,000/s, 64 connections"
oha --no-tui -c 64 -q 5000 -z "$DURATION" -m POST "${HDRS[@]}" -d "$SINGLE" --output-format json "$URL" > "$WORK/fixed.json"
summary "  fixed 5000/s" "$WORK/fixed.json"

echo "== batch endpoint, 100 messages per request, 16 connections"
oha --no-tui -c 16 -z "$DURATION" -m POST "${HDRS[@]}" -D "$WORK/batch.json" --output-format json "$URL/batch" > "$WORK/batch-out.json"
summary "  batch" "$WORK/batch-out.json"
echo "  batch messages/s: $(python3 -c "print(round($(rps "$WORK/batch-out.json") * 100))")"

echo "== gateway after the run"
grep -E 'VmRSS|VmHWM' "/proc/$GW_PID/status" | sed 's/^/  /'
echo "  stream entries: $(for p in 0 1 2 3; do redis-cli -p "$REDIS_PORT" XLEN "wal:{bench}:p:$p"; done | paste -sd+ | bc) (trimmed to ~200k per partition)"
