#!/usr/bin/env bash
# `just dev`: runs the gateway against the local Redis with a demo namespace
# and prints a curl example. The worker is not built yet; writes stay in their
# Redis streams until it exists.
set -euo pipefail
cd "$(dirname "$0")/.."

export WAL_LISTEN="${WAL_LISTEN:-127.0.0.1:3000}"
export WAL_REDIS_URL="${WAL_REDIS_URL:-redis://127.0.0.1:6379}"
mkdir -p .run
export WAL_DATABASE_URL="${WAL_DATABASE_URL:-sqlite://$PWD/.run/dev-namespaces.db?mode=rwc}"
export WAL_API_KEYS="${WAL_API_KEYS:-dev-write-key-please-change}"
export WAL_ADMIN_API_KEYS="${WAL_ADMIN_API_KEYS:-dev-admin-key-please-change}"
WRITE_KEY="${WAL_API_KEYS%%,*}"
ADMIN_KEY="${WAL_ADMIN_API_KEYS%%,*}"
BASE="http://${WAL_LISTEN}"

if ! redis-cli -u "$WAL_REDIS_URL" ping >/dev/null 2>&1; then
  echo "Redis is not answering at $WAL_REDIS_URL; start one: redis-server --port 6379 --daemonize yes" >&2
  exit 1
fi

cargo build -p wal-gateway -p wal-worker
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

"$target_dir/debug/wal-gateway" &
gateway=$!
trap 'kill $gateway 2>/dev/null; wait $gateway 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 100); do
  curl -fs "$BASE/api/v1/health/liveness" >/dev/null 2>&1 && break
  sleep 0.1
done

curl -s -o /dev/null -w '' -X POST "$BASE/api/v1/namespaces" \
  -H "X-API-Key: $ADMIN_KEY" -H 'Content-Type: application/json' \
  -d '{"name": "demo", "description": "created by just dev",
       "shardConfig": {"strategy": "hash", "partitionCount": 2},
       "targetConfigs": [{"identifier": "echo", "type": "http",
                          "config": {"url": "http://127.0.0.1:3999/echo"}}]}' || true

"$target_dir/debug/wal-worker" || true
cat <<MSG

  WAL gateway on $BASE with namespace "demo".
  Write a message:

    curl -s -X POST $BASE/api/v1/wal/write \\
      -H 'X-API-Key: $WRITE_KEY' -H 'Content-Type: application/json' \\
      -d '{"namespace":"demo","payload":{"hello":"world"},"partitionKey":"user:1"}'

  See it in the log:   redis-cli XRANGE 'wal:{demo}:p:$(python3 -c 'print(0)')' - +   (or p:1)
  API docs:            $BASE/api/docs
  Metrics:             $BASE/metrics
  Ctrl-C stops.

MSG
wait $gateway
