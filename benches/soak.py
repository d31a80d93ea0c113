#!/usr/bin/env python3
"""The soak: mixed load against one server for a long time, watching for leaks.

    python3 benches/soak.py [--duration 600] [--sample 5] [--record]

Load, all on 127.0.0.1, all stopping by themselves after --duration:
  - healthy routes, with wrk: the native route, the wasm hello, the
    request echo (POST), and a wasm route doing a backend round trip to a
    real echo backend; none of them may ever answer 5xx;
  - misbehaving routes, from a client thread each: a guest that traps
    (500), one that spins until its fuel runs out (503), a memory hog
    refused at its limit (200);
  - connection churn: a new connection for every request.

Every --sample seconds it records the server's RSS, open descriptors,
threads, and (through SIGUSR1, which makes each shard log its state) the
live wasm instances. At the end it checks the targets: RSS after warm-up
grows less than 5 %, descriptors return to their baseline, zero 5xx on the
healthy routes, no crash, a clean stop. It writes benches/results/soak.json
and soak.svg (RSS and descriptors over time), and with --record the
summary into benches/RESULTS.md. Exit status 1 if a target is missed.
"""

import argparse
import datetime
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
BENCHES = REPO / "benches"
RESULTS = BENCHES / "results"
sys.path.insert(0, str(BENCHES))
import load  # noqa: E402  (shared helpers: ports, tools, RESULTS.md)

HEALTHY = [("static", "/static", "GET", None), ("hello", "/hello", "GET", None),
           ("echo", "/echo", "POST", "soak body"), ("backend", "/backend", "GET", None)]
MISBEHAVING = [("trap", "/trap", 500), ("spin", "/spin", 503), ("memhog", "/memhog", 200)]


def http_once(port, path, keep=None, timeout=10):
    """One request; returns (status, socket to reuse or None)."""
    sock = keep or socket.create_connection(("127.0.0.1", port), timeout=timeout)
    connection = "keep-alive" if keep is not None else "close"
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: {connection}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    if keep is None:
        sock.close()
        return status, None
    return status, sock


class Client(threading.Thread):
    """Requests one path in a loop until `stop`; counts statuses."""

    def __init__(self, port, path, stop, churn=False):
        super().__init__(daemon=True)
        self.port, self.path, self.stop, self.churn = port, path, stop, churn
        self.statuses = {}
        self.failures = 0

    def run(self):
        sock = None
        while not self.stop.is_set():
            try:
                if self.churn:
                    status, _ = http_once(self.port, self.path)
                else:
                    if sock is None:
                        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                    status, sock = http_once(self.port, self.path, keep=sock)
                self.statuses[status] = self.statuses.get(status, 0) + 1
            except (OSError, ConnectionError, ValueError, AttributeError):
                self.failures += 1
                sock = None
                time.sleep(0.05)


