"""CPU per DingTalk call in syncd's own HTTP client, by event loop and HTTP transport.

``python -m bench.httpclient --calls 5000 --runs 3`` starts the simulator as its own
process (``bench.simproc``: no QPS limit, no latency) and, in a fresh child process of
its own, drives ``--calls`` ``create_instance`` calls through syncd's
``HttpxApprovalClient`` built by ``build_http_client`` (the daemon's way: token auth,
the metrics observer, keep-alive expiry) with ``--concurrency`` callers and a pacer
that never waits. The child measures its own CPU (``time.process_time``) and wall time
over the calls, after ``--warmup`` calls that are not counted (the token fetch, the
connections, the imports and caches: the daemon runs for days).

Variants (``--variants``): ``default`` (asyncio's loop, httpx's own transport on
httpcore), ``uvloop`` (the same on uvloop), ``aiohttp`` (asyncio, syncd's
``DingTalkTransport``: httpx-aiohttp's transport on aiohttp), ``both``. Each runs
``--runs`` times in the order A B C D D C B A A B …, each run with its own simulator
and its own child process; the load average is noted before and after each run (other
work on the machine shows up there). The result, ``bench/results/httpclient.json``,
keeps every run and a summary per variant: the median and range of each figure, and
each variant's CPU per call against the default's (``both`` against ``aiohttp``'s:
what uvloop adds to it): the median of the rounds' ratios, with its range; "inside the
noise" when the two ranges overlap.

``python -m bench.httpclient --daemon 5000 --runs 3 --out httpclient-daemon`` measures
the same variants on the whole daemon instead: each run is ``bench.throughput`` with a
backlog of 5,000, without the baseline, on a fresh database (the daemon with its pacing
lifted: ``bench.daemonproc``, which takes uvloop from ``SYNCD_BENCH_LOOP=uvloop`` and
httpx's own transport from ``SYNCD_BENCH_TRANSPORT=httpcore``); the figures are then per
approval: the daemon's CPU, and approvals per second.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from bench.daemonproc import LOOP, TRANSPORT
from bench.harness import APP_KEY, APP_SECRET, PY, RESULTS, log, save, start_simulator
from bench.quota import NEIGHBOUR_REQUEST
from bench.throughput import overlap, spread
from syncd.clock import SystemClock
from syncd.dingtalk.client import KEEPALIVE_EXPIRY, HttpxApprovalClient, build_http_client
from syncd.dingtalk.pacing import SendWindow
from syncd.dingtalk.transport import DingTalkTransport
from syncd.metrics import Metrics


@dataclass(frozen=True)
class Variant:
    loop: str  # "asyncio" or "uvloop"
    transport: str  # "httpcore" (httpx's own) or "aiohttp"


VARIANTS = {
    "default": Variant("asyncio", "httpcore"),
    "uvloop": Variant("uvloop", "httpcore"),
    "aiohttp": Variant("asyncio", "aiohttp"),
    "both": Variant("uvloop", "aiohttp"),
}
FIGURES = ("cpu_ms_per_call", "wall_ms_per_call", "calls_per_second")
PACKAGES = ("httpx", "httpcore", "h11", "anyio", "aiohttp", "httpx-aiohttp", "uvloop")


class NoWait:
    """A pacer that never waits (the benchmark measures the client, not the rate limit)."""

    async def acquire(self, endpoint: str) -> SendWindow:
        return SendWindow(SystemClock(), until=math.inf)  # never closes

    async def penalize(self, endpoint: str, seconds: float) -> None:
        return None


def order(names: list[str], runs: int) -> list[str]:
    """``runs`` rounds of ``names``, every other round reversed: A B C D D C B A A B …"""
    return [n for r in range(runs) for n in (names if r % 2 == 0 else names[::-1])]


# --- the child: one variant, one run -------------------------------------------------------


def transport(name: str) -> httpx.AsyncBaseTransport:
    limits = httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY)
    if name == "aiohttp":
        return DingTalkTransport(limits)  # httpx-aiohttp's, as syncd uses it
    return httpx.AsyncHTTPTransport(limits=limits)


def run_on(loop: str, main: Callable[[], Coroutine[Any, Any, dict[str, Any]]]) -> dict[str, Any]:
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main())
    with asyncio.Runner() as runner:
        return runner.run(main())


async def calls(client: HttpxApprovalClient, count: int, concurrency: int) -> None:
    left = count

    async def caller() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await client.create_instance(NEIGHBOUR_REQUEST)  # a leave request

    await asyncio.gather(*(caller() for _ in range(concurrency)))


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    variant = VARIANTS[args.worker]
    http = build_http_client(
        APP_KEY,
        APP_SECRET,
        base_url=args.sim,
        transport=transport(variant.transport),
        observer=Metrics(CollectorRegistry()),
    )
    async with http:
        client = HttpxApprovalClient(http, pacer=NoWait())
        await calls(client, args.warmup, args.concurrency)
        gc.collect()
        cpu, wall = time.process_time(), time.perf_counter()
        await calls(client, args.calls, args.concurrency)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    loop = type(asyncio.get_running_loop())
    return {
        "calls": args.calls,
        "sent": client.calls,
        "loop": f"{loop.__module__}.{loop.__qualname__}",
        "transport": type(http._transport).__qualname__,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "cpu_ms_per_call": 1000 * cpu / args.calls,
        "wall_ms_per_call": 1000 * wall / args.calls,
        "calls_per_second": args.calls / wall,
    }


# --- the parent: the runs, the summary -----------------------------------------------------


def one_run(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sim, url = start_simulator(work)
    try:
        load_before = os.getloadavg()
        argv = [PY, "-m", "bench.httpclient", "--worker", name, "--sim", url]
        argv += ["--calls", str(args.calls), "--warmup", str(args.warmup)]
        argv += ["--concurrency", str(args.concurrency)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
        load_after = os.getloadavg()
    finally:
        sim.stop()
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return {"variant": name, **result, "load_before": load_before, "load_after": load_after}


#: What each variant is compared with: uvloop alone and aiohttp alone with the default,
#: both with aiohttp alone (what uvloop adds on top of the aiohttp transport).
COMPARED = {"uvloop": "default", "aiohttp": "default", "both": "aiohttp"}


def summarise(runs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Per variant, the median and range of each figure; against its :data:`COMPARED`
    variant, the CPU ratio (median of the rounds' ratios) and whether the two CPU
    ranges overlap (the difference is then inside the noise)."""
    summary: dict[str, Any] = {}
    of = {name: [r for r in runs if r["variant"] == name] for name in names}
    for name in names:
        summary[name] = {f: spread([float(r[f]) for r in of[name]]) for f in FIGURES}
    for name, base in COMPARED.items():
        if name not in summary or base not in summary:
            continue
        ratios = [
            r["cpu_ms_per_call"] / b["cpu_ms_per_call"]
            for r, b in zip(of[name], of[base], strict=True)
        ]
        summary[name]["compared_with"] = base
        summary[name]["cpu_ratio"] = spread(ratios)
        summary[name]["cpu_inside_noise"] = overlap(
            summary[name]["cpu_ms_per_call"], summary[base]["cpu_ms_per_call"]
        )
    return summary


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def daemon_run(name: str, args: argparse.Namespace, n: int) -> dict[str, Any]:
    """One ``bench.throughput`` run of the daemon alone (pacing lifted, fresh database)
    on the variant's loop and transport; its figures."""
    variant = VARIANTS[name]
    env = {**os.environ, LOOP: variant.loop, TRANSPORT: variant.transport}
    result_name = f"{args.out}-{n}-{name}"
    argv = [PY, "-m", "bench.throughput", "--backlog", str(args.daemon), "--runs", "1"]
    argv += ["--no-baseline", "--name", result_name]
    load_before = os.getloadavg()
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=1800)
    load_after = os.getloadavg()
    path = RESULTS / f"{result_name}.json"
    data = json.loads(path.read_text())
    path.unlink()  # its figures are kept below
    [run] = data["runs"]
    return {
        "variant": name,
        **{k: run[k] for k in ("approvals", "seconds", "daemon_cpu_seconds")},
        "cpu_ms_per_call": run["daemon_cpu_ms_per_approval"],  # per approval, here
        "wall_ms_per_call": 1000 * run["seconds"] / run["approvals"],
        "calls_per_second": run["approvals_per_second"],
        "statements_per_approval": run["statements_per_approval"],
        "load_before": load_before,
        "load_after": load_after,
    }


