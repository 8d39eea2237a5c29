"""Run every benchmark in turn, then draw the plots.

``python -m bench.run_all`` runs the commands below one after the other (never two at
once: they would share the two cores) and records how long each took in
``bench/results/run_all.json``. ``--only NAME`` runs one; ``--skip NAME`` leaves one out
(e.g. ``--skip throughput-100k``, which alone takes well over an hour: three runs of
syncd and three of the baseline, alternating, each on a fresh database).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench.harness import BENCH, RESULTS, log

COMMANDS: dict[str, list[str]] = {
    "latency": ["bench.latency", "--count", "120", "--rate", "2"],
    "quota": ["bench.quota", "--backlog", "1000", "--runs", "3"],
    "throughput-2k": [
        "bench.throughput",
        "--backlog",
        "2000",
        "--no-baseline",
        "--runs",
        "1",
        "--name",
        "final-2000",
    ],
    "throughput-10k": ["bench.throughput", "--backlog", "10000"],
    "scale": ["bench.scale", "--history", "1000000", "--backlog", "100000"],
    "throughput-100k": ["bench.throughput", "--backlog", "100000"],
    "month": ["bench.month"],  # the monthly quota: a simulated month, counts only
    "plots": ["bench.plots"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(COMMANDS))
    parser.add_argument("--skip", action="append", default=[], choices=sorted(COMMANDS))
    args = parser.parse_args()
    names = [n for n in COMMANDS if (not args.only or n in args.only) and n not in args.skip]
    timings_path = RESULTS / "run_all.json"
    RESULTS.mkdir(exist_ok=True)
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    for name in names:
        command = [sys.executable, "-m", *COMMANDS[name]]
        log(f"{name}: {' '.join(command[1:])}")
        started = time.monotonic()
        code = subprocess.run(command, cwd=BENCH.parent, check=False).returncode
        timings[name] = {"seconds": round(time.monotonic() - started), "exit": code}
        timings_path.write_text(json.dumps(timings, indent=2) + "\n")
        if code != 0:
            log(f"{name} failed with exit code {code}")


if __name__ == "__main__":
    main()
