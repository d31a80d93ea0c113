#!/usr/bin/env bash
# Build the Rust wasi:http/proxy sample components (WASI 0.2) and copy them
# to samples/components/build/{hello,echo,sleep,fetch,misbehave}.wasm. Works from any cwd.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workspace="$here/rust"
out="$here/build"
target=wasm32-wasip2

rustup target add "$target"
cargo build --manifest-path "$workspace/Cargo.toml" --release --locked --target "$target" -j 2

mkdir -p "$out"
for name in hello echo sleep fetch misbehave; do
    cp "$workspace/target/$target/release/$name.wasm" "$out/$name.wasm"
done
ls -l "$out"/{hello,echo,sleep,fetch,misbehave}.wasm