def main(args: argparse.Namespace) -> None:
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}: choose from {list(VARIANTS)}")
    work = Path(tempfile.mkdtemp(prefix="syncd-bench-http-"))
    started = time.time()
    runs = []
    for n, name in enumerate(order(names, args.runs)):
        run = daemon_run(name, args, n) if args.daemon else one_run(name, args, work)
        runs.append({"run": n, **run})
        log(
            f"{name}: {run['cpu_ms_per_call']:.3f} ms CPU/call, "
            f"{run['calls_per_second']:.0f} calls/s, load {run['load_before'][0]:.2f}"
        )
    save(
        args.out,
        {
            "command": " ".join(["python -m bench.httpclient", *sys.argv[1:]]),
            "measured": "the daemon, CPU per approval" if args.daemon else "the client",
            "daemon_backlog": args.daemon,
            "calls": args.calls,
            "warmup": args.warmup,
            "concurrency": args.concurrency,
            "variants": {n: vars(VARIANTS[n]) for n in names},
            "order": [r["variant"] for r in runs],
            "versions": versions(),
            "wall_seconds": time.time() - started,
            "runs": runs,
            "summary": summarise(runs, names),
        },
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--daemon",
        type=int,
        metavar="BACKLOG",
        help="measure the whole daemon instead (bench.throughput, this backlog, no baseline): "
        "figures per approval",
    )
    parser.add_argument("--out", default="httpclient", help="result name in bench/results/")
    parser.add_argument("--worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--sim", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    if arguments.worker:
        measured = run_on(VARIANTS[arguments.worker].loop, lambda: measure(arguments))
        print(json.dumps(measured))  # noqa: T201 - the parent reads this line
    else:
        main(arguments)
