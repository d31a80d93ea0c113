#!/usr/bin/env bash
# Runs every test, after installing what the tests need on a fresh Debian
# machine (redis-server: the Redis tests start a real one) and building the
# sample components.
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v redis-server >/dev/null 2>&1; then
    echo "tests/run.sh: installing redis-server"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

# The component tests serve the sample components, built from source here:
# Rust ones for wasm32-wasip2, the Python one with componentize-py (PyPI).
bash samples/components/build.sh

cargo test --release --locked "$@"
