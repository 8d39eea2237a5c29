"""``syncd simulator serve | approve | refuse | terminate | callback | world``.

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
from syncd.simulator.heap import DEFAULT_FREEZE_EVERY, freeze_heap_every
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
    run_p.add_argument(
        "--seed", type=int, help="repeat a run's ids and faults (default: the world's, or fresh)"
    )
    run_p.add_argument(
        "--freeze-heap-every",
        type=float,
        default=DEFAULT_FREEZE_EVERY,
        metavar="SECONDS",
        help="move the heap out of the garbage collector's reach this often, so a "
        "simulator holding many instances does not pause for seconds (0: never)",
    )
    for action in ("approve", "refuse", "terminate"):
        p = sub.add_parser(action, help=f"{action} an instance of a running simulator")
        p.add_argument("instance_id")
        p.add_argument("--user", help="approver userId (default: the first pending one)")
        p.add_argument("--remark", default="")
        p.add_argument("--url", default=DEFAULT_URL, help="simulator base URL")
    cb_p = sub.add_parser(
        "callback", help="register an app's callback URL (checked with a check_url push)"
    )
    cb_p.add_argument("callback_url", help="where events are pushed; 'none' stops HTTP push")
    cb_p.add_argument("--app-key", help="the app (default: the world's first)")
    cb_p.add_argument("--url", default=DEFAULT_URL, help="simulator base URL")
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
    if command == "callback":
        return _callback(args)
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
    if args.seed is not None:
        world.faults.seed = args.seed
    sim = Simulator(world, time_scale=args.time_scale)

    async def main() -> None:
        stop = asyncio.Event()
        every = args.freeze_heap_every
        freezer = asyncio.create_task(freeze_heap_every(every)) if every > 0 else None
        async with serve(sim, args.host, args.port, log_level="info") as server:
            _out(f"DingTalk simulator listening on {server.base_url}")
            _out(f"  API base URL: {server.base_url}  page: {server.base_url}/_sim/")
            _out(f"  seed: {sim.seed} (--seed {sim.seed} repeats this run's ids)")
            with stop_on_signals(stop):
                await stop.wait()
        if freezer is not None:
            freezer.cancel()

    asyncio.run(main())
    return 0


def _call(args: argparse.Namespace, method: str, path: str, body: Any) -> Any | None:
    """The admin API's JSON answer, or None after saying on stderr why there is none."""
    try:
        response = httpx.request(method, f"{args.url.rstrip('/')}{path}", json=body, timeout=10)
    except httpx.HTTPError as exc:
        sys.stderr.write(f"cannot reach the simulator at {args.url}: {exc}\n")
        return None
    if response.status_code != 200:
        try:
            message = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            message = response.text
        sys.stderr.write(f"{response.status_code}: {message}\n")
        return None
    return response.json()


def _callback(args: argparse.Namespace) -> int:
    app_key = args.app_key
    if app_key is None:
        world = _call(args, "GET", "/_sim/world", None)
        if world is None:
            return 1
        app_key = world["apps"][0]["app_key"] if world.get("apps") else ""
    url = None if args.callback_url.lower() == "none" else args.callback_url
    answer = _call(args, "PUT", f"/_sim/apps/{app_key}/callback", {"url": url})
    if answer is None:
        return 1
    _out(f"{app_key}: {answer['url'] or 'no HTTP push'}")
    return 0


def _decide(args: argparse.Namespace) -> int:
    path = f"/_sim/instances/{args.instance_id}/{args.simulator_command}"
    summary = _call(args, "POST", path, {"userId": args.user, "remark": args.remark})
    if summary is None:
        return 1
    line = f"{summary['instanceId']}: {summary['status']} {summary['result']}".rstrip()
    if summary.get("pendingApprovers"):
        line += f" (waiting for {', '.join(summary['pendingApprovers'])})"
    _out(line)
    return 0
