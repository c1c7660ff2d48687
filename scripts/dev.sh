#!/usr/bin/env bash
# `just dev`: runs the gateway, the worker and a local HTTP echo target
# against the local Redis, with a demo namespace whose target is the echo, and
# prints a curl example: a write shows up as an `[echo]` line a moment later.
# When tansu and moto are installed (scripts/install-tools.sh), it also runs
# a Kafka-protocol broker (tansu, 127.0.0.1:$KAFKA_PORT) and an SQS endpoint
# (moto, 127.0.0.1:$SQS_PORT) with the namespaces demo-kafka and demo-sqs.
set -euo pipefail
cd "$(dirname "$0")/.."

export WAL_LISTEN="${WAL_LISTEN:-127.0.0.1:3000}"
export WAL_REDIS_URL="${WAL_REDIS_URL:-redis://127.0.0.1:6379}"
mkdir -p .run
export WAL_DATABASE_URL="${WAL_DATABASE_URL:-sqlite://$PWD/.run/dev-namespaces.db?mode=rwc}"
export WAL_API_KEYS="${WAL_API_KEYS:-dev-write-key-please-change}"
export WAL_ADMIN_API_KEYS="${WAL_ADMIN_API_KEYS:-dev-admin-key-please-change}"
# Secret references of the demo namespaces point into .run/.
export WAL_SECRET_DIR="${WAL_SECRET_DIR:-$PWD/.run}"
export WAL_WORKER_LISTEN="${WAL_WORKER_LISTEN:-127.0.0.1:3001}"
ECHO_PORT="${ECHO_PORT:-3999}"
KAFKA_PORT="${KAFKA_PORT:-19092}"
SQS_PORT="${SQS_PORT:-14566}"
WRITE_KEY="${WAL_API_KEYS%%,*}"
ADMIN_KEY="${WAL_ADMIN_API_KEYS%%,*}"
BASE="http://${WAL_LISTEN}"

if ! redis-cli -u "$WAL_REDIS_URL" ping >/dev/null 2>&1; then
  echo "Redis is not answering at $WAL_REDIS_URL; start one: redis-server --port 6379 --daemonize yes" >&2
  exit 1
fi

cargo build -p wal-gateway -p wal-worker
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

python3 scripts/echo_sink.py "$ECHO_PORT" &
pids+=($!)

extra=()
export PATH="$HOME/.cargo/bin:$PATH"
if command -v tansu >/dev/null 2>&1; then
  scripts/tansu.sh "$KAFKA_PORT" .run/tansu 2>.run/tansu.log &
  pids+=($!)
  extra+=(kafka)
else
  echo "tansu not installed: no Kafka demo namespace (scripts/install-tools.sh installs it)" >&2
fi
if command -v moto_server >/dev/null 2>&1; then
  scripts/moto.sh "$SQS_PORT" >.run/moto.log 2>&1 &
  pids+=($!)
  printf 'dev\n' >.run/aws-key-id
  printf 'dev\n' >.run/aws-secret
  extra+=(sqs)
else
  echo "moto_server not installed: no SQS demo namespace (scripts/install-tools.sh installs it)" >&2
fi
"$target_dir/debug/wal-gateway" &
gateway=$!
pids+=($gateway)

for _ in $(seq 1 100); do
  curl -fs "$BASE/api/v1/health/liveness" >/dev/null 2>&1 && break
  sleep 0.1
done

curl -s -o /dev/null -w '' -X POST "$BASE/api/v1/namespaces" \
  -H "X-API-Key: $ADMIN_KEY" -H 'Content-Type: application/json' \
  -d '{"name": "demo", "description": "created by just dev",
       "shardConfig": {"strategy": "hash", "partitionCount": 2},
       "targetConfigs": [{"identifier": "echo", "type": "http",
                          "config": {"url": "http://127.0.0.1:'"$ECHO_PORT"'/echo"}}]}' || true

# Kafka and SQS namespaces: the same target, another log backend.
for backend in "${extra[@]}"; do
  case "$backend" in
    kafka)
      for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$KAFKA_PORT) 2>/dev/null && break; sleep 0.1; done
      # batch.num.messages=1: works around tansu 0.6 skipping the rest of a
      # record batch when a consumer resumes inside it (not needed on Kafka).
      config='{"brokers": ["127.0.0.1:'"$KAFKA_PORT"'"], "properties": {"batch.num.messages": "1"}}' ;;
    sqs)
      for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$SQS_PORT/" && break; sleep 0.1; done
      config='{"endpointUrl": "http://127.0.0.1:'"$SQS_PORT"'", "accessKeyIdFile": "'"$PWD"'/.run/aws-key-id", "secretAccessKeyFile": "'"$PWD"'/.run/aws-secret"}' ;;
  esac
  curl -s -o /dev/null -X POST "$BASE/api/v1/namespaces" \
    -H "X-API-Key: $ADMIN_KEY" -H 'Content-Type: application/json' \
    -d '{"name": "demo-'"$backend"'", "backend": "'"$backend"'", "backendConfig": '"$config"',
         "shardConfig": {"strategy": "hash", "partitionCount": 2},
         "targetConfigs": [{"identifier": "echo", "type": "http",
                            "config": {"url": "http://127.0.0.1:'"$ECHO_PORT"'/echo"}}]}' || true
done

"$target_dir/debug/wal-worker" &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fs "http://$WAL_WORKER_LISTEN/health/liveness" >/dev/null 2>&1 && break
  sleep 0.1
done
cat <<MSG

  WAL gateway on $BASE, worker health/metrics on http://$WAL_WORKER_LISTEN,
  echo target on 127.0.0.1:$ECHO_PORT, namespace "demo" (Redis Streams)$(for b in "${extra[@]}"; do printf ', "demo-%s"' "$b"; done).
  Write a message (the echo prints it a moment later):

    curl -s -X POST $BASE/api/v1/wal/write \\
      -H 'X-API-Key: $WRITE_KEY' -H 'Content-Type: application/json' \\
      -d '{"namespace":"demo","payload":{"hello":"world"},"partitionKey":"user:1"}'

  On Kafka or SQS:     the same write with "namespace":"demo-kafka" or "demo-sqs"
  Where is it:         curl -s -H 'X-API-Key: $ADMIN_KEY' $BASE/api/v1/wal/message/<messageId>
  Namespace status:    curl -s -H 'X-API-Key: $ADMIN_KEY' $BASE/api/v1/wal/namespace/demo/status
  Dead letters:        curl -s -H 'X-API-Key: $ADMIN_KEY' $BASE/api/v1/wal/namespace/demo/dlq
  API docs:            $BASE/api/docs
  Metrics:             $BASE/metrics and http://$WAL_WORKER_LISTEN/metrics
  Ctrl-C stops.

MSG
wait $gateway
