#!/usr/bin/env python3
"""`just chaos`: steady writes while faults are injected at random, then a
check that nothing answered TRUE was lost.

Loopback only, every server private to the run: a Redis with
`appendfsync always` (killed -9 and restarted, paused), a gateway and two
workers (killed -9 and restarted, the gateway mid-request), an HTTP sink that
turns into a 500 storm or a 5 s stall, a PostgreSQL table in the shared
`test` database (exactly once), and partition-count changes by PATCH.

Every write carries an Idempotency-Key and is retried with it while the
answer is UNKNOWN or the connection broke, as the API tells clients to. At
the end, with every fault healed: each write answered TRUE must reach the
HTTP sink and the PostgreSQL table (once), no write answered FALSE may reach
either, the DLQ must be empty, and the Redis connection count must be back
near where it started.

CHAOS_SECS sets the duration (default 600). The last line is
`chaos: <writes> writes, <faults> faults, lost <n>, duplicates <n>`; the exit
status is non-zero when anything was lost (or delivered though answered
FALSE, or the DLQ is not empty).

Not covered yet (see docs/reliability.md): Kafka and SQS namespaces with
tansu / moto restarts, and target-list changes.
"""

import collections
import http.server
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECS = int(os.environ.get("CHAOS_SECS", "600"))
RATE = int(os.environ.get("CHAOS_RATE", "60"))  # writes per second
PG_URL = os.environ.get("WAL_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
ADMIN = "chaos-admin-key-0123456789"
WRITER = "chaos-write-key-0123456789"
TARGET_DIR = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, secs=20):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def psql(sql):
    out = subprocess.run(["psql", PG_URL, "-Atc", sql], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return out.stdout.strip()


# ---------------------------------------------------------------- the sink

class Sink:
    """HTTP target: records (message id) per delivery; mode ok/500/stall."""

    def __init__(self):
        self.mode = "ok"
        self.delivered = collections.Counter()
        self.lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("content-length", 0))
                self.rfile.read(n)
                mode = sink.mode
                if mode == "stall":
                    time.sleep(5)
                if mode == "500":
                    self.send_response(500)
                    self.end_headers()
                    return
                mid = self.headers.get("x-wal-message-id", "")
                with sink.lock:
                    sink.delivered[mid] += 1
                self.send_response(200)
                self.end_headers()

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


# ---------------------------------------------------------------- processes

class Proc:
    def __init__(self, name, argv, env, log_path):
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.p = None

    def start(self):
        logf = open(self.log_path, "ab")
        self.p = subprocess.Popen(self.argv, env=self.env, stdout=logf, stderr=logf,
                                  stdin=subprocess.DEVNULL)

    def kill9(self):
        if self.p and self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()


class Stack:
    def __init__(self, work):
        self.work = work
        self.redis_port = free_port()
        self.gw_port = free_port()
        self.redis = Proc("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                    "--dir", work, "--appendonly", "yes", "--appendfsync", "always",
                                    "--save", ""], dict(os.environ), os.path.join(work, "redis.log"))
        common = dict(os.environ)
        common.update({
            "WAL_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}",
            "WAL_DATABASE_URL": f"sqlite://{work}/ns.db?mode=rwc",
            "WAL_LOG_LEVEL": "warn",
            "WAL_REDIS_TIMEOUT_MS": "2000",
            "WAL_SECRET_CHAOS_PG_DSN": PG_URL,
        })
        gw_env = dict(common, WAL_LISTEN=f"127.0.0.1:{self.gw_port}", WAL_API_KEYS=WRITER,
                      WAL_ADMIN_API_KEYS=ADMIN)
        self.gateway = Proc("gateway", [os.path.join(TARGET_DIR, "debug", "wal-gateway")], gw_env,
                            os.path.join(work, "gateway.log"))
        self.workers = []
        for i in range(2):
            env = dict(common, WAL_WORKER_LISTEN=f"127.0.0.1:{free_port()}",
                       WAL_WORKER_NAME=f"chaos-worker-{i}", WAL_VISIBILITY_TIMEOUT_MS="10000",
                       WAL_RECLAIM_INTERVAL_MS="1000", WAL_BREAKER_COOLDOWN_MS="2000")
            self.workers.append(Proc(f"worker{i}", [os.path.join(TARGET_DIR, "debug", "wal-worker")], env,
                                     os.path.join(work, f"worker{i}.log")))

    def redis_cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.redis_port), *args],
                              capture_output=True, text=True).stdout.strip()

    def start(self):
        self.redis.start()
        assert wait_port(self.redis_port), "redis did not start"
        self.gateway.start()
        assert wait_port(self.gw_port), "gateway did not start"
        for w in self.workers:
            w.start()

    def stop(self):
        for p in [self.gateway, *self.workers]:
            p.stop()
        self.redis.kill9()


