#!/usr/bin/env bash
# Builds every sample guest that is not committed, from source, installing
# the toolchains each needs (see each script): the components (Rust,
# Python) and the guests in other languages (C, Go, AssemblyScript,
# JavaScript). The core modules under samples/guests/ are committed;
# samples/guests/build.sh rebuilds them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/components/build.sh"
bash "$here/languages/build.sh"
