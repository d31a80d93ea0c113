#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 30), starting
# from the seed corpus in fuzz/corpus/<target>. New inputs the fuzzer finds
# go to a scratch corpus (fuzz/target/corpus/<target>), not into the repo;
# a crash leaves its input in fuzz/artifacts/<target>/ and fails the run.
#   bash fuzz/run.sh 30          # CI smoke
#   bash fuzz/run.sh 3600        # an hour per target
# Needs the nightly toolchain (installed here if missing) and cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# No sanitizer: the code under test is safe Rust; libFuzzer still catches
# panics, aborts, timeouts and memory blow-ups, and builds are much faster.
cargo +nightly fuzz build -s none
for target in http_decoder config host_abi admin sources reload; do
    mkdir -p "target/corpus/$target"
    echo "--- $target, ${seconds}s"
    cargo +nightly fuzz run -s none "$target" "target/corpus/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 2>&1 \
        | grep -E "^(#[0-9]+.*DONE|Done|stat::number_of_executed_units|stat::peak_rss_mb)|ERROR|panicked|deadly|Test unit written" || true
    if ls "artifacts/$target"/* >/dev/null 2>&1; then
        echo "fuzz target $target found a crash: see fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
