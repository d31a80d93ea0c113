#!/usr/bin/env python3
"""The wasi:http component benchmark: the same hello component
(samples/components/rust/hello) served by serverless-wasm and by
`wasmtime serve` 48 with its pooling allocator, in one run.

    python3 benches/components.py [--reps 3] [--duration 5] [--quick]

Two comparisons, each with the load generator (wrk) placed the same way for
every server it compares:

  1. One core each: serverless-wasm with one shard pinned to CPU 0 against
     `wasmtime serve -O pooling-allocator=y -S cli=y` pinned to CPU 0; wrk
     on CPU 1. Targets: >= 3x its req/s and <= 1/3 of its p99.
  2. Scaling: one shard (CPU 0) against two shards (CPUs 0-1), wrk on both
     CPUs in both cases (a 2-core machine has no third core for it), plus
     requests per server CPU-second, which does not depend on how much CPU
     the generator takes. Target: two shards >= 1.8x one shard.

Each under two loads, plain (64 connections, one request at a time) and
pipelined (256 connections, 16 deep, as TechEmpower's plaintext test: the
generator's own cost per request shrinks, which matters when it shares the
server's cores), and each with the route's default `instance = "fresh"` (a
new instance per request, as `wasmtime serve` does) and again with
`instance = "reuse"`.

Repetitions are interleaved. Results go to benches/results/components.json
and the `components` section of benches/RESULTS.md. Uses load.py's helpers
(wrk and wasmtime-cli 48 are installed if missing).
"""

import json
import sys

import load
from load import REPO, BENCHES, RESULTS, Process, free_port, log, run

# load: (connections, pipeline depth), as in load.py; TechEmpower's
# plaintext test pipelines 16 deep.
LOADS = {"plain": (64, 1), "pipelined": (256, 16)}


def main():
    args = load.server_bench_args(__doc__)
    wasmtime = load.ensure_cargo_tool("wasmtime", "wasmtime-cli", load.WASMTIME_VERSION)
    if not args.no_build:
        log("building the server and the sample components")
        run(["cargo", "build", "--release", "--quiet", "--bin", "serverless-wasm"], cwd=REPO)
        run(["bash", str(REPO / "samples/components/build-rust.sh")], stdout=sys.stderr)
    component = REPO / "samples/components/build/hello.wasm"
    binary = REPO / "target/release/serverless-wasm"

    def ours(name, cpus, instance="fresh"):
        port = free_port()
        config = (BENCHES / "configs/components.toml").read_text() \
            .replace("{listen}", f"127.0.0.1:{port}").replace("{components}", str(component.parent))
        config += f'instance = "{instance}"\n'  # the route is the file's last table
        path = RESULTS / f"{name}.toml"
        path.write_text(config)
        shards = len(cpus.split(","))
        return Process(name, [str(binary), str(path), "--shards", str(shards), "--cpus", cpus], cpus, port,
                       env={"RUST_LOG": "warn"})

    def serve(name, cpus):
        port = free_port()
        return Process(name, [str(wasmtime), "serve", "-O", "pooling-allocator=y", "-S", "cli=y",
                              "--addr", f"127.0.0.1:{port}", str(component)], cpus, port)

    def reuse(name, cpus):
        return ours(name, cpus, instance="reuse")

    # (scenario, server factory, server CPUs, wrk CPUs, load)
    plan = []
    for load_name in LOADS:
        suffix = "" if load_name == "plain" else f"-{load_name}"
        plan.append((f"wasmtime-serve-1-core{suffix}", serve, "0", "1", load_name))
        for instance, factory in (("", ours), ("-reuse", reuse)):
            plan += [
                (f"ours-1-shard{instance}{suffix}", factory, "0", "1", load_name),
                (f"ours-1-shard{instance}-shared{suffix}", factory, "0", "0,1", load_name),
                (f"ours-2-shards{instance}-shared{suffix}", factory, "0,1", "0,1", load_name),
            ]
    runs = []
    for rep in range(args.reps):
        for name, factory, server_cpus, client_cpus, load_name in plan:
            connections, depth = LOADS[load_name]
            process = factory(name, server_cpus)
            record = load.measure_server(process, connections, depth, args.duration, client_cpus, name, rep)
            runs.append(record)
            load.log_server_run(record, args.reps, 36)

    summary = load.median_records(runs, [name for name, *_ in plan], ("rps", "p50_ms", "p99_ms", "requests_per_cpu_second"))

    def ratio(a, b, key="rps"):
        return summary[a][key] / summary[b][key]

    targets = []
    for load_name in LOADS:
        suffix = "" if load_name == "plain" else f"-{load_name}"
        for instance in ("", "-reuse"):
            label = f"{'reuse' if instance else 'fresh'}, {load_name}"
            targets.append((f"{label}: req/s, one core: ours / wasmtime serve",
                            ratio(f"ours-1-shard{instance}{suffix}", f"wasmtime-serve-1-core{suffix}"), ">= 3"))
            if load_name == "plain":  # pipelined latency is per batch
                targets.append((f"{label}: p99, one core: ours / wasmtime serve",
                                ratio(f"ours-1-shard{instance}{suffix}", f"wasmtime-serve-1-core{suffix}", "p99_ms"),
                                "<= 0.33"))
            targets.append((f"{label}: req/s, 2 shards / 1 shard (wrk sharing the CPUs)",
                            ratio(f"ours-2-shards{instance}-shared{suffix}", f"ours-1-shard{instance}-shared{suffix}"),
                            ">= 1.8"))
            targets.append((f"{label}: req per CPU-second, 2 shards / 1 shard",
                            ratio(f"ours-2-shards{instance}-shared{suffix}", f"ours-1-shard{instance}-shared{suffix}",
                                  "requests_per_cpu_second"), "~1 (linear)"))
    report = load.server_report("components.py", binary, wasmtime, args, LOADS, runs, summary, targets)
    (RESULTS / "components.json").write_text(json.dumps(report, indent=2))
    markdown = render(report, plan)
    if not args.no_record:
        load.record(markdown, section="components")
    print(markdown)


def render(report, plan):
    m = report["machine"]
    lines = [
        f"Measured {report['date']} with `{report['command']}` on {m['cpu']}, {m['cores']} CPUs, "
        f"{m['memory_gib']} GiB, Linux {m['kernel']}; {report['versions']['wasmtime']}; "
        f"wrk, {report['settings']['reps']} interleaved reps of {report['settings']['duration_s']} s (medians); "
        "plain = 64 connections, pipelined = 256 connections x depth 16. "
        "Same `hello.wasm` for both servers.",
        "",
        "| scenario | server CPUs | wrk CPUs | load | req/s | p50 ms | p99 ms | req per server CPU-s |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for name, _, server_cpus, client_cpus, load_name in plan:
        s = report["summary"][name]
        # wrk times a pipelined batch, not a request: no latency for those.
        latency = f"{s['p50_ms']:.2f} | {s['p99_ms']:.2f}" if load_name == "plain" else "– | –"
        lines.append(f"| {name} | {server_cpus} | {client_cpus} | {load_name} | {s['rps']:,.0f} | {latency} "
                     f"| {s['requests_per_cpu_second']:,.0f} |")
    lines += ["", "| target | measured | goal |", "|---|---:|---|"]
    for what, value, goal in report["targets"]:
        lines.append(f"| {what} | {value:.2f} | {goal} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
