#!/usr/bin/env bash
# Runs a moto SQS endpoint in the foreground on 127.0.0.1:PORT (state in
# memory, lost on exit). Used by `just dev` and the benchmarks.
#
#   scripts/moto.sh 4566
#
# Point the service at it with region us-east-1, any static credentials and
# endpoint http://127.0.0.1:PORT.
set -euo pipefail

PORT="${1:-}"
if [[ ! "$PORT" =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/moto.sh PORT" >&2
  exit 2
fi
# `--help` also catches a pyenv shim without moto behind it.
if ! command -v moto_server >/dev/null 2>&1 || ! moto_server --help >/dev/null 2>&1; then
  echo "moto_server is not installed: run scripts/install-tools.sh (it runs pip install 'moto[server]')" >&2
  exit 127
fi
exec moto_server -H 127.0.0.1 -p "$PORT"
