#!/usr/bin/env bash
# Installs what the tests need when it is missing: cargo-nextest, redis-server
# (for tests that start their own Redis), the tansu Kafka-protocol broker
# (crates.io; a ~16-25 min release build the first time, then reused from
# the cargo bin dir), and moto's SQS server (PyPI). A PostgreSQL reachable at
# $WAL_TEST_POSTGRES_URL is expected to be running already.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"

apt_install() {
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "$@"; else sudo apt-get update -qq && sudo apt-get install -y -qq "$@"; fi
}

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest" >&2
  cargo install cargo-nextest --locked
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server" >&2
  apt_install redis-server
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

# Kafka protocol broker for the Kafka backend's tests. Without the
# `dynostore` feature its in-memory storage engine is missing. Built in its
# own target dir so the project's stays lean; tansu 0.6.0 is the version
# these tests were written against.
if ! command -v tansu >/dev/null 2>&1; then
  echo "installing tansu (Kafka-protocol broker; a long release build the first time)" >&2
  cargo install tansu --version 0.6.0 --locked --features dynostore,postgres
fi

# SQS endpoint for the SQS backend's tests.
if ! moto_server --help >/dev/null 2>&1; then
  echo "installing moto[server] (SQS endpoint)" >&2
  python3 -m pip install --quiet 'moto[server]==5.*'
fi
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