def proc_value(pid, field):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--sample", type=float, default=5, help="seconds between samples (default 5)")
    parser.add_argument("--record", action="store_true", help="write the summary into benches/RESULTS.md")
    parser.add_argument("--no-plot", action="store_true", help="skip the chart (no matplotlib needed)")
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    load.ensure_tool("wrk", "wrk")
    if not args.no_build:
        load.run(["cargo", "build", "--release", "--quiet", "--bins"], cwd=REPO)

    backend_port = load.free_port()
    echo = load.Process("soak-echo-backend", [str(REPO / "target/release/echo-backend"), "--listen", f"127.0.0.1:{backend_port}"],
                        "0-" + str((os.cpu_count() or 1) - 1), backend_port)
    port = load.free_port()
    config = (BENCHES / "configs/soak.toml").read_text()
    for key, value in {"{listen}": f"127.0.0.1:{port}", "{guests}": str(BENCHES / "guests"), "{tests}": str(REPO / "tests/guests"),
                       "{samples}": str(REPO / "samples"), "{backend}": f"127.0.0.1:{backend_port}"}.items():
        config = config.replace(key, value)
    (RESULTS / "soak.toml").write_text(config)
    log_path = RESULTS / "soak-server.log"
    server = subprocess.Popen([str(REPO / "target/release/serverless-wasm"), str(RESULTS / "soak.toml")],
                              stderr=open(log_path, "w"), stdout=subprocess.DEVNULL, env=dict(os.environ, RUST_LOG="info"))
    load.wait_port(port)
    pid = server.pid
    time.sleep(0.5)
    baseline_fds = fds(pid)

    stop = threading.Event()
    wrks = []
    for name, path, method, body in HEALTHY:
        cmd = ["wrk", "-t1", "-c4", f"-d{int(args.duration)}s", "--timeout", "8s", "-s", str(BENCHES / "wrk/report.lua"),
               f"http://127.0.0.1:{port}{path}", "--", "1"] + ([method, body] if body else [])
        wrks.append((name, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)))
    clients = {name: Client(port, path, stop) for name, path, _ in MISBEHAVING}
    clients["churn"] = Client(port, "/hello", stop, churn=True)
    for client in clients.values():
        client.start()

    samples = []
    started = time.time()
    log_offset = 0
    while time.time() - started < args.duration:
        time.sleep(args.sample)
        if server.poll() is not None:
            break
        os.kill(pid, signal.SIGUSR1)
        time.sleep(0.2)
        text = log_path.read_text(errors="replace")
        # Each shard logs "shard stats {json}" on SIGUSR1.
        states = [json.loads(m) for m in re.findall(r"shard stats (\{.*\})", text[log_offset:])]
        log_offset = len(text)
        sample = {"t": round(time.time() - started, 1), "rss_kib": proc_value(pid, "VmRSS"), "fds": fds(pid),
                  "threads": proc_value(pid, "Threads"),
                  "live_instances": sum(s["live_instances"] for s in states),
                  "engine_instances": max((s["engine_instances"] for s in states), default=0)}
        samples.append(sample)
        print(f"t={sample['t']:>6}s rss={sample['rss_kib'] / 1024:7.1f} MiB fds={sample['fds']:>4} "
              f"instances={sample['live_instances']:>3} threads={sample['threads']}", flush=True)
    stop.set()
    wrk_results = {}
    for name, proc in wrks:
        out, _ = proc.communicate(timeout=args.duration + 60)
        line = next((l for l in out.splitlines() if l.startswith("{")), "{}")
        wrk_results[name] = json.loads(line)
    for client in clients.values():
        client.join(timeout=15)
    crashed = server.poll() is not None
    time.sleep(2)  # let the last connections close
    end_fds = fds(pid) if not crashed else None
    server.send_signal(signal.SIGTERM)
    try:
        clean_stop = server.wait(timeout=30) == 0
    except subprocess.TimeoutExpired:
        server.kill()
        clean_stop = False
    echo.stop()

    report = summarize(args, samples, wrk_results, clients, baseline_fds, end_fds, crashed, clean_stop)
    (RESULTS / "soak.json").write_text(json.dumps(report, indent=2))
    markdown = render(report)
    print(markdown)
    if not args.no_plot and samples:
        plot(samples)
    if args.record:
        load.record(markdown, "soak")
    sys.exit(0 if all(t["met"] for t in report["targets"]) else 1)


