#!/usr/bin/env bash
# Build the Python wasi:http/proxy sample component (WASI 0.2) with
# componentize-py and write it to samples/components/build/python-hello.wasm.
#
# Works from any cwd. Needs only python3 (with the venv module, or pip) and
# PyPI; componentize-py ships CPython-for-wasm, so no other toolchain is used.
# Idempotent: the pinned toolchain is installed once into a cache dir, and the
# component is rebuilt only when its sources, WIT or this script change
# (FORCE=1 rebuilds anyway).
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

COMPONENTIZE_PY_VERSION=0.25.1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/python"
out="$here/build"
wasm="$out/python-hello.wasm"
python="${PYTHON:-python3}"

cache="${XDG_CACHE_HOME:-$HOME/.cache}/serverless-wasm/componentize-py-$COMPONENTIZE_PY_VERSION"
venv="$cache/venv"
stamp="$cache/.installed"

# 1. Pinned toolchain, installed once (a venv; plain `pip --target` where the
#    venv module is missing, e.g. Debian without python3-venv).
if [[ ! -f "$stamp" ]]; then
    rm -rf "$cache"
    mkdir -p "$cache"
    if "$python" -m venv "$venv" >/dev/null 2>&1; then
        "$venv/bin/python" -m pip install -q \
            "componentize-py==$COMPONENTIZE_PY_VERSION"
        echo "$venv/bin/python" >"$stamp.python"
        : >"$stamp.pythonpath"
    else
        rm -rf "$venv"
        "$python" -m pip install -q \
            --target "$cache/site" "componentize-py==$COMPONENTIZE_PY_VERSION"
        command -v "$python" >"$stamp.python"
        echo "$cache/site" >"$stamp.pythonpath"
    fi
    touch "$stamp"
fi
componentize_py() {
    env -u VIRTUAL_ENV PYTHONPATH="$(cat "$stamp.pythonpath")" \
        "$(cat "$stamp.python")" -c 'import sys; from componentize_py import script; sys.argv[0] = "componentize-py"; sys.exit(script())' "$@"
}

# 2. Build, unless the output is newer than every input.
mkdir -p "$out"
if [[ -z "${FORCE:-}" && -f "$wasm" ]] &&
    [[ -z "$(find "$src/app.py" "$src/wit" "${BASH_SOURCE[0]}" -newer "$wasm" -print -quit)" ]]; then
    echo "up to date: $wasm"
else
    # The world is `hello` in python/wit/world.wit (= wasi:http/proxy@0.2.12);
    # componentize-py generates the bindings (module `wit_world`) internally.
    # The app is staged in a temp dir because the build leaves __pycache__
    # next to the sources it imports.
    stage="$(mktemp -d)"
    trap 'rm -rf "$stage"' EXIT
    cp "$src/app.py" "$stage/"
    cd "$stage"
    componentize_py -q -d "$src/wit" -w hello componentize -p "$stage" app -o "$wasm.tmp"
    mv "$wasm.tmp" "$wasm"
fi
ls -l "$wasm"
