#!/usr/bin/env python3
"""The load benchmark, in one command.

    python3 benches/load.py [--quick] [--peers] [--reps 3] [--duration 5]

It builds the server in release mode, starts it pinned to the server CPUs
on benches/configs/bench.toml, drives it with wrk pinned to the other CPUs
over loopback, and reports for every scenario: req/s (median and spread
over interleaved repetitions), latency percentiles, server CPU time per
request, peak RSS, and each wasm scenario's ratio to the native route
measured in the same run. Repetitions are interleaved (A B C A B C ...) so
drift on a noisy machine hits every scenario alike.

Also measured:
  - the backend round trip: the wasm route that connects to an echo backend
    per request, against a native Rust client doing the same round trip
    (benches/native_rtt.rs);
  - latency at a set rate (benches/rate_client.rs: open loop, measured from
    each request's scheduled time, like wrk2) at 25, 50 and 75 % of each
    route's measured maximum;
  - the noisy neighbour: the wasm hello's p99 at 50 % of its maximum, alone
    and while another client keeps a guest spinning through its fuel;
  - with --peers: nginx with the same worker count answering the same body,
    and `wasmtime serve` 48 running the same hello as a wasi:http component.

Every load runs against 127.0.0.1 only and ends by itself. Results go to
benches/results/ (latest.json, latest.md, throughput.svg, latency.svg) and
the summary into benches/RESULTS.md. Tools missing on the machine (wrk,
nginx, wasmtime-cli 48, matplotlib) are installed first: Debian packages
with apt-get, Rust tools with cargo into a cache outside the repository.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
BENCHES = REPO / "benches"
RESULTS = BENCHES / "results"
CACHE = pathlib.Path(os.environ.get("SERVERLESS_WASM_BENCH_CACHE", pathlib.Path.home() / ".cache/serverless-wasm-bench"))
WASMTIME_VERSION = "48.0.8"

SCENARIOS = [
    # (name, path, modes, what it shows)
    ("native", "/static", ("plain", "pipelined"), "static_body route, no wasm: the baseline"),
    ("wasm-fresh", "/hello-fresh", ("plain", "pipelined"), "wasm hello, a clean instance per request"),
    ("wasm-reuse", "/hello-reuse", ("plain", "pipelined"), "wasm hello, instances reused"),
    ("wasm-logged", "/hello-logged", ("plain", "pipelined"), "wasm hello logging a line per request (fresh instances)"),
    ("wasm-reads-request", "/reads-request", ("plain", "pipelined"), "wasm guest reading method, path and a header"),
    # A new backend connection per request: pipelining only queues them.
    ("wasm-backend", "/backend", ("plain",), "wasm guest doing a TCP round trip to an echo backend per request"),
]
MODES = {
    # name: (connections, pipeline depth)
    "plain": (64, 1),
    "pipelined": (256, 16),
}


def log(message):
    print(message, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def as_root(cmd):
    return cmd if os.geteuid() == 0 else ["sudo"] + cmd


def apt_install(package):
    log(f"installing {package} (Debian package)")
    run(as_root(["apt-get", "update", "-qq"]))
    run(as_root(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", package]), stdout=subprocess.DEVNULL)


def ensure_tool(binary, package):
    if not shutil.which(binary):
        apt_install(package)
    return shutil.which(binary)


def ensure_cargo_tool(binary, crate, version=None):
    path = CACHE / "bin" / binary
    if path.exists():
        return path
    log(f"installing {crate} {version or ''} with cargo into {CACHE} (once; this takes a while)")
    cmd = ["cargo", "install", crate, "--locked", "--root", str(CACHE)]
    if version:
        cmd += ["--version", version]
    run(cmd)
    return path


def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log("installing matplotlib (PyPI) for the charts")
        run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


class Process:
    """A server under test, pinned with taskset; CPU time and RSS from /proc."""

    def __init__(self, name, cmd, cpus, port, env=None, cwd=None):
        self.name = name
        self.port = port
        full_env = dict(os.environ, **(env or {}))
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpus] + cmd,
            env=full_env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=open(RESULTS / f"{name}.log", "w"),
            start_new_session=True,
        )
        wait_port(port)

    def pids(self):
        """The process and its children (nginx workers)."""
        pids = [self.proc.pid]
        for entry in pathlib.Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[1]) == self.proc.pid:
                        pids.append(int(entry.name))
                except (OSError, IndexError, ValueError):
                    pass
        return pids

    def cpu_seconds(self):
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            try:
                fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime + stime
            except (OSError, IndexError):
                pass
        return total / ticks

    def peak_rss_kib(self):
        peak = 0
        for pid in self.pids():
            try:
                for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak += int(line.split()[1])
            except OSError:
                pass
        return peak

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)


def wrk(url, connections, depth, duration, cpus):
    threads = max(1, len(cpus.split(",")))
    out = subprocess.run(
        ["taskset", "-c", cpus, "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "8s",
         "-s", str(BENCHES / "wrk/report.lua"), url, "--", str(depth)],
        check=True, capture_output=True, text=True,
    ).stdout
    line = next(l for l in out.splitlines() if l.startswith("{"))
    return json.loads(line)


def measure_server(process, connections, depth, duration, client_cpus, name, rep, path="/"):
    """One wrk run (after a 1 s warm-up) against a started server, which is
    stopped after it: a record with req/s, latency, errors and requests per
    server CPU-second (which does not depend on the generator's CPU)."""
    url = f"http://127.0.0.1:{process.port}{path}"
    try:
        wrk(url, connections, depth, 1, client_cpus)  # warm-up
        before = process.cpu_seconds()
        result = wrk(url, connections, depth, duration, client_cpus)
        cpu = process.cpu_seconds() - before
    finally:
        process.stop()
    seconds = result["duration_us"] / 1e6
    return {
        "scenario": name, "rep": rep, "rps": result["requests"] / seconds,
        "p50_ms": result["latency_us"]["p50"] / 1000, "p99_ms": result["latency_us"]["p99"] / 1000,
        "errors": sum(result["errors"].values()),
        "requests_per_cpu_second": result["requests"] / max(cpu, 1e-9),
    }


def server_bench_args(doc):
    """The options every server-vs-server benchmark takes; makes the
    results directory and checks for wrk."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 s runs, 1 repetition")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.reps = 2, 1
    RESULTS.mkdir(parents=True, exist_ok=True)
    ensure_tool("wrk", "wrk")
    return args


def log_server_run(record, reps, width):
    """The progress line of one `measure_server` record."""
    log(f"rep {record['rep'] + 1}/{reps} {record['scenario']:<{width}} {record['rps']:>10,.0f} req/s"
        f"  p99 {record['p99_ms']:.2f} ms  {record['requests_per_cpu_second']:,.0f} req/CPU-s"
        + (f"  ({record['errors']} errors)" if record["errors"] else ""))


def median_records(runs, names, keys):
    """Per scenario name, the median of each key over its repetitions."""
    def median(name, key):
        values = sorted(r[key] for r in runs if r["scenario"] == name)
        return values[len(values) // 2]
    return {name: {key: median(name, key) for key in keys} for name in names}


def server_report(script, binary, wasmtime, args, loads, runs, summary, targets):
    """The JSON report of a server-vs-server benchmark: when, how, where,
    with what versions, every run, medians and targets."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": f"python3 benches/{script} " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "versions": {"serverless-wasm": version([str(binary), "--version"]),
                     "wasmtime": version([str(wasmtime), "--version"]),
                     "wrk": version(["wrk", "--version"])},
        "settings": {"duration_s": args.duration, "reps": args.reps, "loads": loads},
        "runs": runs, "summary": summary, "targets": targets,
    }


