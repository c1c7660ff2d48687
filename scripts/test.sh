#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then format
# check, clippy with warnings as errors, and every test with cargo-nextest.
# Needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (trust
# auth, database `test`), or WAL_TEST_REDIS_URL / WAL_TEST_POSTGRES_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-tools.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo nextest run --workspace --no-fail-fast
