#!/usr/bin/env python3
"""What a hot reload costs while the server serves.

One server (the first half of the CPUs), one route `/hello` whose guest
logs a line per request (as the original samples do) and answers a text
that each reload changes (so every reload replaces, compiles and swaps in
a module), plus a native `/static` route; the admin listener asks for the
reloads (`POST /reload`).

- latency of `/hello` at a set rate (benches/rate_client.rs, no
  coordinated omission) without reloads, and with a reload every second,
  interleaved; each figure the median of its runs, the comparison a ratio;
- switch time: from sending `POST /reload` to its answer, which comes when
  every shard serves the new generation (and the server's own
  `elapsed_ms`);
- RSS of the server after 1 and after 50 reloads (each a new module), and
  its generations alive per shard afterwards (1 means the replaced ones
  were freed).

    python3 benches/reload.py [--rate 20000] [--duration 10] [--reps 3] [--record]
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import load

GUEST = """(module
  (import "env" "log" (func $log (param i32 i64)))
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "Hello world with api!")
  (data (i32.const 64) "{text}")
  (func (export "handle")
    (call $log (i32.const 0) (i64.const 21))
    (call $body (i32.const 64) (i64.const {length}))))
"""

CONFIG = """listen_address = "127.0.0.1:{port}"

[admin]
listen_address = "127.0.0.1:{admin}"

[server]
max_connections_per_shard = 20000

[[applications]]
name = "hello"
method = "GET"
url_path = "/hello"
file_path = "hello.wat"

[[applications]]
name = "static"
method = "GET"
url_path = "/static"
static_body = "Hello, World!"
"""


class Server:
    def __init__(self, workdir, server_cpus):
        self.dir = pathlib.Path(workdir)
        self.port, self.admin = load.free_port(), load.free_port()
        self.version = 0
        self.write_module()
        config = self.dir / "config.toml"
        config.write_text(CONFIG.format(port=self.port, admin=self.admin))
        shards = len(server_cpus.split(","))
        binary = load.REPO / "target/release/serverless-wasm"
        self.process = load.Process("serverless-wasm-reload", [str(binary), str(config), "--shards", str(shards),
                                    "--cpus", server_cpus], server_cpus, self.port,
                                    env={"RUST_LOG": "warn,guest=info"}, cwd=str(self.dir))
        self.shards = shards

    def write_module(self):
        text = f"hello v{self.version}"
        path = self.dir / "hello.wat"
        path.with_suffix(".new").write_text(GUEST.format(text=text, length=len(text)))
        path.with_suffix(".new").rename(path)

    def reload(self):
        """Replaces the module and reloads; (round trip ms, server's elapsed_ms)."""
        self.version += 1
        self.write_module()
        request = urllib.request.Request(f"http://127.0.0.1:{self.admin}/reload", method="POST", data=b"")
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        round_trip = (time.perf_counter() - started) * 1000
        if answer.get("outcome") != "applied":
            raise RuntimeError(f"reload not applied: {answer}")
        return round_trip, answer["elapsed_ms"]

    def rss_kib(self):
        for line in pathlib.Path(f"/proc/{self.process.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def generations_alive(self):
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=5).read().decode()
        return [int(float(l.split()[-1])) for l in metrics.splitlines()
                if l.startswith("serverless_wasm_shard_generations_alive{")]


def reload_every_second(server, stop, switches):
    while not stop.wait(1.0):
        switches.append(server.reload())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=20000)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--server-cpus")
    parser.add_argument("--client-cpus")
    args = parser.parse_args()
    server_cpus, client_cpus = load.split_cpus(args)
    load.run(["cargo", "build", "--release", "--locked", "--bins", "--examples"], cwd=load.REPO)

    with tempfile.TemporaryDirectory() as workdir:
        server = Server(workdir, server_cpus)
        try:
            time.sleep(0.5)
            server.reload()
            rss_after_1 = server.rss_kib()
            runs = {"no reloads": [], "a reload every second": []}
            switches = []
            for _ in range(args.reps):
                for name in runs:
                    stop = threading.Event()
                    reloader = None
                    if name != "no reloads":
                        reloader = threading.Thread(target=reload_every_second, args=(server, stop, switches))
                        reloader.start()
                    runs[name].append(load.rate_client(server.port, "/hello", args.rate, args.duration, client_cpus))
                    stop.set()
                    if reloader:
                        reloader.join()
            while server.version < 50:
                switches.append(server.reload())
            time.sleep(1)
            rss_after_50 = server.rss_kib()
            alive = server.generations_alive()
        finally:
            server.process.stop()

    def median(name, key):
        return statistics.median(r[key] for r in runs[name])

    base, reloading = "no reloads", "a reload every second"
    lines = [
        f"Machine: {load.machine()['cpu']}, {load.machine()['cores']} cores; server on CPU(s) {server_cpus} "
        f"({server.shards} shard(s)), rate client on {client_cpus}.",
        f"Command: `python3 benches/reload.py --rate {args.rate} --duration {args.duration:g} --reps {args.reps}`; "
        f"`/hello` logs one line per request and answers a text each reload changes (a new module compiled and "
        f"swapped in per reload); {args.reps} interleaved runs of {args.duration:g} s each, medians.",
        "",
        f"| `/hello` at {args.rate} req/s | achieved req/s | p50 ms | p99 ms | p99.9 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    for name in runs:
        errors = sum(r["errors"] for r in runs[name])
        lines.append(f"| {name} | {median(name, 'achieved_rps'):.0f} | {median(name, 'p50_ms'):.3f} | "
                     f"{median(name, 'p99_ms'):.3f} | {median(name, 'p999_ms'):.3f} | {errors} |")
    ratio = median(reloading, "p99_ms") / median(base, "p99_ms")
    round_trips = [s[0] for s in switches]
    elapsed = [s[1] for s in switches]
    lines += [
        "",
        f"- p99 with a reload every second / without: **{ratio:.2f}×** (goal ≤ 2×).",
        f"- Switch time, `POST /reload` sent → answered (every shard on the new generation), over "
        f"{len(switches)} reloads: median {statistics.median(round_trips):.1f} ms, max {max(round_trips):.1f} ms "
        f"(the server's own `elapsed_ms`: median {statistics.median(elapsed):.0f} ms). It includes reading the "
        f"file, compiling the new module and up to one 50 ms look of each shard at its inbox.",
        f"- RSS after 1 reload: {rss_after_1 / 1024:.1f} MiB; after 50 (each a new module): "
        f"{rss_after_50 / 1024:.1f} MiB; generations alive per shard afterwards: {alive}.",
        "",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if args.record:
        load.record(markdown, section="reload")


if __name__ == "__main__":
    sys.exit(main())
