# WAL service recipes. `just` with no argument lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Run the gateway (and the worker, once it exists) with a demo namespace; prints a curl example.
dev:
    scripts/dev.sh

# Run every test: install what is missing, then fmt check, clippy, and all tests with nextest.
test:
    scripts/test.sh

# Local stack tests (the integration suite against real Redis and PostgreSQL).
e2e:
    scripts/install-tools.sh
    cargo nextest run -p wal-tests --no-fail-fast

# Ingest benchmark: release gateway on a private Redis, 200-byte payloads, results to stdout.
bench:
    scripts/bench-ingest.sh

# End-to-end delivery benchmark: release gateway + worker + private Redis + HTTP sink + load generator (BENCH_LONG=0 skips the 5-minute soak).
bench-e2e:
    scripts/bench-e2e.sh

# Backends compared: ingest at max rate, drain deliveries/s and write latency at 2,000/s for Redis Streams, Kafka (tansu) and SQS (moto) in one run.
bench-backends:
    scripts/bench-backends.sh

# Chaos run: steady writes while workers, the gateway and Redis are killed, paused and restarted and the target fails; checks nothing answered TRUE was lost (CHAOS_SECS, default 600).
chaos:
    scripts/chaos.py

# Format the code.
fmt:
    cargo fmt --all

# Lint as CI does.
lint:
    cargo clippy --workspace --all-targets -- -D warnings
