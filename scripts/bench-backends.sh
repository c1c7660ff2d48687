#!/usr/bin/env bash
# `just bench-backends`: the three log backends side by side in one run —
# Redis Streams, Kafka (a tansu broker, in-memory storage) and SQS (a moto
# server) — issue "benchmark the Kafka and SQS backends".
#
# Release build; on this one machine, each on a loopback port of its own: a
# private redis-server (no persistence), tansu (scripts/tansu.sh), moto
# (scripts/moto.sh), wal-gateway, wal-worker (default settings), the HTTP
# sink wal-bench-sink and the load generator wal-bench-load. Namespaces
# `bench-redis`, `bench-kafka`, `bench-sqs`: 4 partitions, round robin, one
# HTTP target → the sink (payload body). Payloads are 200 bytes and carry
# the load generator's send time (`sentAtUs`).
#
# One backend after the other (the next one's namespace is created when its
# turn comes), each in this order:
#   0. set-up: namespace `bench-<backend>`, a few warm-up writes delivered by
#      the worker (consumer group / queue in place), worker stopped.
#   1. ingest at max rate, BENCH_SECS each: single writes, then the batch
#      endpoint → accepted writes/s and answers by HTTP status. The worker is
#      NOT running (stopped with SIGTERM, not paused): this measures the
#      gateway and the broker alone, as `just bench` does, on a 2-core
#      machine where a worker delivering at the same time would take CPU from
#      both. (A SIGSTOPped worker is worse than a stopped one: a paused Redis
#      read, Kafka session or SQS long poll outlives its timeout and strands
#      entries until the visibility timeout.) The writes go to a separate
#      namespace `bench-<backend>-ingest`, deleted before the worker starts
#      again, so this backlog is never delivered and does not pollute 2 and 3
#      (a fresh one for each of the two runs).
#   2. end-to-end deliveries/s: BENCH_PRELOAD messages (BENCH_SQS_PRELOAD
#      for SQS) written through the batch endpoint while the worker is
#      stopped, then a fresh worker drains them; rate at the sink, first →
#      last receive and over the middle 80% of receives.
#   3. a fixed BENCH_RATE (2,000) single writes/s for BENCH_SECS,
#      BENCH_FIXED_CONNECTIONS (64) connections, with the worker running → write latency p50/p99/max,
#      whether the rate was held (the load generator's schedule lag; no
#      request is sent after BENCH_SECS + 2 s, the rest count as unsent),
#      end-to-end latency (send → sink).
# Loss check (2 and 3): the load generator keeps the id of every accepted
# message and the sink every id it received: "lost" = accepted ids never
# delivered, "extra" = delivered ids whose write was not answered with an id
# (UNKNOWN outcomes that did land), duplicates = deliveries of an id twice.
# CPU seconds per process (utime + stime from /proc) are recorded for every
# step, with the CPU other processes used (noise).
#
# SQS runs against moto, whose cost per request grows with the queue's depth
# and which serves one request at a time (Python): it gets a smaller preload
# and less concurrency (more only queues requests inside moto until the
# gateway's 5 s SQS timeout answers UNKNOWN). Between steps the script waits
# until the broker is idle again (moto goes on serving requests whose client
# gave up).
#
# Settings (environment): BENCH_BACKENDS ("redis kafka sqs"), BENCH_SECS
# (20), BENCH_PRELOAD (20000), BENCH_SQS_PRELOAD (1000), BENCH_RATE (2000),
# BENCH_FIXED_CONNECTIONS (64),
# BENCH_INGEST_CONNECTIONS (64), BENCH_BATCH (100), BENCH_BATCH_CONNECTIONS
# (16), for SQS BENCH_SQS_INGEST_CONNECTIONS (4), BENCH_SQS_BATCH (10: one
# SendMessageBatch per request), BENCH_SQS_BATCH_CONNECTIONS (2);
# BENCH_LOAD_THREADS (2: the load generator's threads at max rate),
# BENCH_KAFKA_PROPERTIES (a JSON object of extra librdkafka properties for
# the Kafka namespaces, e.g. '{"fetch.wait.max.ms":"10"}'; default none),
# BENCH_OUT (a file: the JSON lines of every step, and a summary line per
# backend), BENCH_LOGS (a directory to keep the processes' logs in);
# ports BENCH_REDIS_PORT (6395), BENCH_TANSU_PORT (9395), BENCH_MOTO_PORT
# (4595), BENCH_GATEWAY_PORT (3395), BENCH_WORKER_PORT (3396),
# BENCH_SINK_PORT (3397). Worker and gateway settings (WAL_WORKER_*,
# WAL_TARGET_CONCURRENCY, WAL_SQS_WAIT_SECS, WAL_KAFKA_*, …) pass through.
set -euo pipefail
cd "$(dirname "$0")/.."

