#!/usr/bin/env bash
# Installs what the tests need when it is missing: cargo-nextest, redis-server
# (for tests that start their own Redis), a PostgreSQL reachable at
# $WAL_TEST_POSTGRES_URL is expected to be running already.
set -euo pipefail

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest" >&2
  cargo install cargo-nextest --locked
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server; else sudo apt-get update -qq && sudo apt-get install -y -qq redis-server; fi
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
