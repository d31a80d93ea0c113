#!/usr/bin/env bash
# Runs every test, after installing what the tests need on a fresh Debian
# machine (redis-server, prometheus and docker-registry, an OCI registry:
# tests start real ones; PyPI prometheus-client: its strict OpenMetrics
# parser reads /metrics; PyPI moto[server]: an S3-compatible server, with
# boto3 to fill it) and building the sample guests.
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
if [ ${#missing[@]} -gt 0 ]; then
    echo "tests/run.sh: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 -c "import prometheus_client" 2>/dev/null || python3 -m pip install --quiet prometheus-client
python3 -c "import moto.server, boto3" 2>/dev/null \
    || python3 -m pip install --quiet "moto[server]"

# The component and language tests serve sample guests built from source
# here: Rust components for wasm32-wasip2, the Python one with
# componentize-py (PyPI), and C, Go, AssemblyScript and JavaScript guests
# (samples/languages/build.sh installs their toolchains).
bash samples/build.sh

cargo test --release --locked "$@"