def comparison_table(targets):
    """The markdown lines of a server-vs-server report's comparisons."""
    lines = ["", "| comparison | measured | goal |", "|---|---:|---|"]
    for what, value, goal in targets:
        lines.append(f"| {what} | {value:.2f} | {goal} |")
    return lines


def rate_client(port, path, rate, duration, cpus, connections=64):
    """Latency at a set rate, from benches/rate_client.rs (one pinned core)."""
    cpu = cpus.split(",")[0]
    out = subprocess.run(
        [str(REPO / "target/release/examples/rate_client"), f"127.0.0.1:{port}", path, str(int(rate)),
         str(duration), str(connections), cpu],
        check=True, capture_output=True, text=True,
    ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return {
        "rate": rate,
        "achieved_rps": data["achieved_rps"],
        "errors": data["errors"],
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "p999_ms": data["p999_us"] / 1000,
    }


def machine():
    cpu_model = "unknown"
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    return {"cpu": cpu_model, "cores": os.cpu_count(), "kernel": platform.release(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)}


def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unavailable"


def split_cpus(args):
    cores = os.cpu_count() or 1
    if args.server_cpus and args.client_cpus:
        return args.server_cpus, args.client_cpus
    if cores < 2:
        return "0", "0"
    half = cores // 2
    server = ",".join(str(c) for c in range(half))
    client = ",".join(str(c) for c in range(half, cores))
    return args.server_cpus or server, args.client_cpus or client


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5, help="seconds per run (default 5)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    parser.add_argument("--quick", action="store_true", help="2 s runs, 1 repetition, no rate-limited runs")
    parser.add_argument("--peers", action="store_true", help="also measure nginx and wasmtime serve")
    parser.add_argument("--no-latency", action="store_true", help="skip the rate-limited latency runs")
    parser.add_argument("--server-cpus", help="CPUs for the server (default: first half)")
    parser.add_argument("--client-cpus", help="CPUs for the load generators (default: second half)")
    parser.add_argument("--no-build", action="store_true", help="use the existing release build")
    parser.add_argument("--no-record", action="store_true", help="do not rewrite benches/RESULTS.md")
    parser.add_argument("--binary", help="the server binary to measure (default: this checkout's release build)")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.reps, args.no_latency = 2, 1, True

    RESULTS.mkdir(parents=True, exist_ok=True)
    server_cpus, client_cpus = split_cpus(args)
    shards = len(server_cpus.split(","))
    ensure_tool("wrk", "wrk")
    if not args.no_build:
        log("building the release binaries")
        run(["cargo", "build", "--release", "--quiet", "--bins", "--example", "native_rtt", "--example", "rate_client"], cwd=REPO)
    binary = pathlib.Path(args.binary) if args.binary else REPO / "target/release/serverless-wasm"

    processes = []
    try:
        backend_port = free_port()
        echo = Process("echo-backend", [str(REPO / "target/release/echo-backend"), "--listen", f"127.0.0.1:{backend_port}"],
                       client_cpus, backend_port)
        processes.append(echo)
        port = free_port()
        config = (BENCHES / "configs/bench.toml").read_text()
        config = config.replace("{listen}", f"127.0.0.1:{port}").replace("{guests}", str(BENCHES / "guests")) \
                       .replace("{backend}", f"127.0.0.1:{backend_port}")
        config_path = RESULTS / "bench.toml"
        config_path.write_text(config)
        ours = Process("serverless-wasm", [str(binary), str(config_path), "--shards", str(shards), "--cpus", server_cpus],
                       server_cpus, port, env={"RUST_LOG": "warn,guest=info"})
        processes.append(ours)

        targets = [(name, f"http://127.0.0.1:{port}{path}", ours, modes) for name, path, modes, _ in SCENARIOS]
        if args.peers:
            targets += start_peers(server_cpus, shards, processes)

        runs = measure_throughput(targets, args, client_cpus)
        summary = summarize(runs)
        for process in processes:
            for name, _, p, _ in targets:
                if p is process:
                    summary.setdefault(name, {})["peak_rss_kib"] = process.peak_rss_kib()

        backend = measure_native_round_trip(f"127.0.0.1:{backend_port}", server_cpus, args)
        latency, noisy = ([], None)
        if not args.no_latency:
            latency = measure_latency(port, summary, args, client_cpus)
            noisy = measure_noisy_neighbour(port, summary, args, client_cpus)
    finally:
        for process in reversed(processes):
            process.stop()

    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python3 benches/load.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "layout": {"server_cpus": server_cpus, "client_cpus": client_cpus, "shards": shards},
        "versions": {
            "serverless-wasm": version([str(binary), "--version"]),
            "rustc": version(["rustc", "--version"]),
            "wrk": version(["wrk", "--version"]),
            "nginx": version(["nginx", "-v"]) if args.peers else "not used",
            "wasmtime": version([str(CACHE / "bin/wasmtime"), "--version"]) if args.peers else "not used",
        },
        "settings": {"duration_s": args.duration, "reps": args.reps, "modes": MODES},
        "runs": runs,
        "summary": summary,
        "backend": backend,
        "latency": latency,
        "noisy_neighbour": noisy,
    }
    report["targets"] = evaluate_targets(report)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    markdown = render_markdown(report)
    (RESULTS / "latest.md").write_text(markdown)
    draw_charts(report)
    if not args.no_record:
        record(markdown)
    print(markdown)


