#!/usr/bin/env bash
# Builds every sample component into samples/components/build/: the Rust
# ones (wasm32-wasip2) and the Python one (componentize-py from PyPI).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/build-rust.sh"
bash "$here/build-other.sh"