BACKENDS="${BENCH_BACKENDS:-redis kafka sqs}"
SECS="${BENCH_SECS:-20}"
PRELOAD="${BENCH_PRELOAD:-20000}"
SQS_PRELOAD="${BENCH_SQS_PRELOAD:-1000}"
RATE="${BENCH_RATE:-2000}"
FIXED_CONNS="${BENCH_FIXED_CONNECTIONS:-64}"
INGEST_CONNS="${BENCH_INGEST_CONNECTIONS:-64}"
BATCH="${BENCH_BATCH:-100}"
BATCH_CONNS="${BENCH_BATCH_CONNECTIONS:-16}"
SQS_INGEST_CONNS="${BENCH_SQS_INGEST_CONNECTIONS:-4}"
SQS_BATCH="${BENCH_SQS_BATCH:-10}"
SQS_BATCH_CONNS="${BENCH_SQS_BATCH_CONNECTIONS:-2}"
LOAD_THREADS="${BENCH_LOAD_THREADS:-2}"
KAFKA_PROPERTIES="${BENCH_KAFKA_PROPERTIES:-}"
OUT="${BENCH_OUT:-}"
LOGS="${BENCH_LOGS:-}"
REDIS_PORT="${BENCH_REDIS_PORT:-6395}"
TANSU_PORT="${BENCH_TANSU_PORT:-9395}"
MOTO_PORT="${BENCH_MOTO_PORT:-4595}"
GW_PORT="${BENCH_GATEWAY_PORT:-3395}"
WK_PORT="${BENCH_WORKER_PORT:-3396}"
SINK_PORT="${BENCH_SINK_PORT:-3397}"
WORK="$(mktemp -d)"
RESULTS="$WORK/results.jsonl"
API_KEY=bench-key-0123456789
ADMIN_KEY=bench-admin-0123456789
export PATH="$HOME/.cargo/bin:$PATH"
STARTED_AT=$(date +%s)

for b in $BACKENDS; do
  case "$b" in redis | kafka | sqs) ;; *) echo "BENCH_BACKENDS: unknown backend $b" >&2; exit 2 ;; esac
done
for p in "$REDIS_PORT" "$TANSU_PORT" "$MOTO_PORT" "$GW_PORT" "$WK_PORT" "$SINK_PORT"; do
  if ss -ltnH "sport = :$p" 2>/dev/null | grep -q .; then
    echo "port $p is already in use: set the BENCH_*_PORT variables" >&2
    exit 1
  fi
