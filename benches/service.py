#!/usr/bin/env python3
"""What running it as a service costs, measured against itself in one run.

- the hello route (fresh instances) with no admin listener, with the admin
  listener scraped every second (as Prometheus would), and with that plus a
  Common Log Format access log written to a file: plain load;
- a guest that logs one line per request (the original samples do) against
  the same guest silent, on the first configuration: plain and pipelined.

Repetitions are interleaved; each figure is the median of its runs, and
each comparison a ratio of medians. Loopback only; the server on the first
half of the CPUs, wrk on the other half (as benches/load.py).

    python3 benches/service.py [--duration 5] [--reps 3] [--record]
"""

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

import load

CONFIGS = {
    "no admin": "",
    "admin, scraped every 1 s": '[admin]\nlisten_address = "127.0.0.1:{admin}"\n',
    "admin + access log": '[admin]\nlisten_address = "127.0.0.1:{admin}"\n'
                          '[access_log]\npath = "{dir}/access.log"\nformat = "common"\n',
}


def scrape_every_second(port, stop):
    while not stop.wait(1.0):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
        except OSError:
            pass


def measure(name, extra, paths, modes, args, server_cpus, client_cpus, workdir):
    port, admin = load.free_port(), load.free_port()
    config = (load.BENCHES / "configs/bench.toml").read_text()
    config = config.replace("{listen}", f"127.0.0.1:{port}").replace("{guests}", str(load.BENCHES / "guests")) \
                   .replace("{backend}", "127.0.0.1:9")
    config = config + "\n" + extra.format(admin=admin, dir=workdir)
    path = load.RESULTS / "service.toml"
    path.write_text(config)
    binary = load.REPO / "target/release/serverless-wasm"
    shards = len(server_cpus.split(","))
    server = load.Process("serverless-wasm", [str(binary), str(path), "--shards", str(shards), "--cpus", server_cpus],
                          server_cpus, port, env={"RUST_LOG": "warn,guest=info"})
    stop = threading.Event()
    if "admin" in name:
        threading.Thread(target=scrape_every_second, args=(admin, stop), daemon=True).start()
    results = {}
    try:
        for route in paths:
            for mode in modes:
                connections, depth = load.MODES[mode]
                result = load.wrk(f"http://127.0.0.1:{port}{route}", connections, depth, args.duration, client_cpus)
                results[(route, mode)] = result["requests"] / (result["duration_us"] / 1e6)
    finally:
        stop.set()
        server.stop()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="write the table into benches/RESULTS.md")
    args = parser.parse_args()
    args.server_cpus = args.client_cpus = None
    server_cpus, client_cpus = load.split_cpus(args)
    load.RESULTS.mkdir(parents=True, exist_ok=True)
    load.ensure_tool("wrk", "wrk")
    load.run(["cargo", "build", "--release", "--quiet", "--bins"], cwd=load.REPO)

    rps = {}
    with tempfile.TemporaryDirectory() as workdir:
        for rep in range(args.reps):
            for name, extra in CONFIGS.items():
                if name == "no admin":
                    paths, modes = ("/hello-fresh", "/hello-logged"), ("plain", "pipelined")
                else:
                    paths, modes = ("/hello-fresh",), ("plain",)
                print(f"rep {rep + 1}/{args.reps}: {name}", file=sys.stderr, flush=True)
                for key, value in measure(name, extra, paths, modes, args, server_cpus, client_cpus, workdir).items():
                    rps.setdefault((name,) + key, []).append(value)

    median = {key: statistics.median(values) for key, values in rps.items()}
    base = median[("no admin", "/hello-fresh", "plain")]
    rows = [
        ("hello, plain: admin listener scraped every 1 s vs none",
         median[("admin, scraped every 1 s", "/hello-fresh", "plain")], base, "≥ 0.97"),
        ("hello, plain: admin + access log vs none",
         median[("admin + access log", "/hello-fresh", "plain")], base, "≥ 0.90"),
        ("logging guest vs silent guest, plain",
         median[("no admin", "/hello-logged", "plain")], base, "≥ 0.90"),
        ("logging guest vs silent guest, pipelined",
         median[("no admin", "/hello-logged", "pipelined")], median[("no admin", "/hello-fresh", "pipelined")], "≥ 0.75"),
    ]
    m = load.machine()
    lines = [
        f"Run {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} on {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gib']} GiB, Linux {m['kernel']}: "
        f"`python3 benches/service.py --reps {args.reps} --duration {args.duration:g}` "
        f"(server on CPU(s) {server_cpus}, wrk on {client_cpus}; plain = 64 connections, pipelined = 256 x 16).",
        "",
        "| comparison | req/s | baseline req/s | ratio | goal |",
        "|---|---:|---:|---:|---|",
    ]
    for label, value, baseline, goal in rows:
        lines.append(f"| {label} | {value:,.0f} | {baseline:,.0f} | {value / baseline:.3f} | {goal} |")
    lines += ["", "Runs (req/s): " + "; ".join(
        f"{name} {route} {mode}: {', '.join(f'{v:,.0f}' for v in values)}" for (name, route, mode), values in sorted(rps.items()))]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.record:
        load.record(table, section="service")


if __name__ == "__main__":
    main()
