#!/usr/bin/env bash
# Builds the Rust sample guests and copies them into samples/:
#   samples/hello_rust.wasm, samples/backend.wasm, samples/redis.wasm, samples/counter.wasm
# Needs: rustup target add wasm32-unknown-unknown
# With --check, builds into a scratch directory and fails if the committed
# files differ from what the sources build to.
set -euo pipefail
cd "$(dirname "$0")"
out=..
if [ "${1:-}" = "--check" ]; then
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi
# Paths are remapped so the output does not depend on where the repo lives.
export RUSTFLAGS="--remap-path-prefix=$PWD=/guests --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
cargo build --quiet --release --target wasm32-unknown-unknown --locked
for name in hello_rust backend redis counter; do
    cp "target/wasm32-unknown-unknown/release/$name.wasm" "$out/$name.wasm"
done
if [ "${1:-}" = "--check" ]; then
    for name in hello_rust backend redis counter; do
        if ! cmp -s "$out/$name.wasm" "../$name.wasm"; then
            echo "samples/$name.wasm is stale: run samples/guests/build.sh and commit the result" >&2
            exit 1
        fi
    done
    echo "sample guests are up to date"
fi