done
[[ " $BACKENDS " == *" kafka "* ]] && { command -v tansu >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/tansu" ] || scripts/install-tools.sh; }
[[ " $BACKENDS " == *" sqs "* ]] && { moto_server --help >/dev/null 2>&1 || scripts/install-tools.sh; }

cargo build --release -p wal-gateway -p wal-worker -p wal-bench
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
BIN="$target_dir/release"

cleanup() {
  for pid in "${WK_PID:-}" "${GW_PID:-}" "${SINK_PID:-}" "${TANSU_PID:-}" "${MOTO_PID:-}"; do
    if [ -n "$pid" ]; then
      kill -CONT "$pid" 2>/dev/null || true
      kill "$pid" 2>/dev/null || true
    fi
  done
  wait 2>/dev/null || true
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  if [ -n "$LOGS" ]; then
    mkdir -p "$LOGS"
    cp "$WORK"/*.jsonl "$WORK"/*.log "$LOGS"/ 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_http() { # url, what
  for _ in $(seq 1 300); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$2 did not come up ($1)" >&2
  exit 1
}
wait_port() { # port, what
  for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "$2 did not listen on $1" >&2
  exit 1
}

# ---------------------------------------------------------------- processes
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --dir "$WORK" --logfile "$WORK/redis.log"
for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_PID=$(redis-cli -p "$REDIS_PORT" info server | tr -d '\r' | awk -F: '/^process_id/{print $2}')

if [[ " $BACKENDS " == *" kafka "* ]]; then
  # tansu.sh execs the broker: $! is tansu itself.
  RUST_LOG="${RUST_LOG:-warn}" scripts/tansu.sh "$TANSU_PORT" "$WORK/tansu" >"$WORK/tansu.log" 2>&1 &
  TANSU_PID=$!
  wait_port "$TANSU_PORT" tansu
fi
if [[ " $BACKENDS " == *" sqs "* ]]; then
  # moto.sh execs moto_server (through the pyenv shim, which execs too).
  scripts/moto.sh "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
  MOTO_PID=$!
  wait_http "http://127.0.0.1:$MOTO_PORT/moto-api/" moto
  printf 'bench\n' >"$WORK/aws-key-id"
  printf 'bench\n' >"$WORK/aws-secret"
fi

COMMON_ENV=(WAL_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" WAL_DATABASE_URL="sqlite://$WORK/ns.db?mode=rwc"
  WAL_SECRET_DIR="$WORK" WAL_LOG_LEVEL=warn)

env "${COMMON_ENV[@]}" WAL_LISTEN="127.0.0.1:$GW_PORT" WAL_API_KEYS="$API_KEY" \
  WAL_ADMIN_API_KEYS="$ADMIN_KEY" "$BIN/wal-gateway" >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
wait_http "http://127.0.0.1:$GW_PORT/api/v1/health/liveness" gateway

"$BIN/wal-bench-sink" --listen "127.0.0.1:$SINK_PORT" >"$WORK/sink.log" 2>&1 &
SINK_PID=$!
wait_http "http://127.0.0.1:$SINK_PORT/count" sink
SINK="http://127.0.0.1:$SINK_PORT"

start_worker() {
  env "${COMMON_ENV[@]}" WAL_WORKER_LISTEN="127.0.0.1:$WK_PORT" "$BIN/wal-worker" >>"$WORK/worker.log" 2>&1 &
  WK_PID=$!
  wait_http "http://127.0.0.1:$WK_PORT/health/readiness" worker
}
stop_worker() { # SIGTERM: the worker stops reading, finishes or hands back what is in flight
  if [ -n "${WK_PID:-}" ]; then
    kill "$WK_PID" 2>/dev/null || true
    wait "$WK_PID" 2>/dev/null || true
    WK_PID=
  fi
}

# The namespace body of backend $1 named $2 with retention maxLen $3.
ns_body() {
  python3 - "$1" "$2" "$3" "$SINK" "$TANSU_PORT" "$MOTO_PORT" "$WORK" "$KAFKA_PROPERTIES" <<'PY'
import json, sys
backend, name, max_len, sink, tansu, moto, work, props = sys.argv[1:]
ns = {"name": name, "shardConfig": {"strategy": "round_robin", "partitionCount": 4},
      "targetConfigs": [{"identifier": "sink", "type": "http",
                         "config": {"url": f"{sink}/{backend}", "timeoutMs": 5000, "body": "payload"}}]}
cfg = {"retention": {"maxLen": int(max_len)}}
if backend == "kafka":
    ns["backend"] = "kafka"
    cfg["brokers"] = [f"127.0.0.1:{tansu}"]
    if props:
        cfg["properties"] = json.loads(props)
elif backend == "sqs":
    ns["backend"] = "sqs"
    cfg.update({"endpointUrl": f"http://127.0.0.1:{moto}", "region": "us-east-1",
                "accessKeyIdFile": f"{work}/aws-key-id", "secretAccessKeyFile": f"{work}/aws-secret"})
ns["backendConfig"] = cfg
print(json.dumps(ns))
PY
}
create_ns() { # backend, name, maxLen — retried: a broker may still be starting
  local body code
  body=$(ns_body "$1" "$2" "$3")
  for _ in $(seq 1 20); do
    code=$(curl -s -o "$WORK/create.json" -w '%{http_code}' -X POST "http://127.0.0.1:$GW_PORT/api/v1/namespaces" \
      -H "X-API-Key: $ADMIN_KEY" -H 'Content-Type: application/json' -d "$body")
    [ "$code" = 201 ] && return 0
    sleep 1
  done
  echo "creating namespace $2 failed: $code $(cat "$WORK/create.json")" >&2
  exit 1
}
delete_ns() {
  curl -fsS -o /dev/null -X DELETE "http://127.0.0.1:$GW_PORT/api/v1/namespaces/$1" -H "X-API-Key: $ADMIN_KEY"
}

# ---------------------------------------------------------------- helpers
CLK_TCK=$(getconf CLK_TCK)
ticks() { # utime + stime of a process (0 when there is none or it is gone)
  [ -n "${1:-}" ] || { echo 0; return; }
  { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null || echo; } | awk '{print $12 + $13 + 0}'
}
# Busy ticks of the whole machine (all CPUs): what other processes used
# during a step is this minus ours — the noise indicator.
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
cpu_snapshot() {
  echo "$(ticks "${WK_PID:-}") $(ticks "$GW_PID") $(ticks "$SINK_PID") $(ticks "$REDIS_PID")" \
    "$(ticks "${TANSU_PID:-}") $(ticks "${MOTO_PID:-}") $(machine_ticks) $(date +%s%N)"
}
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

load() { # load generator arguments…; prints its JSON report
  "$BIN/wal-bench-load" --url "http://127.0.0.1:$GW_PORT" --api-key "$API_KEY" "$@"
}
accepted_of() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["accepted"])' "$1"; }
distinct() { curl -fs "$SINK/count" | grep -o '"distinct":[0-9]*' | cut -d: -f2; }
reset_sink() { curl -fs -X POST "$SINK/reset"; }

# Waits until the sink has `expected` distinct ids, or nothing new arrived
# for `quiet` seconds. Prints the seconds waited.
wait_delivered() { # expected, quiet
  local expected=$1 quiet=${2:-30} last=-1 still=0 start now got
  start=$(date +%s.%N)
  while :; do
    got=$(distinct)
    [ "$got" -ge "$expected" ] && break
    if [ "$got" -eq "$last" ]; then
      still=$((still + 1))
      [ "$still" -ge $((quiet * 5)) ] && { echo "  ! gave up waiting: $got of $expected delivered, nothing new for $quiet s" >&2; break; }
    else
      still=0; last=$got
    fi
    sleep 0.2
  done
  now=$(date +%s.%N)
  python3 -c "print(round($now - $start, 2))"
}

# Records one step: backend, step, load report JSON (or ""), cpu before,
# cpu after, with sink stats (1/0), extra JSON.
record() {
  local backend=$1 step=$2 report=$3 before=$4 after=$5 with_sink=$6 extra=${7:-"{}"}
  if [ "$with_sink" = 1 ]; then curl -fs "$SINK/stats" >"$WORK/stats.json"; else echo null >"$WORK/stats.json"; fi
  python3 - "$backend" "$step" "$report" "$before" "$after" "$extra" "$CLK_TCK" "$WORK/stats.json" >>"$RESULTS" <<'PY'
import json, sys
backend, step, report, before, after, extra, hz, stats_path = sys.argv[1:]
report = json.loads(report) if report else None
stats = json.load(open(stats_path))
b = [int(x) for x in before.split()]; a = [int(x) for x in after.split()]
names = ["worker", "gateway", "sink", "redis", "tansu", "moto"]
cpu = {p: round((a[i] - b[i]) / int(hz), 2) for i, p in enumerate(names)}
if report and report.get("cpuSeconds") is not None:
    cpu["load"] = report["cpuSeconds"]
wall = (a[7] - b[7]) / 1e9
busy = (a[6] - b[6]) / int(hz)
machine = {"wallSecs": round(wall, 2), "busyCores": round(busy / wall, 2) if wall else 0,
           "otherCores": max(0.0, round((busy - sum(cpu.values())) / wall, 2)) if wall else 0}
print(json.dumps({"backend": backend, "step": step, "load": report, "sink": stats,
                  "cpuSeconds": cpu, "machine": machine, **json.loads(extra)}))
PY
  show
}

show() { # prints the last recorded step
  tail -1 "$RESULTS" >"$WORK/last.json"
  python3 - "$WORK/last.json" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1])); s = r["sink"]; l = r["load"]; c = r["cpuSeconds"]
if l:
    wl = l["writeLatency"]
    line = (f"  writes: {l['messagesSent']} sent{' (' + str(l['unsent']) + ' planned not sent by the cutoff)' if l.get('unsent') else ''}, {l['accepted']} accepted, {l['failed']} failed"
            f" ({l['requestErrors']} requests unanswered), {l['acceptedPerSec']:,.0f}/s accepted over {l['elapsedSecs']:.1f} s;"
            f" request latency p50 {wl['p50Ms']:.2f} ms, p99 {wl['p99Ms']:.2f}, max {wl['maxMs']:.1f}")
    print(line)
    print(f"  answers by HTTP status ({l['endpoint']}, {l['batch']} per request): "
          + ", ".join(f"{k}: {v}" for k, v in l["statuses"].items()))
    if l["mode"] == "rate":
        g = l["scheduleLag"]
        print(f"  rate {l['targetRate']:,.0f}/s: schedule lag p99 {g['p99Ms']:.2f} ms, max {g['maxMs']:.1f} ms,"
              f" {l['lateRequests']} requests > 5 ms late; fell behind: {l['fellBehind']}")
    if l.get("firstError"):
        print(f"  first write error: {l['firstError']}")
if s:
    acc = r.get("expected", l["accepted"] if l else 0); got = s["distinct"]
    ids = r.get("ids")
    if ids:
        verdict = ("NO LOSS" if ids["lost"] == 0 else f"LOSS: {ids['lost']} accepted ids never delivered, e.g. {ids['missingSample']}")
        if ids["extra"]:
            verdict += f"; {ids['extra']} delivered ids the writer never got back (UNKNOWN writes that landed)"
    else:
        verdict = "NO LOSS" if got >= acc else f"LOSS: {acc - got} missing"
    print(f"  sink: {got} distinct of {acc} accepted ({verdict}), {s['duplicates']} duplicates,"
          f" {s['retried']} retried; {s['ratePerSec']:,.0f} deliveries/s first->last,"
          f" {s['rateMid80PerSec']:,.0f}/s over the middle 80%")
    d = s["latency"]
    if d["count"] and r["step"] != "drain":
        print(f"  e2e latency (sentAtUs -> received): p50 {d['p50Ms']:.2f} ms, p99 {d['p99Ms']:.2f}, max {d['maxMs']:.1f}")
for k, label in (("workerStartToLastSecs", "worker start -> last delivery, s"), ("tailSecs", "last write -> all delivered, s")):
    if k in r:
        print(f"  {label}: {r[k]}")
print("  CPU s: " + ", ".join(f"{p} {v:.1f}" for p, v in c.items() if v))
m = r["machine"]
print(f"  machine over {m['wallSecs']} s: {m['busyCores']} of {os.cpu_count()} cores busy, of which other processes"
      f" {m['otherCores']}" + ("  <- NOISY" if m["otherCores"] > 0.1 else ""))
PY
}

ingest_ns() { echo "bench-$1-ingest"; }

echo "== machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem/{print $2}') GiB; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== versions: redis $(redis-server --version | awk '{print $3}' | cut -d= -f2)" \
  "$( [[ " $BACKENDS " == *" kafka "* ]] && echo "; $(tansu --version 2>/dev/null || "$HOME/.cargo/bin/tansu" --version) (storage ${TANSU_STORAGE_ENGINE:-memory://tansu/})")" \
  "$( [[ " $BACKENDS " == *" sqs "* ]] && echo "; moto $(python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?')")"
echo "== settings: BENCH_SECS=$SECS, preload $PRELOAD (SQS $SQS_PRELOAD), fixed rate $RATE/s; ingest: $INGEST_CONNS connections single," \
  "$BATCH per request x $BATCH_CONNS connections batch (SQS: $SQS_INGEST_CONNS; $SQS_BATCH x $SQS_BATCH_CONNS); $FIXED_CONNS connections at the fixed rate; load generator $LOAD_THREADS threads at max rate" \
  "${KAFKA_PROPERTIES:+, Kafka properties $KAFKA_PROPERTIES}"

# ---------------------------------------------------------------- per backend
# Per-backend load shapes: moto handles one request at a time and its cost
# per request grows with the queue's depth, so SQS gets less concurrency
# (more only queues requests in moto until the gateway's 5 s SQS timeout
# answers UNKNOWN) and a smaller preload.
conns_of() { if [ "$1" = sqs ]; then echo "$SQS_INGEST_CONNS"; else echo "$INGEST_CONNS"; fi; }
batch_of() { if [ "$1" = sqs ]; then echo "$SQS_BATCH"; else echo "$BATCH"; fi; }
batch_conns_of() { if [ "$1" = sqs ]; then echo "$SQS_BATCH_CONNS"; else echo "$BATCH_CONNS"; fi; }
preload_of() { if [ "$1" = sqs ]; then echo "$SQS_PRELOAD"; else echo "$PRELOAD"; fi; }
preload_conns_of() { if [ "$1" = sqs ]; then echo 1; else echo 4; fi; }
warm_rate_of() { if [ "$1" = sqs ]; then echo 20; else echo 250; fi; }
broker_pid_of() { case "$1" in redis) echo "$REDIS_PID" ;; kafka) echo "$TANSU_PID" ;; sqs) echo "$MOTO_PID" ;; esac; }

# Waits (at most $2 s) until process $1 uses less than 0.1 core: moto goes
# on answering requests whose client already gave up. Prints the seconds.
wait_idle() {
  local pid=$1 max=${2:-120} t0 a b
  t0=$(date +%s)
  while [ $(($(date +%s) - t0)) -lt "$max" ]; do
    a=$(ticks "$pid"); sleep 1; b=$(ticks "$pid")
    [ $((b - a)) -lt $((CLK_TCK / 10)) ] && break
  done
  echo $(($(date +%s) - t0))
}

# Every id the load generator got back ($1) against every id the sink
# received: prints {"lost": …, "extra": …, "missingSample": […]} (extra:
# delivered but never acknowledged to the writer — writes answered UNKNOWN
# that did land).
id_check() {
  curl -fs "$SINK/ids" >"$WORK/delivered.txt"
  python3 - "$1" "$WORK/delivered.txt" <<'PY2'
import json, sys
acc = set(l.strip().upper() for l in open(sys.argv[1]) if l.strip())
got = set(l.strip() for l in open(sys.argv[2]) if l.strip())
missing = sorted(acc - got)
print(json.dumps({"acceptedIds": len(acc), "lost": len(missing), "extra": len(got - acc), "missingSample": missing[:5]}))
PY2
}

# After the expected count arrived, writes with an unknown outcome may
# still be arriving: wait until nothing new came for 3 s (at most 60 s).
settle() {
  local last=-1 got still=0 t0
  t0=$(date +%s)
  while [ $(($(date +%s) - t0)) -lt 60 ]; do
    got=$(distinct)
    if [ "$got" -eq "$last" ]; then still=$((still + 1)); [ "$still" -ge 15 ] && break; else still=0; last=$got; fi
    sleep 0.2
  done
}

for b in $BACKENDS; do
  broker=$(broker_pid_of "$b")
  echo "== [$b] set-up: namespace bench-$b; warm-up writes delivered by the worker"
  create_ns "$b" "bench-$b" 300000
  wr=$(warm_rate_of "$b")
  r1=$(load --namespace "bench-$b" --rate "$wr" --duration 2 --connections 8)
  r2=$(load --namespace "bench-$b" --rate 0 --total $((wr * 12 / 10)) --batch "$(batch_of "$b")" --connections 1)
  expected=$(($(accepted_of "$r1") + $(accepted_of "$r2")))
  start_worker
  waited=$(wait_delivered "$expected" 30)
  echo "  $(distinct) of $expected warm-up messages delivered in $waited s"
  stop_worker
  reset_sink

  # ------------------------------------------------------------ 1. ingest
  # Each run writes to a fresh namespace (topic, queue): moto's cost per
  # message grows with the queue's depth, so the batch run must not start
  # where the single-write run left the queue.
  c=$(conns_of "$b"); bs=$(batch_of "$b"); bc=$(batch_conns_of "$b")
  for kind in single batch; do
    ns="$(ingest_ns "$b")-$kind"
    create_ns "$b" "$ns" 200000
    load --namespace "$ns" --rate "$((wr * 4))" --duration 2 --connections 16 >/dev/null # connections, metadata, queue URL
    if [ "$kind" = single ]; then
      echo "== [$b] 1a. ingest, single writes at max rate, $c connections, $SECS s (worker stopped)"
      args=(--connections "$c")
    else
      echo "== [$b] 1b. ingest, batch endpoint ($bs per request) at max rate, $bc connections, $SECS s (worker stopped)"
      args=(--batch "$bs" --connections "$bc")
    fi
    before=$(cpu_snapshot)
    report=$(load --namespace "$ns" --rate 0 --duration "$SECS" "${args[@]}" --threads "$LOAD_THREADS")
    record "$b" "ingest-$kind" "$report" "$before" "$(cpu_snapshot)" 0
    echo "  broker idle again after $(wait_idle "$broker") s"
    # Never delivered: the namespace goes before the worker starts again.
    delete_ns "$ns"
    if [ "$b" = redis ]; then
      redis-cli -p "$REDIS_PORT" --scan --pattern "wal:{$ns}:*" | xargs -r -n 100 redis-cli -p "$REDIS_PORT" del >/dev/null
    fi
  done

  # ------------------------------------------------------------ 2. drain
  n=$(preload_of "$b")
  echo "== [$b] 2. drain: $n messages preloaded (batch endpoint, $bs per request, $(preload_conns_of "$b") connections; worker stopped), then a fresh worker delivers them"
  before=$(cpu_snapshot)
  report=$(load --namespace "bench-$b" --rate 0 --duration 900 --total "$n" --batch "$bs" \
    --connections "$(preload_conns_of "$b")" --ids-out "$WORK/ids-preload-$b.txt")
  record "$b" preload "$report" "$before" "$(cpu_snapshot)" 0
  echo "  broker idle again after $(wait_idle "$broker") s"
  accepted=$(accepted_of "$report")
  before=$(cpu_snapshot)
  t0=$(date +%s.%N)
  start_worker
  wait_delivered "$accepted" 30 >/dev/null
  t1=$(date +%s.%N)
  settle
  record "$b" drain "" "$before" "$(cpu_snapshot)" 1 \
    "{\"expected\": $accepted, \"workerStartToLastSecs\": $(python3 -c "print(round($t1 - $t0, 2))"), \"ids\": $(id_check "$WORK/ids-preload-$b.txt")}"

  # ------------------------------------------------------------ 3. fixed rate
  echo "== [$b] 3. a fixed $RATE single writes/s for $SECS s, $FIXED_CONNS connections, worker running (no request sent after $((SECS + 2)) s)"
  reset_sink
  before=$(cpu_snapshot)
  report=$(load --namespace "bench-$b" --rate "$RATE" --duration "$SECS" --connections "$FIXED_CONNS" --cutoff $((SECS + 2)) \
    --ids-out "$WORK/ids-fixed-$b.txt")
  tail=$(wait_delivered "$(accepted_of "$report")" 30)
  settle
  record "$b" fixed "$report" "$before" "$(cpu_snapshot)" 1 \
    "{\"tailSecs\": $tail, \"ids\": $(id_check "$WORK/ids-fixed-$b.txt")}"
  echo "  worker RSS $(( $(rss_kb "$WK_PID") / 1024 )) MB, gateway RSS $(( $(rss_kb "$GW_PID") / 1024 )) MB"
  stop_worker
  reset_sink
  echo "  broker idle again after $(wait_idle "$broker") s"
done

# ---------------------------------------------------------------- logs
echo "== log lines at WARN or above (first 5 of each)"
for f in gateway worker tansu; do
  [ -f "$WORK/$f.log" ] || continue
  echo "  $f: $(grep -c -E 'WARN|ERROR' "$WORK/$f.log" || true)"
  grep -E 'WARN|ERROR' "$WORK/$f.log" | head -5 | cut -c1-300 | sed 's/^/    /' || true
done
if [ -f "$WORK/moto.log" ]; then
  echo "  moto: answers by status: $(grep -oE '" [0-9]{3} ' "$WORK/moto.log" | sort | uniq -c | awk '{printf "%s %s; ", $3, $1}')"
  grep -E '" [45][0-9]{2} ' "$WORK/moto.log" | head -3 | cut -c1-300 | sed 's/^/    /' || true
fi

# ---------------------------------------------------------------- summary
echo "== summary ($(($(date +%s) - STARTED_AT)) s in all)"
python3 - "$RESULTS" "$RATE" "$OUT" <<'PY'
import json, sys
path, rate, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
steps = [json.loads(l) for l in open(path)]
by = {}
for s in steps:
    by.setdefault(s["backend"], {})[s["step"]] = s
def statuses(l):
    return " ".join(f"{k}:{v}" for k, v in l["statuses"].items()) + (f" conn-err:{l['requestErrors']}" if l["requestErrors"] else "")
rows, summaries = [], []
for b, st in by.items():
    sm = {"backend": b, "step": "summary"}
    i1, i2 = st.get("ingest-single"), st.get("ingest-batch")
    pre, dr, fx = st.get("preload"), st.get("drain"), st.get("fixed")
    if i1:
        l = i1["load"]; sm["ingestSinglePerSec"] = round(l["acceptedPerSec"]); sm["ingestSingleFailed"] = l["failed"]
        sm["ingestSingleStatuses"] = l["statuses"]; sm["ingestSingleP99Ms"] = l["writeLatency"]["p99Ms"]
    if i2:
        l = i2["load"]; sm["ingestBatchPerSec"] = round(l["acceptedPerSec"]); sm["ingestBatchFailed"] = l["failed"]
        sm["ingestBatchStatuses"] = l["statuses"]
    if pre:
        sm["preloadAccepted"] = pre["load"]["accepted"]; sm["preloadPerSec"] = round(pre["load"]["acceptedPerSec"])
    if dr:
        s = dr["sink"]; sm["drainPerSec"] = round(s["ratePerSec"]); sm["drainMid80PerSec"] = round(s["rateMid80PerSec"])
        sm["drainLost"] = dr["ids"]["lost"]; sm["drainExtra"] = dr["ids"]["extra"]; sm["drainDuplicates"] = s["duplicates"]
        sm["drainWorkerCpuPer1000"] = round(dr["cpuSeconds"]["worker"] * 1000 / s["distinct"], 3) if s["distinct"] else None
    if fx:
        l = fx["load"]; w = l["writeLatency"]; s = fx["sink"]
        sm.update({"fixedRate": l["targetRate"], "fixedAcceptedPerSec": round(l["acceptedPerSec"]),
                   "fixedFailed": l["failed"], "fixedStatuses": l["statuses"],
                   "writeP50Ms": w["p50Ms"], "writeP99Ms": w["p99Ms"], "writeMaxMs": w["maxMs"],
                   # Held: every planned write sent and accepted at >= 98% of the rate;
                   # steady: also the generator's schedule lag p99 <= 20 ms (bursts otherwise).
                   "rateHeld": l["failed"] == 0 and not l.get("unsent") and l["acceptedPerSec"] >= 0.98 * l["targetRate"],
                   "rateSteady": not l["fellBehind"],
                   "scheduleLagP99Ms": l["scheduleLag"]["p99Ms"],
                   "e2eP50Ms": s["latency"]["p50Ms"], "e2eP99Ms": s["latency"]["p99Ms"],
                   "fixedUnsent": l.get("unsent", 0),
                   "fixedLost": fx["ids"]["lost"], "fixedExtra": fx["ids"]["extra"], "fixedDuplicates": s["duplicates"],
                   "fixedTailSecs": fx["tailSecs"]})
    sm["noisiestOtherCores"] = max(x["machine"]["otherCores"] for x in st.values())
    summaries.append(sm)
def f(v, fmt="{:,.0f}"):
    return "—" if v is None else fmt.format(v)
hdr = ["backend", "ingest single w/s", "single answers", "ingest batch msg/s", "batch answers",
       "drain deliveries/s (mid-80%)", "drain lost/extra/dup", f"@{rate:,.0f}/s write p50/p99/max ms",
       "rate held", "e2e p50/p99 ms", "lost/extra/dup"]
print("| " + " | ".join(hdr) + " |")
print("|" + " --- |" * len(hdr))
for sm in summaries:
    b = sm["backend"]
    st = by[b]
    row = [b,
           f(sm.get("ingestSinglePerSec")),
           (statuses(st["ingest-single"]["load"]) if "ingest-single" in st else "—"),
           f(sm.get("ingestBatchPerSec")),
           (statuses(st["ingest-batch"]["load"]) if "ingest-batch" in st else "—"),
           (f"{sm['drainPerSec']:,} ({sm['drainMid80PerSec']:,}) of {sm['preloadAccepted']:,}" if "drainPerSec" in sm else "—"),
           (f"{sm['drainLost']}/{sm['drainExtra']}/{sm['drainDuplicates']}" if "drainLost" in sm else "—"),
           (f"{sm['writeP50Ms']:.2f} / {sm['writeP99Ms']:.2f} / {sm['writeMaxMs']:.0f}" if "writeP99Ms" in sm else "—"),
           ((("yes" if sm["rateSteady"] else f"yes, bursty (schedule lag p99 {sm['scheduleLagP99Ms']:.0f} ms)") if sm["rateHeld"]
             else f"NO ({sm['fixedAcceptedPerSec']:,}/s accepted, {sm['fixedFailed']} failed, {sm['fixedUnsent']} unsent)") if "rateHeld" in sm else "—"),
           (f"{sm['e2eP50Ms']:.1f} / {sm['e2eP99Ms']:.1f}" if "e2eP99Ms" in sm else "—"),
           (f"{sm['fixedLost']}/{sm['fixedExtra']}/{sm['fixedDuplicates']}" if "fixedLost" in sm else "—")]
    print("| " + " | ".join(row) + " |")
print()
print("CPU seconds per 1,000 messages (accepted for ingest, delivered for drain and fixed):")
for b, st in by.items():
    for name, s in st.items():
        n = (s["sink"]["distinct"] if s["sink"] else s["load"]["accepted"]) if (s["sink"] or s["load"]) else 0
        if not n:
            continue
        per = ", ".join(f"{p} {v * 1000 / n:.3f}" for p, v in s["cpuSeconds"].items() if v)
        noisy = "  NOISY" if s["machine"]["otherCores"] > 0.1 else ""
        print(f"  {b:<6} {name:<14} {per}  (others {s['machine']['otherCores']} cores){noisy}")
problems = [sm for sm in summaries if sm.get("drainLost") or sm.get("fixedLost")]
for sm in problems:
    print(f"  !! {sm['backend']}: LOST MESSAGES — drain {sm.get('drainLost')}, fixed-rate {sm.get('fixedLost')}")
if out:
    with open(out, "w") as fh:
        for s in steps + summaries:
            fh.write(json.dumps(s) + "\n")
    print(f"JSON lines written to {out}")
PY
