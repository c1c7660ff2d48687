#!/usr/bin/env bash
# Runs a tansu Kafka-protocol broker in the foreground on 127.0.0.1:PORT, for
# `just dev` and the benchmarks against the Kafka backend.
#
#   scripts/tansu.sh PORT [DATA_DIR]
#
# Storage is tansu's in-memory engine (`memory://tansu/`, override with
# $TANSU_STORAGE_ENGINE): everything is lost when the broker stops. DATA_DIR
# (default .run/tansu) is the broker's working directory. Topics are not
# created automatically: the gateway creates a namespace's topic itself.
#
# Clients of tansu 0.6 need the librdkafka property batch.num.messages=1 (in a
# namespace's backendConfig properties): tansu's fetch skips the rest of a
# record batch when a consumer resumes from an offset inside it (see
# TANSU_CLIENT_PROPERTIES in tests/src/tansu.rs).
set -euo pipefail

if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 PORT [DATA_DIR]" >&2
  exit 2
fi
port="$1"
data_dir="${2:-$(dirname "$0")/../.run/tansu}"

tansu_bin="$(command -v tansu || true)"
if [ -z "$tansu_bin" ]; then
  for dir in "${CARGO_HOME:-}/bin" "$HOME/.cargo/bin"; do
    if [ -x "$dir/tansu" ]; then tansu_bin="$dir/tansu"; break; fi
  done
fi
if [ -z "$tansu_bin" ]; then
  echo "tansu is not installed: run scripts/install-tools.sh" >&2
  echo "(or: cargo install tansu --locked --features dynostore,postgres — a ~16 min build)" >&2
  exit 1
fi

mkdir -p "$data_dir"
cd "$data_dir"
url="tcp://127.0.0.1:${port}"
echo "tansu listening on 127.0.0.1:${port} (storage ${TANSU_STORAGE_ENGINE:-memory://tansu/})" >&2
exec "$tansu_bin" broker \
  --listener-url "$url" \
  --advertised-listener-url "$url" \
  --storage-engine "${TANSU_STORAGE_ENGINE:-memory://tansu/}"
