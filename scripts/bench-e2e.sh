#!/usr/bin/env bash
# `just bench-e2e`: end-to-end delivery benchmark (gateway → Redis → worker →
# HTTP target), issue "delivery worker".
#
# Release build; a private Redis (no persistence) on its own port, the
# gateway, the worker, the HTTP sink (wal-bench-sink) and the load generator
# (wal-bench-load) all on this machine. Payloads are 200 bytes and carry the
# load generator's send time (`sentAtUs`). Scenarios:
#   a1. drain: 200,000 messages preloaded through the batch endpoint while the
#       worker is stopped (SIGSTOP), then delivered at the worker's max rate;
#   a2. sustained: a fixed 10,000 messages/s (batch endpoint) for 20 s with
#       every process running — does delivery keep up?
#   b.  latency: a fixed 2,000 single writes/s for 30 s → end-to-end latency;
#   c.  delays: a fixed 1,000 delayed (2 s) writes/s for 30 s → lateness;
#   d.  soak: a fixed 5,000 single writes/s for 5 minutes → worker RSS every
#       10 s (BENCH_LONG=0 skips it).
# Every scenario checks that the sink received every accepted message (no
# loss) and reports the CPU seconds each process used per 1,000 delivered
# messages (utime + stime from /proc/<pid>/stat).
#
# Settings (environment): BENCH_LONG (1), BENCH_LONG_SECS (300),
# BENCH_SECS (30, scenarios b and c), BENCH_PRELOAD (200000),
# BENCH_SUSTAINED_RATE (10000), BENCH_SCENARIOS ("a1 a2 b c d"), BENCH_OUT (a directory to keep the raw JSON
# results and logs in), BENCH_PERF (1: record `perf` of the worker during
# the drain, into BENCH_OUT), ports BENCH_REDIS_PORT (6392),
# BENCH_GATEWAY_PORT (3392), BENCH_WORKER_PORT (3393), BENCH_SINK_PORT (3394).
# BENCH_WORKER_BIN runs another worker build (A/B comparisons). Worker
# tuning flags (WAL_WORKER_BATCH, WAL_WORKER_MAX_IN_FLIGHT,
# WAL_TARGET_CONCURRENCY, …) are passed through when set.
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_PORT="${BENCH_REDIS_PORT:-6392}"
GW_PORT="${BENCH_GATEWAY_PORT:-3392}"
WK_PORT="${BENCH_WORKER_PORT:-3393}"
SINK_PORT="${BENCH_SINK_PORT:-3394}"
LONG="${BENCH_LONG:-1}"
LONG_SECS="${BENCH_LONG_SECS:-300}"
SECS="${BENCH_SECS:-30}"
PRELOAD="${BENCH_PRELOAD:-200000}"
SUSTAINED_RATE="${BENCH_SUSTAINED_RATE:-10000}"
PERF="${BENCH_PERF:-0}"
SCENARIOS=" ${BENCH_SCENARIOS:-a1 a2 b c d} "
OUT="${BENCH_OUT:-}"
WORK="$(mktemp -d)"
RESULTS="$WORK/results.jsonl"
API_KEY=bench-key-0123456789
ADMIN_KEY=bench-admin-0123456789
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release -p wal-gateway -p wal-worker -p wal-bench
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
BIN="$target_dir/release"
WORKER_BIN="${BENCH_WORKER_BIN:-$BIN/wal-worker}" # another build, to compare two workers

