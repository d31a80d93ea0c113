#!/usr/bin/env python3
"""Start-up time: from starting the process to the first 200.

The configuration: 100 routes over 20 distinct modules (10 hello-sized
core modules, 10 hello components: the samples', each made distinct by a
custom section), every module pinned by sha256 and fetched from an HTTP
file server on loopback.

- cold: empty content and compile caches (fetch + compile + check);
- warm: both caches full (what a restart of a deployed server does; a
  pinned module in the cache is not fetched: tests/it/sources.rs starts
  such servers with their source stopped);
- one local route: the floor, one core module from a file, no caches;
- nginx answering a static body, in the same run, as a reference.

Repetitions are interleaved; each figure is the median. Loopback only;
the server on the first half of the CPUs.

    python3 benches/startup.py [--reps 5] [--record]
"""

import argparse
import hashlib
import http.client
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import load

ROUTES, MODULES = 100, 20


def custom_section(name, payload):
    """A wasm custom section (id 0): valid anywhere in a module or component."""
    def leb(n):
        out = bytearray()
        while True:
            byte = n & 0x7F
            n >>= 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)
    body = leb(len(name)) + name + payload
    return b"\x00" + leb(len(body)) + body


def modules(workdir):
    """20 distinct module files in `workdir/files`; returns the directory and
    their names. Core modules are the hello sample as WAT text (the server
    compiles WAT as it does binaries), made distinct by a comment;
    components are the hello component, made distinct by a custom section."""
    files = workdir / "files"
    files.mkdir()
    hello_core = (load.REPO / "samples/hello.wat").read_bytes()
    component = load.REPO / "samples/components/build/hello.wasm"
    if not component.exists():
        subprocess.run(["bash", "samples/components/build.sh"], cwd=load.REPO, check=True)
    names = []
    for i in range(MODULES):
        if i % 2 == 0:
            content, name = hello_core + f"\n;; bench-id {i}\n".encode(), f"m{i}.wat"
        else:
            content, name = component.read_bytes() + custom_section(b"bench-id", str(i).encode()), f"m{i}.wasm"
        (files / name).write_bytes(content)
        names.append(name)
    return files, names


def config(workdir, port, file_port, names, cache, compiled):
    text = f'listen_address = "127.0.0.1:{port}"\n[server]\ncompile_cache_dir = "{compiled}"\n' \
           f'[sources]\ncache_dir = "{cache}"\n'
    for i in range(ROUTES):
        name = names[i % MODULES]
        digest = hashlib.sha256((workdir / "files" / name).read_bytes()).hexdigest()
        function = '' if i % MODULES % 2 else 'function = "hello"\n'
        text += f'\n[[applications]]\nmethod = "GET"\nurl_path = "/r{i}"\n' \
                f'file_path = "http://127.0.0.1:{file_port}/{name}"\nsha256 = "{digest}"\n{function}'
    path = workdir / "startup.toml"
    path.write_text(text)
    return path


def first_200(cmd, port, path, env=None, timeout=120):
    """Seconds from spawning `cmd` to a 200 on `path`; the process is stopped."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, **(env or {})), start_new_session=True)
    try:
        while time.perf_counter() - started < timeout:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", path)
                if conn.getresponse().status == 200:
                    return time.perf_counter() - started
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"{cmd[0]} exited: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.002)
        raise RuntimeError(f"no 200 from {cmd[0]} within {timeout}s")
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    binary = load.REPO / "target/release/serverless-wasm"
    server_cpus, _ = load.split_cpus(argparse.Namespace(server_cpus=None, client_cpus=None))
    shards = len(server_cpus.split(","))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    times = {"cold": [], "warm": [], "one local route": [], "nginx": []}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        files, names = modules(workdir)
        file_port = load.free_port()
        files_server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                         "--directory", str(files), str(file_port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load.wait_port(file_port)
        local = workdir / "local.toml"
        nginx_prefix = workdir / "nginx"
        nginx_prefix.mkdir()
        try:
            for rep in range(args.reps):
                port = load.free_port()
                cache, compiled = workdir / f"cache-{rep}", workdir / f"compiled-{rep}"
                path = config(workdir, port, file_port, names, cache, compiled)
                serve = ["taskset", "-c", server_cpus, str(binary), str(path), "--shards", str(shards)]
                env = {"RUST_LOG": "warn"}
                times["cold"].append(first_200(serve, port, "/r0", env))
                times["warm"].append(first_200(serve, port, "/r0", env))
                local.write_text(f'listen_address = "127.0.0.1:{port}"\n[[applications]]\nmethod = "GET"\n'
                                 f'url_path = "/r0"\nfile_path = "{load.REPO}/samples/hello.wat"\nfunction = "hello"\n')
                times["one local route"].append(first_200(["taskset", "-c", server_cpus, str(binary), str(local),
                                                           "--shards", str(shards)], port, "/r0", env))
                if os.path.exists(nginx):
                    conf = (load.BENCHES / "configs/nginx.conf").read_text().replace("{workers}", str(shards)) \
                        .replace("{cpus}", "auto").replace("{port}", str(port)).replace("{prefix}", str(nginx_prefix))
                    (nginx_prefix / "nginx.conf").write_text(conf)
                    times["nginx"].append(first_200(["taskset", "-c", server_cpus, nginx, "-p", str(nginx_prefix),
                                                     "-c", str(nginx_prefix / "nginx.conf")], port, "/"))
                shutil.rmtree(cache)
                shutil.rmtree(compiled)
        finally:
            files_server.terminate()
    report(times, args, server_cpus, shards)


def report(times, args, server_cpus, shards):
    machine = load.machine()
    rows = [f"| {name} | {statistics.median(v) * 1000:.0f} | {min(v) * 1000:.0f}–{max(v) * 1000:.0f} |"
            for name, v in times.items() if v]
    warm = statistics.median(times["warm"])
    markdown = (
        f"Start-up to the first 200 ({time.strftime('%Y-%m-%d')}, {machine['cpu']}, {machine['cores']} cores, "
        f"server on CPUs {server_cpus}, {shards} shards; `python3 benches/startup.py --reps {args.reps}`). "
        f"{ROUTES} routes over {MODULES} distinct modules (10 core modules, 10 wasi:http components), "
        "pinned by sha256 and fetched from an HTTP server on loopback; cold: both caches empty (fetch, compile, check); "
        "warm: both full (nothing fetched or compiled); "
        "`warm_instances` at its default (2 per route and shard). nginx answers a static body, for reference.\n\n"
        "| start | median ms | range ms |\n|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Warm start: {warm * 1000:.0f} ms against the goal of 200 ms.\n"
    )
    print(markdown)
    if args.record:
        load.record(markdown, section="startup")


if __name__ == "__main__":
    main()
