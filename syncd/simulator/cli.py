"""``syncd simulator serve | approve | refuse | terminate | world``.

The main CLI calls :func:`add_parser` with its subparsers and :func:`run` with the parsed
arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import httpx

from syncd.signals import stop_on_signals
from syncd.simulator.core import Simulator
from syncd.simulator.server import serve
from syncd.simulator.world import World

DEFAULT_URL = "http://127.0.0.1:8765"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``simulator`` and its subcommands to the main CLI's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulator", help="run or drive the local DingTalk simulator"
    )
    sub = parser.add_subparsers(dest="simulator_command", required=True)
    run_p = sub.add_parser("serve", help="serve the simulator until Ctrl-C")
    run_p.add_argument("--world", help="world file (.toml or .json); default: the demo world")
    run_p.add_argument("--host", default="127.0.0.1")
    run_p.add_argument("--port", type=int, default=8765, help="0 = any free port")
    run_p.add_argument("--time-scale", type=float, default=1.0, help="multiply all delays")
    for action in ("approve", "refuse", "terminate"):
        p = sub.add_parser(action, help=f"{action} an instance of a running simulator")
        p.add_argument("instance_id")
        p.add_argument("--user", help="approver userId (default: the first pending one)")
        p.add_argument("--remark", default="")
        p.add_argument("--url", default=DEFAULT_URL, help="simulator base URL")
    world_p = sub.add_parser("world", help="print the demo world to start your own from")
    world_p.add_argument("--format", choices=["toml", "json"], default="toml")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the chosen subcommand; returns the exit code."""
    command = args.simulator_command
    if command == "serve":
        return _serve(args)
    if command == "world":
        _print_world(args.format)
        return 0
    return _decide(args)


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _print_world(fmt: str) -> None:
    data = World.default().dump()
    if fmt == "json":
        _out(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        from syncd.simulator.toml_out import dumps

        _out(dumps(data))


def _serve(args: argparse.Namespace) -> int:
    world = World.load(args.world) if args.world else World.default()
    sim = Simulator(world, time_scale=args.time_scale)

    async def main() -> None:
        stop = asyncio.Event()
        async with serve(sim, args.host, args.port, log_level="info") as server:
            _out(f"DingTalk simulator listening on {server.base_url}")
            _out(f"  API base URL: {server.base_url}  page: {server.base_url}/_sim/")
            with stop_on_signals(stop):
                await stop.wait()

    asyncio.run(main())
    return 0


def _decide(args: argparse.Namespace) -> int:
    url = f"{args.url.rstrip('/')}/_sim/instances/{args.instance_id}/{args.simulator_command}"
    body = {"userId": args.user, "remark": args.remark}
    try:
        response = httpx.post(url, json=body, timeout=10)
    except httpx.HTTPError as exc:
        sys.stderr.write(f"cannot reach the simulator at {args.url}: {exc}\n")
        return 1
    if response.status_code != 200:
        sys.stderr.write(f"{response.status_code}: {response.text}\n")
        return 1
    summary = response.json()
    line = f"{summary['instanceId']}: {summary['status']} {summary['result']}".rstrip()
    if summary.get("pendingApprovers"):
        line += f" (waiting for {', '.join(summary['pendingApprovers'])})"
    _out(line)
    return 0
