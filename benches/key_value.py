#!/usr/bin/env python3
"""The key-value benchmark (issue #17): a visit-counter route (every
request increments one key and answers the count; the guest logs a line
per request, like the original samples) with the embedded store and with
Redis, beside `redis-benchmark` INCR against the same redis-server, in one
run, interleaved.

    python3 benches/key_value.py [--reps 3] [--duration 5] [--quick]

Server side on CPU 0 (our one shard; redis-server too, so the Redis rows
measure the whole server side on one core), clients on CPU 1 (wrk with 64
connections; redis-benchmark with 64 clients). Scenarios:
  - static: the native route of the same server (no wasm, no store);
  - module-hello: samples/hello.wat (logs, answers; no store), `reuse`;
  - module-embedded / module-redis: samples/counter.wasm (`kv_v1`),
    `instance = "reuse"`;
  - component-embedded: samples/components/rust/counter (`wasi:keyvalue`),
    `instance = "reuse"`;
  - redis-benchmark-incr: `redis-benchmark -t incr -c 64`, Redis alone.
Results go to benches/results/key_value.json and the `key-value` section
of benches/RESULTS.md.
"""

import json
import re
import shutil
import subprocess
import sys
import time

import load
from load import REPO, RESULTS, Process, free_port, log, run

CONNECTIONS = 64

CONFIG = """listen_address = "127.0.0.1:{port}"

[server]
state_dir = "{state}"
max_connections_per_shard = 20000

[key_value.redis]
type = "redis"
url = "redis://127.0.0.1:{redis_port}"
prefix = "bench:"

[[applications]]
method = "GET"
url_path = "/static"
static_body = "visits: 1"

[[applications]]
method = "GET"
url_path = "/module-hello"
file_path = "{samples}/hello.wat"
function = "hello"
instance = "reuse"

[[applications]]
method = "GET"
url_path = "/module-embedded"
file_path = "{samples}/counter.wasm"
instance = "reuse"
key_value_stores = ["default"]

[[applications]]
method = "GET"
url_path = "/module-redis"
file_path = "{samples}/counter.wasm"
instance = "reuse"
key_value_stores = ["redis"]
env = {{ store = "redis" }}

[[applications]]
method = "GET"
url_path = "/component-embedded/*"
file_path = "{samples}/components/build/counter.wasm"
instance = "reuse"
key_value_stores = ["default"]
"""

ROUTES = {
    "static": "/static",
    "module-hello": "/module-hello",
    "module-embedded": "/module-embedded",
    "module-redis": "/module-redis",
    "component-embedded": "/component-embedded/counter",
}


def redis_benchmark(port, duration):
    """redis-benchmark INCR for about `duration` seconds: req/s."""
    requests = int(150_000 * duration)
    out = subprocess.run(
        ["taskset", "-c", "1", "redis-benchmark", "-p", str(port), "-t", "incr", "-n", str(requests),
         "-c", str(CONNECTIONS), "-q"],
        check=True, capture_output=True, text=True,
    ).stdout
    found = re.findall(r"INCR: ([0-9.]+) requests per second", out)
    return float(found[-1])


def main():
    args = load.server_bench_args(__doc__)
    load.ensure_tool("redis-server", "redis-server")
    if not args.no_build:
        log("building the server and the counter samples")
        run(["cargo", "build", "--release", "--quiet", "--bin", "serverless-wasm"], cwd=REPO)
        run(["bash", str(REPO / "samples/components/build-rust.sh")], stdout=sys.stderr)
    binary = REPO / "target/release/serverless-wasm"
    redis_port = free_port()
    redis = Process("redis-server", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                     "--save", "", "--appendonly", "no"], "0", redis_port)
    state = RESULTS / "key-value-state"

    def start(name):
        shutil.rmtree(state, ignore_errors=True)
        port = free_port()
        path = RESULTS / f"{name}.toml"
        path.write_text(CONFIG.format(port=port, state=state, redis_port=redis_port, samples=REPO / "samples"))
        return Process(name, [str(binary), str(path), "--shards", "1", "--cpus", "0"], "0", port,
                       env={"RUST_LOG": "warn"})

    names = list(ROUTES) + ["redis-benchmark-incr"]
    runs = []
    try:
        for rep in range(args.reps):
            for name, path in ROUTES.items():
                record = load.measure_server(start(name), CONNECTIONS, 1, args.duration, "1", name, rep, path)
                runs.append(record)
                load.log_server_run(record, args.reps, 24)
            before = redis.cpu_seconds()
            started = time.monotonic()
            rps = redis_benchmark(redis_port, args.duration)
            elapsed = time.monotonic() - started
            cpu = redis.cpu_seconds() - before
            record = {"scenario": "redis-benchmark-incr", "rep": rep, "rps": rps, "p50_ms": 0, "p99_ms": 0,
                      "errors": 0, "requests_per_cpu_second": rps * elapsed / max(cpu, 1e-9)}
            runs.append(record)
            load.log_server_run(record, args.reps, 24)
    finally:
        redis.stop()
        shutil.rmtree(state, ignore_errors=True)

    summary = load.median_records(runs, names, ("rps", "p50_ms", "p99_ms", "requests_per_cpu_second", "errors"))

    def ratio(a, b):
        return summary[a]["rps"] / summary[b]["rps"]

    targets = [
        ("module-embedded / static (req/s)", ratio("module-embedded", "static"), "(measured)"),
        ("module-embedded / module-hello (req/s): the store's share", ratio("module-embedded", "module-hello"), "(measured)"),
        ("module-redis / module-hello (req/s)", ratio("module-redis", "module-hello"), "(measured)"),
        ("module-redis / redis-benchmark INCR (req/s)", ratio("module-redis", "redis-benchmark-incr"), "(measured)"),
        ("module-embedded / redis-benchmark INCR (req/s)", ratio("module-embedded", "redis-benchmark-incr"), "(measured)"),
        ("component-embedded / module-embedded (req/s)", ratio("component-embedded", "module-embedded"), "(measured)"),
    ]
    report = load.server_report("key_value.py", binary, binary, args, {"plain": (CONNECTIONS, 1)}, runs, summary, targets)
    report["versions"]["redis"] = load.version(["redis-server", "--version"])
    (RESULTS / "key_value.json").write_text(json.dumps(report, indent=2))
    markdown = render(report, names)
    if not args.no_record:
        load.record(markdown, section="key-value")
    print(markdown)


def render(report, names):
    m = report["machine"]
    lines = [
        f"Measured {report['date']} with `{report['command']}` on {m['cpu']}, {m['cores']} CPUs, "
        f"{m['memory_gib']} GiB, Linux {m['kernel']}; {report['versions']['redis']}. "
        f"Server side on CPU 0 (one shard, and redis-server), clients on CPU 1 ({CONNECTIONS} connections); "
        f"{report['settings']['reps']} interleaved reps of {report['settings']['duration_s']} s (medians). "
        "Every counter request increments one key; embedded writes are committed (fsync) before they are answered.",
        "",
        "| scenario | req/s | p50 ms | p99 ms | req per server CPU-s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names:
        s = report["summary"][name]
        latency = "– | –" if name == "redis-benchmark-incr" else f"{s['p50_ms']:.2f} | {s['p99_ms']:.2f}"
        lines.append(f"| {name} | {s['rps']:,.0f} | {latency} | {s['requests_per_cpu_second']:,.0f} |")
    lines += ["", "| comparison | measured |", "|---|---:|"]
    for what, value, _ in report["targets"]:
        lines.append(f"| {what} | {value:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
