#!/usr/bin/env python3
"""The languages benchmark (issue #18): each language's hello
(samples/languages, built from source by its build.sh; every one prints a
line per request, as real handlers log) with `instance = "fresh"` and
`"reuse"`, in one run, interleaved; the two components also under
`wasmtime serve` 48 for the ratio.

    python3 benches/languages.py [--reps 3] [--duration 5] [--quick]
                                 [--baseline BINARY]

One pinned core each: the server on CPU 0 (one shard), wrk on CPU 1, 64
connections. Scenarios: original-hello (samples/hello_rust.wasm, the
original project's Rust sample, env only: the reference a language is
measured against), c, go, assemblyscript
(core modules), c-component, js (wasi:http components), each fresh and
reuse; wasmtime-serve-c-component and wasmtime-serve-js (`wasmtime serve
-O pooling-allocator=y -S cli=y`, an instance per request). With
--baseline, the original-hello again on another build of the server (the one
before WASI preview 1, say), to show what preview 1 costs a guest that
imports only `env`. Results go to benches/results/languages.json and the
`languages` section of benches/RESULTS.md.
"""

import json
import sys

import load
from load import REPO, RESULTS, Process, free_port, log, run

CONNECTIONS = 64
LANGUAGES = REPO / "samples/languages/build"

CONFIG = """listen_address = "127.0.0.1:{port}"

[server]
max_connections_per_shard = 20000
listen_backlog = 4096
compile_cache_dir = "{cache}"

[[applications]]
method = "GET"
url_path = "/*"
file_path = "{guest}"
instance = "{instance}"
"""

# name -> guest file, and whether it is a component (for wasmtime serve).
GUESTS = {
    "original-hello": (REPO / "samples/hello_rust.wasm", False),
    "c": (LANGUAGES / "c-handler.wasm", False),
    "go": (LANGUAGES / "go-handler.wasm", False),
    "assemblyscript": (LANGUAGES / "as-handler.wasm", False),
    "c-component": (LANGUAGES / "c-component.wasm", True),
    "js": (LANGUAGES / "js-handler.wasm", True),
}


def main():
    argv = list(sys.argv)
    sys.argv, baseline = strip_baseline(sys.argv)
    args = load.server_bench_args(__doc__)
    sys.argv = argv  # the report records the whole command
    wasmtime = load.ensure_cargo_tool("wasmtime", "wasmtime-cli", load.WASMTIME_VERSION)
    if not args.no_build:
        log("building the server and the language samples")
        run(["cargo", "build", "--release", "--quiet", "--bin", "serverless-wasm"], cwd=REPO)
        run(["bash", str(REPO / "samples/languages/build.sh")], stdout=sys.stderr)
    binary = REPO / "target/release/serverless-wasm"

    def ours(guest, instance, server_binary=binary):
        def start(name):
            port = free_port()
            path = RESULTS / f"{name}.toml"
            path.write_text(CONFIG.format(port=port, guest=guest, instance=instance,
                                          cache=RESULTS / "languages-compiled"))
            return Process(name, [str(server_binary), str(path), "--shards", "1", "--cpus", "0"], "0", port,
                           env={"RUST_LOG": "warn"})
        return start

    def serve(component):
        def start(name):
            port = free_port()
            return Process(name, [str(wasmtime), "serve", "-O", "pooling-allocator=y", "-S", "cli=y",
                                  "--addr", f"127.0.0.1:{port}", str(component)], "0", port)
        return start

    servers = {}
    for language, (guest, component) in GUESTS.items():
        for instance in ("fresh", "reuse"):
            servers[f"{language}-{instance}"] = ours(guest, instance)
        if component:
            servers[f"wasmtime-serve-{language}"] = serve(guest)
    if baseline:
        for instance in ("fresh", "reuse"):
            servers[f"original-hello-{instance}-baseline"] = ours(GUESTS["original-hello"][0], instance, baseline)

    runs = []
    for rep in range(args.reps):
        for name, start in servers.items():
            # /x/hello: the samples answer by the path's last part.
            record = load.measure_server(start(name), CONNECTIONS, 1, args.duration, "1", name, rep, path="/x/hello")
            runs.append(record)
            load.log_server_run(record, args.reps, 32)

    summary = load.median_records(runs, list(servers), ("rps", "p50_ms", "p99_ms", "requests_per_cpu_second", "errors"))

    def ratio(a, b, key="rps"):
        return summary[a][key] / summary[b][key]

    targets = []
    for language, (_, component) in GUESTS.items():
        if language != "original-hello":
            targets.append((f"{language} reuse / original-hello reuse, req/s",
                            ratio(f"{language}-reuse", "original-hello-reuse"), "(measured)"))
        if component:
            targets.append((f"{language}: ours fresh / wasmtime serve, req/s",
                            ratio(f"{language}-fresh", f"wasmtime-serve-{language}"), "(measured)"))
            targets.append((f"{language}: ours reuse / wasmtime serve, req/s",
                            ratio(f"{language}-reuse", f"wasmtime-serve-{language}"), "(measured)"))
    if baseline:
        for instance in ("fresh", "reuse"):
            targets.append((f"original-hello {instance}: this build / baseline build, server CPU per request",
                            ratio(f"original-hello-{instance}-baseline", f"original-hello-{instance}",
                                  "requests_per_cpu_second"), "1.00 (no cost)"))
    loads = {"plain": (CONNECTIONS, 1)}
    report = load.server_report("languages.py", binary, wasmtime, args, loads, runs, summary, targets)
    (RESULTS / "languages.json").write_text(json.dumps(report, indent=2))
    markdown = render(report, list(servers))
    if not args.no_record:
        load.record(markdown, section="languages")
    print(markdown)


def strip_baseline(argv):
    """--baseline BINARY, taken out before the common options are parsed."""
    if "--baseline" not in argv:
        return argv, None
    at = argv.index("--baseline")
    return argv[:at] + argv[at + 2:], argv[at + 1]


def render(report, names):
    m = report["machine"]
    lines = [
        f"Measured {report['date']} with `{report['command']}` on {m['cpu']}, {m['cores']} CPUs, "
        f"{m['memory_gib']} GiB, Linux {m['kernel']}; {report['versions']['wasmtime']}; "
        f"wrk on CPU 1, servers on CPU 0 (one shard), {CONNECTIONS} connections, "
        f"{report['settings']['reps']} interleaved reps of {report['settings']['duration_s']} s (medians).",
        "",
        "| scenario | req/s | p50 ms | p99 ms | server CPU µs per request | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        s = report["summary"][name]
        lines.append(f"| {name} | {s['rps']:,.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} "
                     f"| {1e6 / s['requests_per_cpu_second']:,.1f} | {s['errors']} |")
    lines += load.comparison_table(report["targets"])
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
