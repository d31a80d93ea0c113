#!/usr/bin/env bash
# Build the Rust sample components and copy them to samples/components/build/:
# WASI 0.2 (wasi:http/proxy): {hello,echo,sleep,fetch,misbehave,counter}.wasm;
# WASI 0.3 (wasi:http/service): p3-{hello,echo,outbound,misbehave}.wasm.
# Both target wasm32-wasip2. Works from any cwd.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/build"
target=wasm32-wasip2

rustup target add "$target"
mkdir -p "$out"

workspace="$here/rust"
cargo build --manifest-path "$workspace/Cargo.toml" --release --locked --target "$target" -j 2
for name in hello echo sleep fetch misbehave counter; do
    cp "$workspace/target/$target/release/$name.wasm" "$out/$name.wasm"
done

workspace="$here/rust-p3"
cargo build --manifest-path "$workspace/Cargo.toml" --release --locked --target "$target" -j 2
for name in hello echo outbound misbehave; do
    cp "$workspace/target/$target/release/p3_$name.wasm" "$out/p3-$name.wasm"
done

ls -l "$out"/{hello,echo,sleep,fetch,misbehave,counter,p3-hello,p3-echo,p3-outbound,p3-misbehave}.wasm
