#!/usr/bin/env python3
"""Measures what each performance knob does on this machine.

    python3 tuning/sweep.py [--duration 3] [--reps 2] [--knob NAME ...]

For every knob it starts the server on benches/configs/bench.toml with the
knob at each of a few values (everything else at its default), and measures
the native route and the wasm hello (fresh) with wrk, plain and pipelined,
interleaving the values so drift hits them alike. Guest knobs (fuel yield
interval) are measured on a computing guest. The table it prints (and
writes to tuning/results.md) is what tuning/README.md quotes.
Everything runs on 127.0.0.1 and stops by itself.
"""

import argparse
import pathlib
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
import load  # noqa: E402

# knob: (where, values, default, paths to measure)
KNOBS = {
    "preempt_timer_us": ("server", [250, 500, 2000, 100000], 500, ["/static", "/hello-fresh"]),
    "spin_before_park_us": ("server", [0, 100, 1000], 0, ["/static", "/hello-fresh"]),
    "read_buffer_bytes": ("server", [4096, 16384, 65536], 16384, ["/static", "/hello-fresh"]),
    "keep_resident_bytes": ("server", [0, 65536, 2097152], 2097152, ["/hello-fresh"]),
    "instance_slots_per_shard": ("server", [16, 256, 1000], 256, ["/hello-fresh"]),
    "fuel_yield_interval": ("compute", [10000, 100000, 1000000], 100000, ["/compute"]),
}

COMPUTE_ROUTE = """
[[applications]]
method = "GET"
url_path = "/compute"
file_path = "{tests}/busy.wat"
fuel = 100000000
fuel_yield_interval = VALUE
"""


def modes_for(path):
    """Pipelining a computing route only queues requests behind each other
    until they time out; it is measured plain."""
    if path == "/compute":
        return {"plain": load.MODES["plain"]}
    return load.MODES


def config_for(knob, value, port, backend):
    where, *_ = KNOBS[knob]
    text = (load.BENCHES / "configs/bench.toml").read_text()
    text = text.replace("{listen}", f"127.0.0.1:{port}").replace("{guests}", str(load.BENCHES / "guests")) \
               .replace("{backend}", backend)
    if where == "server":
        text = text.replace("[server]\n", f"[server]\n{knob} = {value}\n", 1)
    else:
        text += COMPUTE_ROUTE.replace("VALUE", str(value)).replace("{tests}", str(ROOT / "tests/guests"))
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--knob", action="append", choices=sorted(KNOBS), help="only these knobs")
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    load.RESULTS.mkdir(parents=True, exist_ok=True)
    load.ensure_tool("wrk", "wrk")
    if not args.no_build:
        load.run(["cargo", "build", "--release", "--quiet", "--bins"], cwd=ROOT)
    server_cpus, client_cpus = load.split_cpus(argparse.Namespace(server_cpus=None, client_cpus=None))
    lines = ["| knob | value | route | mode | req/s (median) | vs default |", "|---|---:|---|---|---:|---:|"]
    for knob in args.knob or KNOBS:
        _, values, default, paths = KNOBS[knob]
        rps = {}
        for rep in range(args.reps):
            for value in values:
                port = load.free_port()
                (load.RESULTS / "sweep.toml").write_text(config_for(knob, value, port, "127.0.0.1:9"))
                server = load.Process("sweep-server", [str(ROOT / "target/release/serverless-wasm"), str(load.RESULTS / "sweep.toml"),
                                                       "--shards", str(len(server_cpus.split(","))), "--cpus", server_cpus],
                                      server_cpus, port, env={"RUST_LOG": "warn"})
                try:
                    for path in paths:
                        for mode, (connections, depth) in modes_for(path).items():
                            result = load.wrk(f"http://127.0.0.1:{port}{path}", connections, depth, args.duration, client_cpus)
                            rate = result["requests"] / (result["duration_us"] / 1e6)
                            rps.setdefault((value, path, mode), []).append(rate)
                            load.log(f"{knob}={value} {path} {mode}: {rate:,.0f} req/s")
                finally:
                    server.stop()
        for value in values:
            for path in paths:
                for mode in modes_for(path):
                    median = statistics.median(rps[(value, path, mode)])
                    base = statistics.median(rps[(default, path, mode)])
                    mark = " (default)" if value == default else ""
                    lines.append(f"| {knob} | {value}{mark} | {path} | {mode} | {median:,.0f} | {median / base:.2f} |")
    table = "\n".join(lines) + "\n"
    header = (f"Measured with `python3 tuning/sweep.py {' '.join(sys.argv[1:])}` on {load.machine()['cpu']}, "
              f"{load.machine()['cores']} cores, Linux {load.machine()['kernel']}: server on CPU(s) {server_cpus}, "
              f"wrk on {client_cpus}, {args.reps} interleaved repetitions of {args.duration:g} s.\n\n")
    (ROOT / "tuning/results.md").write_text(header + table)
    print(header + table)


if __name__ == "__main__":
    main()