def start_peers(server_cpus, shards, processes):
    nginx = ensure_tool("nginx", "nginx-light")
    wasmtime = ensure_cargo_tool("wasmtime", "wasmtime-cli", WASMTIME_VERSION)
    component = build_component()
    prefix = RESULTS / "nginx"
    prefix.mkdir(exist_ok=True)
    nginx_port = free_port()
    cpus = [int(c) for c in server_cpus.split(",")]
    masks = " ".join(format(1 << c, "b") for c in cpus)
    conf = (BENCHES / "configs/nginx.conf").read_text().replace("{workers}", str(shards)) \
        .replace("{cpus}", masks).replace("{port}", str(nginx_port)).replace("{prefix}", str(prefix))
    (prefix / "nginx.conf").write_text(conf)
    peer_nginx = Process("nginx", [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")], server_cpus, nginx_port)
    processes.append(peer_nginx)
    serve_port = free_port()
    peer_serve = Process("wasmtime-serve", [str(wasmtime), "serve", "-O", "pooling-allocator=y", "-S", "cli=y", "--addr",
                                            f"127.0.0.1:{serve_port}", str(component)], server_cpus, serve_port)
    processes.append(peer_serve)
    both = tuple(MODES)
    return [("peer-nginx", f"http://127.0.0.1:{nginx_port}/", peer_nginx, both),
            ("peer-wasmtime-serve", f"http://127.0.0.1:{serve_port}/", peer_serve, both)]


def build_component():
    crate = BENCHES / "peers/hello-component"
    run(["rustup", "target", "add", "wasm32-wasip2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run(["cargo", "build", "--release", "--quiet", "--target", "wasm32-wasip2"], cwd=crate)
    return crate / "target/wasm32-wasip2/release/hello_component.wasm"


def measure_throughput(targets, args, client_cpus):
    runs = []
    total = args.reps * sum(len(modes) for *_, modes in targets)
    done = 0
    for rep in range(args.reps):
        for mode, (connections, depth) in MODES.items():
            for name, url, process, modes in targets:
                if mode not in modes:
                    continue
                done += 1
                before = process.cpu_seconds()
                result = wrk(url, connections, depth, args.duration, client_cpus)
                cpu = process.cpu_seconds() - before
                seconds = result["duration_us"] / 1e6
                rps = result["requests"] / seconds
                errors = sum(result["errors"].values())
                run_record = {
                    "scenario": name, "mode": mode, "rep": rep, "rps": rps,
                    "latency_us": result["latency_us"], "errors": result["errors"],
                    "server_cpu_us_per_request": cpu / max(result["requests"], 1) * 1e6,
                }
                runs.append(run_record)
                log(f"[{done}/{total}] rep {rep + 1}/{args.reps} {mode:<9} {name:<20} {rps:>12,.0f} req/s"
                    + (f"  ({errors} errors)" if errors else ""))
    return runs


def summarize(runs):
    summary = {}
    for run_record in runs:
        entry = summary.setdefault(run_record["scenario"], {}).setdefault(run_record["mode"], {"rps": [], "p50": [], "p99": [], "p999": [], "cpu": [], "errors": 0})
        entry["rps"].append(run_record["rps"])
        entry["p50"].append(run_record["latency_us"]["p50"])
        entry["p99"].append(run_record["latency_us"]["p99"])
        entry["p999"].append(run_record["latency_us"]["p999"])
        entry["cpu"].append(run_record["server_cpu_us_per_request"])
        entry["errors"] += sum(run_record["errors"].values())
    for name, modes in summary.items():
        for mode, e in modes.items():
            modes[mode] = {
                "rps_median": statistics.median(e["rps"]), "rps_min": min(e["rps"]), "rps_max": max(e["rps"]),
                "p50_us": statistics.median(e["p50"]), "p99_us": statistics.median(e["p99"]),
                "p999_us": statistics.median(e["p999"]),
                "server_cpu_us_per_request": statistics.median(e["cpu"]), "errors": e["errors"],
            }
    # Ratios to the native route, run by run (same repetition, same mode),
    # then the median: drift between repetitions cancels out.
    by_key = {(r["scenario"], r["mode"], r["rep"]): r["rps"] for r in runs}
    for name, modes in summary.items():
        for mode in list(modes):
            ratios = [by_key[(name, mode, rep)] / by_key[("native", mode, rep)]
                      for (n, m, rep) in by_key if n == name and m == mode and ("native", m, rep) in by_key]
            if ratios:
                modes[mode]["ratio_to_native"] = statistics.median(ratios)
    return summary


def measure_native_round_trip(backend, server_cpus, args):
    cpu = server_cpus.split(",")[0]
    out = subprocess.run([str(REPO / "target/release/examples/native_rtt"), backend, cpu, "64", str(args.duration)],
                         check=True, capture_output=True, text=True).stdout
    native = json.loads(out.strip().splitlines()[-1])
    rate = native["round_trips"] / native["seconds"]
    log(f"native round trip client: {rate:,.0f} round trips/s")
    return {"native_round_trips_per_s": rate, "native_errors": native["errors"]}


def measure_latency(port, summary, args, client_cpus):
    results = []
    for name, path in [("native", "/static"), ("wasm-fresh", "/hello-fresh"), ("wasm-reuse", "/hello-reuse")]:
        peak = summary[name]["plain"]["rps_median"]
        for share in (0.25, 0.5, 0.75):
            r = rate_client(port, path, peak * share, args.duration, client_cpus)
            r.update({"scenario": name, "share_of_max": share})
            results.append(r)
            log(f"latency {name:<12} at {share:.0%} of max ({r['rate']:,.0f}/s): p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, p99.9 {r['p999_ms']:.3f} ms")
    return results


def measure_noisy_neighbour(port, summary, args, client_cpus):
    """The wasm hello at 25 % of its maximum, alone and while one connection
    keeps a guest spinning through its fuel budget on the same shard."""
    rate = summary["wasm-fresh"]["plain"]["rps_median"] * 0.25
    alone = rate_client(port, "/hello-fresh", rate, args.duration, client_cpus)
    spinner = subprocess.Popen(
        ["taskset", "-c", client_cpus, "wrk", "-t1", "-c1", f"-d{round(args.duration) + 2}s", f"http://127.0.0.1:{port}/spin"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        beside = rate_client(port, "/hello-fresh", rate, args.duration, client_cpus)
    finally:
        spinner.wait()
    ratio = beside["p99_ms"] / alone["p99_ms"] if alone["p99_ms"] else None
    log(f"noisy neighbour: p99 {alone['p99_ms']:.3f} ms alone, {beside['p99_ms']:.3f} ms beside a spinning guest")
    return {"rate": rate, "alone": alone, "beside_spinner": beside, "p99_ratio": ratio}


def evaluate_targets(report):
    s = report["summary"]

    def ratio(name, mode="plain"):
        return s.get(name, {}).get(mode, {}).get("ratio_to_native")

    def rps(name, mode="plain"):
        return s.get(name, {}).get(mode, {}).get("rps_median")

    targets = []

    def target(what, value, goal, higher_is_better=True):
        # Compared as displayed (two decimals), so a table never shows
        # "0.90 / goal 0.9 / not met".
        shown = None if value is None else round(value, 2)
        met = None if shown is None else (shown >= goal if higher_is_better else shown <= goal)
        targets.append({"target": what, "value": value, "goal": goal, "met": met})

    target("wasm reuse / native, plain", ratio("wasm-reuse"), 0.9)
    target("wasm reuse / native, pipelined", ratio("wasm-reuse", "pipelined"), 0.9)
    target("wasm fresh / native, pipelined", ratio("wasm-fresh", "pipelined"), 0.3)
    if rps("peer-wasmtime-serve"):
        target("wasm fresh / wasmtime serve, plain", rps("wasm-fresh") / rps("peer-wasmtime-serve"), 5)
        target("wasm reuse / wasmtime serve, plain", rps("wasm-reuse") / rps("peer-wasmtime-serve"), 10)
    if rps("peer-nginx"):
        target("native / nginx, plain", rps("native") / rps("peer-nginx"), 1.2)
        target("native / nginx, pipelined", rps("native", "pipelined") / rps("peer-nginx", "pipelined"), 1.2)
    backend = report.get("backend") or {}
    if backend.get("native_round_trips_per_s") and rps("wasm-backend"):
        target("wasm backend route / native round trip", rps("wasm-backend") / backend["native_round_trips_per_s"], 0.7)
    for r in report.get("latency") or []:
        if r["share_of_max"] == 0.5:
            target(f"p99 (ms) of {r['scenario']} at 50% of max", r["p99_ms"], 1.0, higher_is_better=False)
    noisy = report.get("noisy_neighbour")
    if noisy and noisy.get("p99_ratio"):
        target("p99 beside a spinning neighbour / alone", noisy["p99_ratio"], 2.0, higher_is_better=False)
    return targets


def fmt(value, digits=2):
    return "–" if value is None else f"{value:,.{digits}f}"


def render_markdown(report):
    m, lay, v = report["machine"], report["layout"], report["versions"]
    lines = [
        f"Run {report['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}.",
        f"Server on CPU(s) {lay['server_cpus']} ({lay['shards']} shard(s)), load generators on CPU(s) {lay['client_cpus']}, loopback.",
        f"Command: `{report['command']}` ({report['settings']['reps']} interleaved repetitions of "
        f"{report['settings']['duration_s']} s; plain = 64 connections, pipelined = 256 connections x depth 16).",
        "",
        "Versions: " + ", ".join(f"{k} `{val}`" for k, val in v.items()),
        "",
        "| scenario | mode | req/s (median) | min – max | ratio to native | p50 µs | p99 µs | p99.9 µs | server CPU µs/req | peak RSS MiB | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, modes in report["summary"].items():
        rss = modes.get("peak_rss_kib")
        for mode in MODES:
            e = modes.get(mode)
            if not e:
                continue
            lat = ("(per batch)", "", "") if mode == "pipelined" else (fmt(e["p50_us"], 0), fmt(e["p99_us"], 0), fmt(e["p999_us"], 0))
            lines.append(
                f"| {name} | {mode} | {e['rps_median']:,.0f} | {e['rps_min']:,.0f} – {e['rps_max']:,.0f} | "
                f"{fmt(e.get('ratio_to_native'))} | {lat[0]} | {lat[1]} | {lat[2]} | "
                f"{e['server_cpu_us_per_request']:.2f} | {fmt(rss / 1024 if rss else None, 1)} | {e['errors']} |")
    lines += ["", "Pipelined latencies are per batch of 16 in wrk, so they are not shown."]
    backend = report.get("backend") or {}
    if backend:
        lines += ["", f"Backend round trip: native client {backend['native_round_trips_per_s']:,.0f} round trips/s "
                      f"(64 concurrent, one glommio shard on the server CPU)."]
    if report.get("latency"):
        lines += ["", "Latency at a set rate (benches/rate_client.rs: open loop, from the scheduled send time; 64 connections):", "",
                  "| scenario | share of max | rate req/s | p50 ms | p99 ms | p99.9 ms |", "|---|---:|---:|---:|---:|---:|"]
        for r in report["latency"]:
            lines.append(f"| {r['scenario']} | {r['share_of_max']:.0%} | {r['rate']:,.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['p999_ms']:.3f} |")
    noisy = report.get("noisy_neighbour")
    if noisy:
        lines += ["", f"Noisy neighbour (wasm-fresh at {noisy['rate']:,.0f} req/s): p99 {noisy['alone']['p99_ms']:.3f} ms alone, "
                      f"{noisy['beside_spinner']['p99_ms']:.3f} ms while one connection keeps a guest spinning through its fuel "
                      f"(x{fmt(noisy['p99_ratio'])})."]
    lines += ["", "| target | measured | goal | met |", "|---|---:|---:|---|"]
    for t in report["targets"]:
        met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
        lines.append(f"| {t['target']} | {fmt(t['value'])} | {t['goal']} | {met} |")
    lines += ["", "Charts: `benches/results/throughput.svg`, `benches/results/latency.svg`; raw numbers: `benches/results/latest.json`."]
    return "\n".join(lines) + "\n"


def draw_charts(report):
    ensure_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["summary"])
    fig, axes = plt.subplots(1, len(MODES), figsize=(6 * len(MODES), 4.5))
    for ax, mode in zip(axes, MODES):
        medians = [report["summary"][n].get(mode, {}).get("rps_median", 0) for n in names]
        low = [m - report["summary"][n].get(mode, {}).get("rps_min", m) for n, m in zip(names, medians)]
        high = [report["summary"][n].get(mode, {}).get("rps_max", m) - m for n, m in zip(names, medians)]
        ax.bar(names, medians, yerr=[low, high], capsize=4, color="#4a7ab5")
        ax.set_title(f"req/s, {mode} (median, min–max)")
        ax.tick_params(axis="x", rotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    fig.tight_layout()
    fig.savefig(RESULTS / "throughput.svg")
    plt.close(fig)

    rows = report.get("latency") or []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if rows:
        labels = [f"{r['scenario']}\n{r['share_of_max']:.0%}" for r in rows]
        x = range(len(rows))
        for offset, key, label in ((-0.25, "p50_ms", "p50"), (0, "p99_ms", "p99"), (0.25, "p999_ms", "p99.9")):
            ax.bar([i + offset for i in x], [r[key] for r in rows], width=0.25, label=label)
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylabel("ms")
        ax.set_title("latency at a set rate (share of each route's max)")
        ax.legend()
    else:
        names = [n for n in report["summary"] if "plain" in report["summary"][n]]
        for offset, key, label in ((-0.25, "p50_us", "p50"), (0, "p99_us", "p99"), (0.25, "p999_us", "p99.9")):
            ax.bar([i + offset for i in range(len(names))], [report["summary"][n]["plain"][key] for n in names], width=0.25, label=label)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=45, ha="right")
        ax.set_ylabel("µs")
        ax.set_title("latency at full load, plain (closed loop)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "latency.svg")
    plt.close(fig)


def record(markdown, section="load"):
    """Replaces the `section` of benches/RESULTS.md (between its markers)."""
    path = BENCHES / "RESULTS.md"
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{markdown}{end}{tail}")


if __name__ == "__main__":
    main()
