#!/usr/bin/env python3
"""A/B: the same load benchmark against two server binaries, interleaved.

For a change that must not cost speed (a refactor, a new counter), run
`benches/load.py` on the old and the new binary in turn, A B A B ...,
`--rounds` times each, and compare the median of each scenario's ratio to
the native route (a ratio inside one run cancels the machine's drift).

    python3 benches/ab.py --old /tmp/old-serverless-wasm --new target/release/serverless-wasm

Prints a markdown table; `--record` also writes it into benches/RESULTS.md
between the `ab:begin` / `ab:end` markers.
"""

import argparse
import datetime
import json
import pathlib
import statistics
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
LATEST = REPO / "benches/results/latest.json"


def measure(binary, duration):
    subprocess.run([sys.executable, str(REPO / "benches/load.py"), "--binary", str(binary), "--no-build",
                    "--no-record", "--no-latency", "--reps", "1", "--duration", str(duration)],
                   check=True, stdout=subprocess.DEVNULL)
    summary = json.loads(LATEST.read_text())["summary"]
    return {(name, mode): (values["ratio_to_native"], values["server_cpu_us_per_request"])
            for name, modes in summary.items() for mode, values in modes.items()
            if isinstance(values, dict) and "ratio_to_native" in values}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="binary A (before the change)")
    parser.add_argument("--new", required=True, help="binary B (after the change)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each binary, interleaved (default 3)")
    parser.add_argument("--duration", type=float, default=5, help="seconds per scenario and mode (default 5)")
    parser.add_argument("--title", default="A/B", help="heading of the recorded table")
    parser.add_argument("--record", action="store_true", help="write the table into benches/RESULTS.md")
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "echo-backend", "--example", "native_rtt",
                    "--example", "rate_client"], cwd=REPO, check=True)

    ratios = {"old": {}, "new": {}}
    cpu = {"old": {}, "new": {}}
    for round_ in range(args.rounds):
        for label in ("old", "new"):
            print(f"round {round_ + 1}/{args.rounds}: {label}", file=sys.stderr, flush=True)
            for key, (ratio, cpu_us) in measure(getattr(args, label), args.duration).items():
                ratios[label].setdefault(key, []).append(ratio)
                cpu[label].setdefault(key, []).append(cpu_us)

    rows = []
    for key in sorted(ratios["new"]):
        if key not in ratios["old"]:
            continue
        old, new = statistics.median(ratios["old"][key]), statistics.median(ratios["new"][key])
        old_cpu, new_cpu = statistics.median(cpu["old"][key]), statistics.median(cpu["new"][key])
        rows.append(f"| {key[0]} | {key[1]} | {old:.3f} | {new:.3f} | {(new / old - 1) * 100:+.1f} % | "
                    f"{old_cpu:.2f} | {new_cpu:.2f} | "
                    f"{', '.join(f'{r:.3f}' for r in ratios['old'][key])} | "
                    f"{', '.join(f'{r:.3f}' for r in ratios['new'][key])} |")
    table = "\n".join([
        f"Run {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}: "
        f"`python3 benches/ab.py --rounds {args.rounds} --duration {args.duration:g}` "
        f"(old `{args.old}`, new `{args.new}`; runs interleaved old, new, old, new, ...; "
        "each run is `benches/load.py --reps 1 --no-latency`).",
        "",
        "| scenario | mode | old: median ratio to native | new: median ratio to native | new vs old "
        "| old: server CPU µs/req | new: server CPU µs/req | old runs (ratio) | new runs (ratio) |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
        *rows,
    ])
    print(table)
    if args.record:
        results = REPO / "benches/RESULTS.md"
        text = results.read_text()
        block = f"<!-- ab:begin -->\n### {args.title}\n\n{table}\n<!-- ab:end -->"
        if "<!-- ab:begin -->" in text:
            before, rest = text.split("<!-- ab:begin -->", 1)
            text = before + block + rest.split("<!-- ab:end -->", 1)[1]
        else:
            text = text.rstrip() + "\n\n## A/B comparisons\n\n" + block + "\n"
        results.write_text(text)


if __name__ == "__main__":
    main()