cleanup() {
  for pid in "${SAMPLER_PID:-}" "${WK_PID:-}" "${GW_PID:-}" "${SINK_PID:-}"; do
    if [ -n "$pid" ]; then
      kill -CONT "$pid" 2>/dev/null || true
      kill "$pid" 2>/dev/null || true
    fi
  done
  wait 2>/dev/null || true
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    cp "$WORK"/*.jsonl "$WORK"/*.log "$WORK"/*.txt "$OUT"/ 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_http() { # url, what
  for _ in $(seq 1 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$2 did not come up ($1)" >&2
  exit 1
}

# ---------------------------------------------------------------- processes
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --dir "$WORK" --logfile "$WORK/redis.log"
for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_PID=$(redis-cli -p "$REDIS_PORT" info server | tr -d '\r' | awk -F: '/^process_id/{print $2}')

COMMON_ENV=(WAL_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" WAL_DATABASE_URL="sqlite://$WORK/ns.db?mode=rwc"
  WAL_LOG_LEVEL=warn)

env "${COMMON_ENV[@]}" WAL_LISTEN="127.0.0.1:$GW_PORT" WAL_API_KEYS="$API_KEY" \
  WAL_ADMIN_API_KEYS="$ADMIN_KEY" "$BIN/wal-gateway" >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
wait_http "http://127.0.0.1:$GW_PORT/api/v1/health/liveness" gateway

"$BIN/wal-bench-sink" --listen "127.0.0.1:$SINK_PORT" >"$WORK/sink.log" 2>&1 &
SINK_PID=$!
wait_http "http://127.0.0.1:$SINK_PORT/count" sink
SINK="http://127.0.0.1:$SINK_PORT"

create_ns() { # name, body mode, path
  curl -fsS -o /dev/null -X POST "http://127.0.0.1:$GW_PORT/api/v1/namespaces" \
    -H "X-API-Key: $ADMIN_KEY" -H 'Content-Type: application/json' \
    -d "{\"name\":\"$1\",\"shardConfig\":{\"strategy\":\"round_robin\",\"partitionCount\":4},
         \"backendConfig\":{\"retention\":{\"maxLen\":300000}},
         \"targetConfigs\":[{\"identifier\":\"sink\",\"type\":\"http\",
           \"config\":{\"url\":\"$SINK/$3\",\"timeoutMs\":5000,\"body\":\"$2\"}}]}"
}
# Payload body mode (the default) for throughput and the soak; the whole
# envelope (with createdAtMs and dueAtMs) for the latency and delay runs.
create_ns bench payload p
create_ns benchenv envelope e

start_worker() {
  env "${COMMON_ENV[@]}" WAL_WORKER_LISTEN="127.0.0.1:$WK_PORT" "$WORKER_BIN" >>"$WORK/worker.log" 2>&1 &
  WK_PID=$!
}
stop_worker() {
  kill "$WK_PID"
  wait "$WK_PID" || true
}
start_worker
wait_http "http://127.0.0.1:$WK_PORT/health/readiness" worker
for ns in bench benchenv; do
  for _ in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" XINFO GROUPS "wal:{$ns}:p:3" 2>/dev/null | grep -q name && break
    sleep 0.1
  done
done

# ---------------------------------------------------------------- helpers
CLK_TCK=$(getconf CLK_TCK)
ticks() { # utime + stime of a process (0 once it is gone)
  { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null || echo; } | awk '{print $12 + $13}'
}
# Busy ticks of the whole machine (all CPUs): what other processes used
# during a scenario is this minus ours — the noise indicator.
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
cpu_snapshot() { echo "$(ticks "$WK_PID") $(ticks "$GW_PID") $(ticks "$SINK_PID") $(ticks "$REDIS_PID") $(machine_ticks) $(date +%s%N)"; }
cmdstats() { redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' | grep '^cmdstat_' || true; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/{print $2}' "/proc/$1/status"; }

load() { # load generator arguments…; prints its JSON report
  "$BIN/wal-bench-load" --url "http://127.0.0.1:$GW_PORT" --api-key "$API_KEY" "$@"
}
accepted_of() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["accepted"])' "$1"; }
# Polled several times a second while a scenario runs: no interpreter start-up.
distinct() { curl -fs "$SINK/count" | grep -o '"distinct":[0-9]*' | cut -d: -f2; }

# Waits until the sink has `expected` distinct ids, or nothing arrives for
# `quiet` seconds. Prints the seconds waited.
wait_delivered() { # expected, quiet
  local expected=$1 quiet=${2:-15} last=-1 still=0 start now got
  start=$(date +%s.%N)
  while :; do
    got=$(distinct)
    [ "$got" -ge "$expected" ] && break
    if [ "$got" -eq "$last" ]; then
      still=$((still + 1))
      [ "$still" -ge $((quiet * 5)) ] && { echo "  ! gave up waiting: $got of $expected delivered" >&2; break; }
    else
      still=0; last=$got
    fi
    sleep 0.2
  done
  now=$(date +%s.%N)
  python3 -c "print(round($now - $start, 2))"
}

# Records one scenario: name, load report JSON, cpu before, cpu after, extra JSON.
record() {
  local name=$1 report=$2 before=$3 after=$4 extra=${5:-"{}"}
  curl -fs "$SINK/stats" >"$WORK/stats.json"
  cmdstats >"$WORK/cs-after.txt"
  python3 - "$name" "$report" "$before" "$after" "$extra" "$CLK_TCK" "$WORK/stats.json" \
    "$WORK/cs-before.txt" "$WORK/cs-after.txt" >>"$RESULTS" <<'PY'
import json, sys
name, report, before, after, extra, hz, stats_path, cs_before, cs_after = sys.argv[1:]
def cmdstats(path):
    out = {}
    for line in open(path):
        cmd, _, rest = line.strip().partition(":")
        kv = dict(x.split("=") for x in rest.split(","))
        out[cmd[len("cmdstat_"):]] = (int(kv["calls"]), int(kv["usec"]))
    return out
cb, ca = cmdstats(cs_before), cmdstats(cs_after)
redis_cmds = {c: {"calls": ca[c][0] - cb.get(c, (0, 0))[0], "usec": ca[c][1] - cb.get(c, (0, 0))[1]}
              for c in ca if ca[c][0] - cb.get(c, (0, 0))[0] > 0}
report = json.loads(report) if report else {}
stats = json.load(open(stats_path))
b = [int(x) for x in before.split()]; a = [int(x) for x in after.split()]
cpu = {p: (a[i] - b[i]) / int(hz) for i, p in enumerate(["worker", "gateway", "sink", "redis"])}
if report.get("cpuSeconds") is not None:
    cpu["load"] = report["cpuSeconds"]
wall = (a[5] - b[5]) / 1e9
busy = (a[4] - b[4]) / int(hz)
machine = {"wallSecs": round(wall, 2), "busyCores": round(busy / wall, 2) if wall else 0,
           "otherCores": max(0.0, round((busy - sum(cpu.values())) / wall, 2)) if wall else 0}
print(json.dumps({"scenario": name, "load": report, "sink": stats, "cpuSeconds": cpu, "machine": machine,
                  "redisCommands": redis_cmds, **json.loads(extra)}))
PY
}

show() { # prints the last recorded scenario
  tail -1 "$RESULTS" >"$WORK/last.json"
  python3 - "$WORK/last.json" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1])); s = r["sink"]; l = r["load"]; c = r["cpuSeconds"]
acc = l.get("accepted", 0); got = s["distinct"]; wl = l.get("writeLatency", {})
line = (f"  writes: accepted {acc}, failed {l.get('failed', 0)}, {l.get('acceptedPerSec', 0):.0f}/s accepted"
        f" (write p50 {wl.get('p50Ms', 0):.2f} ms, p99 {wl.get('p99Ms', 0):.2f} ms)")
if l.get("mode") == "rate":
    g = l["scheduleLag"]
    line += f"; schedule lag p99 {g['p99Ms']:.2f} ms, max {g['maxMs']:.1f} ms, fell behind: {l['fellBehind']}"
print(line)
if l.get("firstError"):
    print(f"  first write error: {l['firstError']}")
verdict = "NO LOSS" if got == acc else f"LOSS: {acc - got} missing"
print(f"  sink: {got} distinct of {acc} accepted ({verdict}), {s['duplicates']} duplicates,"
      f" {s['retried']} retried deliveries; {s['ratePerSec']:.0f} deliveries/s first->last,"
      f" {s['rateMid80PerSec']:.0f}/s over the middle 80%")
for key, label in (("latency", "latency (sentAtUs -> received)"),
                   ("acceptLatency", "accept latency (createdAtMs -> received)"),
                   ("lateness", "lateness (dueAtMs -> received)")):
    d = s[key]
    if d["count"]:
        print(f"  {label}: p50 {d['p50Ms']:.2f} ms, p90 {d['p90Ms']:.2f}, p99 {d['p99Ms']:.2f},"
              f" p99.9 {d['p999Ms']:.2f}, max {d['maxMs']:.2f} (n={d['count']})")
per = lambda v: v * 1000 / got if got else 0
print("  CPU s per 1,000 delivered: " + ", ".join(f"{p} {per(v):.3f}" for p, v in c.items())
      + "  (CPU s: " + ", ".join(f"{p} {v:.1f}" for p, v in c.items()) + ")")
m = r["machine"]
print(f"  machine over {m['wallSecs']} s: {m['busyCores']} of {os.cpu_count()} cores busy, of which other processes"
      f" (not this benchmark) {m['otherCores']}" + ("  <- NOISY" if m["otherCores"] > 0.1 else ""))
top = sorted(r["redisCommands"].items(), key=lambda kv: -kv[1]["calls"])[:8]
if got:
    print("  redis commands per delivered message: " + ", ".join(
        f"{c} {v['calls'] / got:.2f} ({v['usec'] / got:.1f} us)" for c, v in top))
for k in ("drainSecs", "tailSecs"):
    if k in r:
        print(f"  {k}: {r[k]}")
PY
}

echo "== machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem/{print $2}') GiB;" \
  "redis $(redis-server --version | awk '{print $3}' | cut -d= -f2); worker settings:" \
  "$(env | grep -E '^WAL_(WORKER|TARGET)_' | tr '\n' ' ' || true)(defaults otherwise)"

echo "== warm-up (both namespaces)"
load --namespace bench --rate 2000 --duration 3 --connections 16 >/dev/null
load --namespace benchenv --rate 1000 --duration 2 --connections 16 >/dev/null
sleep 2
curl -fs -X POST "$SINK/reset"

# ---------------------------------------------------------------- a1: drain
if [[ "$SCENARIOS" == *" a1 "* ]]; then
echo "== a1. drain: $PRELOAD messages preloaded (batch endpoint, worker stopped), then delivered at max rate by a fresh worker"
# The worker is stopped (SIGTERM), not paused: a SIGSTOP longer than the
# Redis timeout strands the entries of the blocked XREADGROUP until the
# visibility timeout (see docs/benchmarks.md).
stop_worker
report=$(load --namespace bench --rate 0 --duration 600 --total "$PRELOAD" --batch 100 --connections 4)
echo "  preload: $(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("%d accepted in %.1f s (%.0f/s)" % (r["accepted"], r["elapsedSecs"], r["acceptedPerSec"]))' "$report")"
acc=$(accepted_of "$report")
before=$(cpu_snapshot) # the worker's share is 0: it is not running
cmdstats >"$WORK/cs-before.txt"
start_worker
if [ "$PERF" = 1 ] && [ -n "$OUT" ]; then
  perf record -F 999 ${BENCH_PERF_ARGS:-} -p "$WK_PID" -o "$WORK/perf-worker.data" -- sleep 8 >/dev/null 2>&1 &
  PERF_PID=$!
elif [ "$PERF" = stat ]; then
  sleep 1
  perf stat -e "${BENCH_PERF_EVENTS:-task-clock,context-switches,syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_sendto,syscalls:sys_enter_read,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex}" \
    -p "$WK_PID" -o "$WORK/perf-stat.txt" -- sleep 5 >/dev/null 2>&1 &
  PERF_PID=$!
fi
drain=$(wait_delivered "$acc" 20)
after=$(cpu_snapshot)
if [ "$PERF" = stat ]; then
  wait "$PERF_PID" || true
  sed 's/^/  /' "$WORK/perf-stat.txt" | grep -v '^ *$' || true
elif [ -n "${PERF_PID:-}" ]; then
  wait "$PERF_PID" || true
  perf report -i "$WORK/perf-worker.data" --no-children --percent-limit 0.5 --stdio 2>/dev/null | head -300 >"$WORK/perf-worker.txt" || true
  mkdir -p "$OUT" && cp "$WORK/perf-worker.data" "$OUT/"
fi
record a1-drain "$report" "$before" "$after" "{\"drainSecs\": $drain}"
show
curl -fs -X POST "$SINK/reset"
fi

# ---------------------------------------------------------------- a2: sustained
if [[ "$SCENARIOS" == *" a2 "* ]]; then
echo "== a2. sustained: fixed $SUSTAINED_RATE messages/s for 20 s (batch endpoint, 20 per request), everything running"
before=$(cpu_snapshot)
cmdstats >"$WORK/cs-before.txt"
report=$(load --namespace bench --rate "$SUSTAINED_RATE" --duration 20 --batch 20 --connections 8)
tail=$(wait_delivered "$(accepted_of "$report")")
after=$(cpu_snapshot)
record a2-sustained "$report" "$before" "$after" "{\"tailSecs\": $tail}"
show
curl -fs -X POST "$SINK/reset"
fi

# ---------------------------------------------------------------- b: latency
if [[ "$SCENARIOS" == *" b "* ]]; then
echo "== b. latency: fixed 2,000 single writes/s for $SECS s (envelope body)"
before=$(cpu_snapshot)
cmdstats >"$WORK/cs-before.txt"
report=$(load --namespace benchenv --rate 2000 --duration "$SECS" --connections 16)
tail=$(wait_delivered "$(accepted_of "$report")")
after=$(cpu_snapshot)
record b-latency-2000 "$report" "$before" "$after" "{\"tailSecs\": $tail}"
show
curl -fs -X POST "$SINK/reset"
fi

# ---------------------------------------------------------------- c: delays
if [[ "$SCENARIOS" == *" c "* ]]; then
echo "== c. delays: fixed 1,000 writes/s delayed by 2 s, for $SECS s (envelope body)"
before=$(cpu_snapshot)
cmdstats >"$WORK/cs-before.txt"
report=$(load --namespace benchenv --rate 1000 --duration "$SECS" --connections 16 --delay-secs 2)
tail=$(wait_delivered "$(accepted_of "$report")")
after=$(cpu_snapshot)
record c-delayed-1000 "$report" "$before" "$after" "{\"tailSecs\": $tail}"
show
curl -fs -X POST "$SINK/reset"
fi

# ---------------------------------------------------------------- d: soak
if [ "$LONG" = 1 ] && [[ "$SCENARIOS" == *" d "* ]]; then
  echo "== d. soak: fixed 5,000 single writes/s for $LONG_SECS s; RSS every 10 s"
  rss_start=$(rss_kb "$WK_PID")
  (
    t=0
    while :; do
      echo "$t $(rss_kb "$WK_PID") $(rss_kb "$GW_PID") $(rss_kb "$SINK_PID") $(redis-cli -p "$REDIS_PORT" info memory | tr -d '\r' | awk -F: '/^used_memory:/{print int($2/1024)}')"
      sleep 10; t=$((t + 10))
    done
  ) >"$WORK/rss.txt" &
  SAMPLER_PID=$!
  before=$(cpu_snapshot)
  cmdstats >"$WORK/cs-before.txt"
  report=$(load --namespace bench --rate 5000 --duration "$LONG_SECS" --connections 32)
  after_load_rss=$(rss_kb "$WK_PID")
  tail=$(wait_delivered "$(accepted_of "$report")")
  after=$(cpu_snapshot)
  kill "$SAMPLER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=
  rss_series=$(awk '{printf "%s[%d,%d,%d,%d,%d]", (NR>1?",":""), $1, $2, $3, $4, $5}' "$WORK/rss.txt")
  record d-soak-5000 "$report" "$before" "$after" \
    "{\"tailSecs\": $tail, \"workerRssStartKb\": $rss_start, \"workerRssEndOfLoadKb\": $after_load_rss, \"workerHwmKb\": $(hwm_kb "$WK_PID"), \"rssSeriesKb\": [$rss_series]}"
  show
  echo "  RSS series (s: worker / gateway / sink MB, redis used_memory MB):"
  awk '{printf "    %4ds  worker %6.1f  gateway %6.1f  sink %6.1f  redis %7.1f\n", $1, $2/1024, $3/1024, $4/1024, $5/1024}' "$WORK/rss.txt"
  echo "  worker RSS at the end of the load: $(python3 -c "print(round($after_load_rss/1024, 1))") MB (peak VmHWM $(python3 -c "print(round($(hwm_kb "$WK_PID")/1024, 1))") MB)"
else
  echo "== d. soak skipped (BENCH_LONG=0)"
fi

# ---------------------------------------------------------------- summary
echo "== worker and gateway log lines at WARN or above: worker $(grep -c -E 'WARN|ERROR' "$WORK/worker.log" || true), gateway $(grep -c -E 'WARN|ERROR' "$WORK/gateway.log" || true)"
grep -E 'WARN|ERROR' "$WORK/worker.log" | head -5 | sed 's/^/  /' || true
echo "== summary vs targets"
python3 - "$RESULTS" <<'PY'
import json, sys
rs = {}
for line in open(sys.argv[1]):
    r = json.loads(line); rs[r["scenario"]] = r
def row(label, value, target, ok):
    print(f"  {label:<58} {value:<26} target {target:<10} {'PASS' if ok else 'MISS'}")
def lossless(r):
    return r["sink"]["distinct"] == r["load"]["accepted"] and r["load"]["failed"] == 0
if "a1-drain" in rs:
    s = rs["a1-drain"]["sink"]
    row("deliveries/s at max rate (drain of the preload, first→last)", f"{s['ratePerSec']:,.0f}/s (mid-80% {s['rateMid80PerSec']:,.0f})", "≥ 10,000", s["ratePerSec"] >= 10000)
if "a2-sustained" in rs:
    r = rs["a2-sustained"]; s = r["sink"]
    kept = r["tailSecs"] <= 2 and not r["load"]["fellBehind"]
    row(f"sustained {r['load']['targetRate']:,.0f} msg/s with the gateway loaded", f"{s['rateMid80PerSec']:,.0f}/s, tail {r['tailSecs']} s", "keeps up", kept)
if "b-latency-2000" in rs:
    s = rs["b-latency-2000"]["sink"]
    row("e2e latency p99 at 2,000/s (sentAtUs→received)", f"{s['latency']['p99Ms']:.2f} ms (p50 {s['latency']['p50Ms']:.2f})", "≤ 20 ms", s["latency"]["p99Ms"] <= 20)
if "c-delayed-1000" in rs:
    s = rs["c-delayed-1000"]["sink"]
    row("delay lateness p99 at 1,000 delayed/s", f"{s['lateness']['p99Ms']:.2f} ms (p50 {s['lateness']['p50Ms']:.2f})", "≤ 20 ms", s["lateness"]["p99Ms"] <= 20)
if "d-soak-5000" in rs:
    r = rs["d-soak-5000"]; pts = [(x[0], x[1] / 1024) for x in r["rssSeriesKb"]]
    end = r["workerRssEndOfLoadKb"] / 1024
    # Flat: the least-squares trend over the last two thirds of the run,
    # extrapolated over the whole run, grows by at most 10 MB.
    later = pts[len(pts) // 3:] if len(pts) >= 3 else pts
    n = len(later); mx = sum(t for t, _ in later) / n; my = sum(v for _, v in later) / n
    var = sum((t - mx) ** 2 for t, _ in later)
    slope = sum((t - mx) * (v - my) for t, v in later) / var if var else 0.0
    growth = slope * (pts[-1][0] - pts[0][0] if len(pts) > 1 else 0)
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    row("worker RSS at the end of the soak (5,000/s)",
        f"{end:.1f} MB (range {lo:.0f}-{hi:.0f}, trend {growth:+.1f} MB/run)", "≤ 100 MB, flat",
        end <= 100 and hi <= 100 and growth <= 10)
for name, r in rs.items():
    got = r["sink"]["distinct"]
    cpu = r["cpuSeconds"]
    per = ", ".join(f"{p} {v*1000/got:.3f}" for p, v in cpu.items() if v is not None and got)
    print(f"  {name:<16} loss check: {'no loss' if lossless(r) else 'LOSS/FAILED WRITES'} ({got}/{r['load']['accepted']}, dup {r['sink']['duplicates']});  CPU s per 1,000 delivered: {per}")
PY
