#!/usr/bin/env python3
"""The WASI 0.3 benchmark (issue #16): the same p3 hello component
(samples/components/rust-p3/hello, which logs a line per request on
stdout) served by serverless-wasm and by `wasmtime serve` 48 with its
default p3 instance reuse (128 requests per instance, 16 at once), in one
run, interleaved.

    python3 benches/components_p3.py [--reps 3] [--duration 5] [--quick]

One pinned core each: the server on CPU 0 (one shard), wrk on CPU 1.
Loads: plain (64 connections) and pipelined (256 connections, 16 deep).
Scenarios:
  - wasmtime-serve-p3: `wasmtime serve -O pooling-allocator=y -S cli=y
    -W component-model-async=y` (stdout to a file);
  - ours-p3-reuse: our defaults for `instance = "reuse"` on a 0.3 route
    (the same 128 and 16); ours-p3-fresh: an instance per request;
  - ours-p2-reuse: the WASI 0.2 hello (samples/components/rust/hello,
    which does not log) with `instance = "reuse"`, for 0.3 vs 0.2.
Targets from the issue: ours-p3-reuse >= 3x wasmtime-serve-p3's req/s and
<= 1/3 of its p99. Results go to benches/results/components_p3.json and the
`components-p3` section of benches/RESULTS.md.
"""

import json
import sys

import load
from load import REPO, RESULTS, Process, free_port, log, run

LOADS = {"plain": (64, 1), "pipelined": (256, 16)}

CONFIG = """listen_address = "127.0.0.1:{port}"

[server]
max_connections_per_shard = 20000
listen_backlog = 4096

[[applications]]
method = "GET"
url_path = "/*"
file_path = "{component}"
instance = "{instance}"
"""


def main():
    args = load.server_bench_args(__doc__)
    wasmtime = load.ensure_cargo_tool("wasmtime", "wasmtime-cli", load.WASMTIME_VERSION)
    if not args.no_build:
        log("building the server and the sample components")
        run(["cargo", "build", "--release", "--quiet", "--bin", "serverless-wasm"], cwd=REPO)
        run(["bash", str(REPO / "samples/components/build-rust.sh")], stdout=sys.stderr)
    components = REPO / "samples/components/build"
    binary = REPO / "target/release/serverless-wasm"

    def ours(component, instance):
        def start(name):
            port = free_port()
            path = RESULTS / f"{name}.toml"
            path.write_text(CONFIG.format(port=port, component=components / component, instance=instance))
            return Process(name, [str(binary), str(path), "--shards", "1", "--cpus", "0"], "0", port,
                           env={"RUST_LOG": "warn"})
        return start

    def serve(name):
        port = free_port()
        return Process(name, [str(wasmtime), "serve", "-O", "pooling-allocator=y", "-S", "cli=y",
                              "-W", "component-model-async=y", "--addr", f"127.0.0.1:{port}",
                              str(components / "p3-hello.wasm")], "0", port)

    servers = {
        "wasmtime-serve-p3": serve,
        "ours-p3-reuse": ours("p3-hello.wasm", "reuse"),
        "ours-p3-fresh": ours("p3-hello.wasm", "fresh"),
        "ours-p2-reuse": ours("hello.wasm", "reuse"),
    }
    plan = [(f"{server}-{load_name}", server, load_name) for load_name in LOADS for server in servers]
    runs = []
    for rep in range(args.reps):
        for name, server, load_name in plan:
            connections, depth = LOADS[load_name]
            process = servers[server](name)
            record = load.measure_server(process, connections, depth, args.duration, "1", name, rep)
            runs.append(record)
            load.log_server_run(record, args.reps, 30)

    summary = load.median_records(runs, [name for name, *_ in plan], ("rps", "p50_ms", "p99_ms", "requests_per_cpu_second", "errors"))

    def ratio(a, b, key="rps"):
        return summary[a][key] / summary[b][key]

    targets = []
    for load_name in LOADS:
        targets.append((f"{load_name}: req/s, ours 0.3 reuse / wasmtime serve 0.3",
                        ratio(f"ours-p3-reuse-{load_name}", f"wasmtime-serve-p3-{load_name}"), ">= 3"))
        if load_name == "plain":  # pipelined latency is per batch
            targets.append((f"{load_name}: p99, ours 0.3 reuse / wasmtime serve 0.3",
                            ratio(f"ours-p3-reuse-{load_name}", f"wasmtime-serve-p3-{load_name}", "p99_ms"), "<= 0.33"))
        targets.append((f"{load_name}: req/s, ours 0.3 reuse / ours 0.2 reuse",
                        ratio(f"ours-p3-reuse-{load_name}", f"ours-p2-reuse-{load_name}"), "(measured)"))
        targets.append((f"{load_name}: req/s, ours 0.3 fresh / wasmtime serve 0.3",
                        ratio(f"ours-p3-fresh-{load_name}", f"wasmtime-serve-p3-{load_name}"), "(measured)"))
    report = load.server_report("components_p3.py", binary, wasmtime, args, LOADS, runs, summary, targets)
    (RESULTS / "components_p3.json").write_text(json.dumps(report, indent=2))
    markdown = render(report, plan)
    if not args.no_record:
        load.record(markdown, section="components-p3")
    print(markdown)


def render(report, plan):
    m = report["machine"]
    lines = [
        f"Measured {report['date']} with `{report['command']}` on {m['cpu']}, {m['cores']} CPUs, "
        f"{m['memory_gib']} GiB, Linux {m['kernel']}; {report['versions']['wasmtime']}; "
        f"wrk on CPU 1, servers on CPU 0, {report['settings']['reps']} interleaved reps of "
        f"{report['settings']['duration_s']} s (medians); plain = 64 connections, pipelined = 256 connections x depth 16.",
        "",
        "| scenario | load | req/s | p50 ms | p99 ms | req per server CPU-s | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, _, load_name in plan:
        s = report["summary"][name]
        latency = f"{s['p50_ms']:.2f} | {s['p99_ms']:.2f}" if load_name == "plain" else "– | –"
        lines.append(f"| {name} | {load_name} | {s['rps']:,.0f} | {latency} | {s['requests_per_cpu_second']:,.0f} "
                     f"| {s['errors']} |")
    lines += load.comparison_table(report["targets"])
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