def summarize(args, samples, wrk_results, clients, baseline_fds, end_fds, crashed, clean_stop):
    warm = [s for s in samples if s["t"] >= min(30, args.duration * 0.2)] or samples
    rss_start = warm[0]["rss_kib"] if warm else 0
    rss_peak = max((s["rss_kib"] for s in warm), default=0)
    growth = (rss_peak - rss_start) / rss_start * 100 if rss_start else 0
    healthy_5xx = sum(r.get("errors", {}).get("status", 0) for r in wrk_results.values())
    healthy_requests = sum(r.get("requests", 0) for r in wrk_results.values())
    misbehaving = {name: c.statuses for name, c in clients.items()}
    wrong = sum(count for (name, _, expected) in MISBEHAVING for status, count in clients[name].statuses.items() if status != expected)
    churn_5xx = sum(count for status, count in clients["churn"].statuses.items() if status >= 500)
    targets = [
        {"target": "RSS growth after warm-up (%)", "value": round(growth, 2), "goal": "< 5", "met": growth < 5},
        {"target": "descriptors at the end vs baseline", "value": f"{end_fds} vs {baseline_fds}", "goal": "equal",
         "met": end_fds is not None and end_fds <= baseline_fds},
        {"target": "5xx on healthy routes", "value": healthy_5xx + churn_5xx, "goal": 0, "met": healthy_5xx + churn_5xx == 0},
        {"target": "misbehaving routes answering otherwise than documented", "value": wrong, "goal": 0, "met": wrong == 0},
        {"target": "crashes", "value": int(crashed), "goal": 0, "met": not crashed},
        {"target": "clean stop on SIGTERM", "value": clean_stop, "goal": True, "met": clean_stop},
    ]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python3 benches/soak.py " + " ".join(sys.argv[1:]),
        "machine": load.machine(),
        "duration_s": args.duration,
        "healthy_requests": healthy_requests,
        "wrk": wrk_results,
        "misbehaving": misbehaving,
        "churn_connections": sum(clients["churn"].statuses.values()),
        "client_failures": {name: c.failures for name, c in clients.items()},
        "rss_kib": {"warm": rss_start, "peak_after_warm_up": rss_peak},
        "fds": {"baseline": baseline_fds, "end": end_fds},
        "max_live_instances": max((s["live_instances"] for s in samples), default=0),
        "samples": samples,
        "targets": targets,
    }


def render(report):
    m = report["machine"]
    lines = [
        f"Soak of {report['duration_s']:.0f} s, {report['date']}, on {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}.",
        f"Command: `{report['command']}`.",
        "",
        f"Healthy requests: {report['healthy_requests']:,} (wrk, 4 connections per route: static, wasm hello, echo, backend round trip); "
        f"connection churn: {report['churn_connections']:,} connections; misbehaving answers: "
        + ", ".join(f"{name} {statuses}" for name, statuses in report["misbehaving"].items() if name != "churn") + ".",
        f"RSS {report['rss_kib']['warm'] / 1024:.1f} MiB after warm-up, peak {report['rss_kib']['peak_after_warm_up'] / 1024:.1f} MiB; "
        f"descriptors {report['fds']['baseline']} at start, {report['fds']['end']} at the end; "
        f"at most {report['max_live_instances']} live instances.",
        "",
        "| target | measured | goal | met |",
        "|---|---:|---:|---|",
    ]
    for t in report["targets"]:
        lines.append(f"| {t['target']} | {t['value']} | {t['goal']} | {'yes' if t['met'] else '**no**'} |")
    lines += ["", "Chart: `benches/results/soak.svg`; samples: `benches/results/soak.json`."]
    return "\n".join(lines) + "\n"


def plot(samples):
    load.ensure_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = [s["t"] for s in samples]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(t, [s["rss_kib"] / 1024 for s in samples], color="#4a7ab5", label="RSS (MiB)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS (MiB)")
    other = ax.twinx()
    other.plot(t, [s["fds"] for s in samples], color="#c0504d", label="open descriptors")
    other.plot(t, [s["live_instances"] for s in samples], color="#9bbb59", label="live instances")
    other.set_ylabel("count")
    fig.legend(loc="upper right")
    ax.set_title("soak: memory, descriptors and instances over time")
    fig.tight_layout()
    fig.savefig(RESULTS / "soak.svg")
    plt.close(fig)


if __name__ == "__main__":
    main()