def call(port, method, path, body=None, key=WRITER, headers=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("x-api-key", key)
    req.add_header("content-type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null")
        except ValueError:
            return e.code, None


# ---------------------------------------------------------------- the run

def main():
    work = tempfile.mkdtemp(prefix="wal-chaos-")
    log(f"work dir {work}; {SECS} s at {RATE} writes/s")
    subprocess.run(["cargo", "build", "-q", "-p", "wal-gateway", "-p", "wal-worker"], cwd=ROOT, check=True,
                   env=dict(os.environ, CARGO_TARGET_DIR=TARGET_DIR))
    ns = "chaos-" + uuid.uuid4().hex[:8]
    table = "chaos_" + uuid.uuid4().hex[:8]
    psql(f"CREATE TABLE {table} (id text primary key, seq bigint not null)")
    sink = Sink()
    stack = Stack(work)
    stack.start()
    time.sleep(1)
    status, answer = call(stack.gw_port, "POST", "/api/v1/namespaces", {
        "name": ns,
        "shardConfig": {"strategy": "hash", "partitionCount": 4},
        "retryPolicy": {"maxAttempts": 20, "backoffStrategy": "exponential", "initialDelayMs": 200,
                        "maxDelayMs": 5000, "jitterMs": 100},
        "targetConfigs": [
            {"identifier": "http", "type": "http",
             "config": {"url": f"http://127.0.0.1:{sink.port}/hook", "timeoutMs": 2000}},
            {"identifier": "pg", "type": "database",
             "config": {"dsnEnv": "WAL_SECRET_CHAOS_PG_DSN", "table": table, "operation": "insert",
                        "timeoutMs": 3000}},
        ],
    }, key=ADMIN)
    assert status == 201, (status, answer)
    time.sleep(2)
    base_clients = int(stack.redis_cli("info", "clients").split("connected_clients:")[1].split()[0])

    answers = {}  # write id -> (final durable, message id)
    histories = {}  # write id -> the answer of each attempt
    answers_lock = threading.Lock()
    stop_writing = threading.Event()
    seq = iter(range(10**9))
    seq_lock = threading.Lock()

    def writer():
        interval = 4.0 / RATE  # 4 writer threads
        while not stop_writing.is_set():
            started = time.time()
            with seq_lock:
                n = next(seq)
            wid = f"w{n}"
            body = {"namespace": ns, "payload": {"id": wid, "seq": n}}
            # Retried with its key while not TRUE, as the API tells clients;
            # FALSE is final only when every attempt was FALSE (an attempt
            # whose answer was lost may have recorded the write).
            mid, history = None, []
            for attempt in range(8):
                try:
                    status, a = call(stack.gw_port, "POST", "/api/v1/wal/write", body,
                                     headers={"idempotency-key": wid}, timeout=10)
                except (OSError, urllib.error.URLError):
                    history.append("lost")
                    time.sleep(0.5 * (attempt + 1))
                    continue
                durable = (a or {}).get("durable")
                mid = (a or {}).get("messageId") or mid
                if status == 202 and durable == "TRUE":
                    history.append("TRUE")
                    break
                history.append("FALSE" if durable == "FALSE" or (status == 503 and durable is None)
                               else f"{status}:{durable}")
                time.sleep(0.5 * (attempt + 1))
            if history[-1] == "TRUE":
                final = "TRUE"
            elif all(h == "FALSE" for h in history):
                final = "FALSE"
            else:
                final = "UNKNOWN"
            histories[wid] = history
            with answers_lock:
                answers[wid] = (final, mid)
            time.sleep(max(0.0, interval - (time.time() - started)))

    threads = [threading.Thread(target=writer, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()

    faults = collections.Counter()
    partitions = [4]

    def heal_sink():
        sink.mode = "ok"

    def fault():
        kind = random.choice(["kill_worker", "kill_gateway", "restart_redis", "pause_redis",
                              "sink_500", "sink_stall", "partitions"])
        faults[kind] += 1
        log("fault:", kind)
        if kind == "kill_worker":
            w = random.choice(stack.workers)
            w.kill9()
            time.sleep(random.uniform(0.5, 3))
            w.start()
        elif kind == "kill_gateway":
            stack.gateway.kill9()
            time.sleep(random.uniform(0.2, 2))
            stack.gateway.start()
            wait_port(stack.gw_port)
        elif kind == "restart_redis":
            stack.redis.kill9()
            time.sleep(random.uniform(0.5, 2))
            stack.redis.start()
            wait_port(stack.redis_port)
        elif kind == "pause_redis":
            stack.redis_cli("client", "pause", str(random.randint(1000, 4000)), "ALL")
        elif kind == "sink_500":
            sink.mode = "500"
            threading.Timer(random.uniform(3, 10), heal_sink).start()
        elif kind == "sink_stall":
            sink.mode = "stall"
            threading.Timer(random.uniform(3, 10), heal_sink).start()
        elif kind == "partitions":
            partitions[0] = 2 if partitions[0] == 4 else 4
            call(stack.gw_port, "PATCH", f"/api/v1/namespaces/{ns}",
                 {"shardConfig": {"partitionCount": partitions[0]}}, key=ADMIN)

    started = time.time()
    while time.time() - started < SECS:
        time.sleep(random.uniform(5, 20))
        if time.time() - started >= SECS:
            break
        try:
            fault()
        except Exception as e:  # a fault that could not be injected is not a loss
            log("fault failed:", e)
    stop_writing.set()
    for t in threads:
        t.join(60)
    sink.mode = "ok"
    for p in [stack.gateway, *stack.workers]:
        if p.p.poll() is not None:
            p.start()

    true_ids = {w: m for w, (d, m) in answers.items() if d == "TRUE"}
    false_ids = {w for w, (d, _) in answers.items() if d == "FALSE"}
    log(f"writes {len(answers)}: TRUE {len(true_ids)}, FALSE {len(false_ids)}, "
        f"UNKNOWN {len(answers) - len(true_ids) - len(false_ids)}; catching up")

    def pg_rows():
        rows = psql(f"SELECT id FROM {table}")
        return set(rows.split("\n")) if rows else set()

    catch_up_started = time.time()
    while time.time() - catch_up_started < 300:
        rows = pg_rows()
        with sink.lock:
            http_ids = set(sink.delivered)
        missing = [w for w, m in true_ids.items() if w not in rows or m not in http_ids]
        if not missing:
            break
        time.sleep(2)
    catch_up = time.time() - catch_up_started
    time.sleep(3)
    rows = pg_rows()
    with sink.lock:
        http = dict(sink.delivered)
    lost = [w for w, m in true_ids.items() if w not in rows or m not in http]
    false_delivered = [w for w in false_ids if w in rows]
    http_duplicates = sum(c - 1 for c in http.values() if c > 1)
    pg_duplicates = int(psql(f"SELECT count(*) - count(DISTINCT id) FROM {table}") or 0)
    _, dlq = call(stack.gw_port, "GET", f"/api/v1/wal/namespace/{ns}/status", key=ADMIN)
    dlq_size = ((dlq or {}).get("dlq") or {}).get("size", -1)
    clients = int(stack.redis_cli("info", "clients").split("connected_clients:")[1].split()[0])

    log(f"catch-up {catch_up:.1f} s; faults {dict(faults)}")
    for w in false_delivered[:10]:
        log(f"answered FALSE but delivered: {w} attempts {histories.get(w)}")
    log(f"lost {len(lost)} {lost[:10]}; answered FALSE but delivered {len(false_delivered)}; "
        f"HTTP redeliveries {http_duplicates}; PostgreSQL duplicates {pg_duplicates}; DLQ {dlq_size}; "
        f"Redis clients {base_clients} at start, {clients} at the end")
    stack.stop()
    psql(f"DROP TABLE IF EXISTS {table}")
    failed = bool(lost) or bool(false_delivered) or pg_duplicates > 0 or dlq_size != 0 \
        or clients > base_clients + 10
    if not failed:
        shutil.rmtree(work, ignore_errors=True)
    else:
        log(f"logs kept in {work}")
    print(f"chaos: {len(answers)} writes, {sum(faults.values())} faults, lost {len(lost)}, "
          f"duplicates {pg_duplicates}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
