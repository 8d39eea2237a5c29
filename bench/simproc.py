"""The simulator as its own process, for benchmarks.

``python -m bench.simproc --port P --stats FILE [--rule-delay S] [--qps N]
[--callback-url URL]`` serves the demo world with one rule (every leave request is
agreed at each node after ``--rule-delay`` seconds), the QPS limit given (none by
default) and no latency. On SIGTERM it writes ``FILE``: the calls it received per
endpoint, per instance when it was created and decided (epoch seconds), and the garbage
collections that took over 20 ms (when, how long, which generation): the simulator keeps
every instance, so its heap grows through a run. Unless ``--gc-every 0``, it moves what
it holds into the collector's permanent generation (``gc.freeze()``) every so many
seconds, so a full collection walks only what came since: DingTalk does not stop for
seconds at a time, and a simulator that does puts dips into the system under test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import time
from pathlib import Path
from typing import Any

from syncd.simulator import Simulator, World, serve
from syncd.simulator.default_world import DEFAULT_WORLD
from syncd.simulator.heap import freeze_heap_every


def world(rule_delay: float, qps: int | None, callback_url: str | None, seed: int) -> World:
    data: dict[str, Any] = json.loads(json.dumps(DEFAULT_WORLD))
    app = data["apps"][0]
    if callback_url:
        app["callback_url"] = callback_url
        app["stream"] = False
    data["rules"] = [
        {"process_code": "PROC-SIM-LEAVE", "decision": "agree", "delay": rule_delay, "remark": "ok"}
    ]
    data["limits"] = {"qps_per_api": qps}
    # Instance ids come from the seeded generator: simulators that share a database in
    # one run need different seeds, as DingTalk never hands out an instance id twice.
    data["faults"] = {"seed": seed}
    return World.model_validate(data)


#: Garbage collections over ``GC_REPORTED`` seconds: start (epoch), seconds, generation.
GC_PAUSES: list[tuple[float, float, int]] = []
GC_REPORTED = 0.02
_gc_started = 0.0


def _time_gc(phase: str, info: dict[str, Any]) -> None:
    global _gc_started
    now = time.time()
    if phase == "start":
        _gc_started = now
    elif now - _gc_started > GC_REPORTED:
        GC_PAUSES.append((round(_gc_started, 3), round(now - _gc_started, 3), info["generation"]))


def stats(sim: Simulator) -> dict[str, Any]:
    instances = [
        {
            "id": i.instance_id,
            "created": i.create_time.timestamp(),
            "finished": i.finish_time.timestamp() if i.finish_time else None,
        }
        for i in sim.workflow.instances.values()
    ]
    return {"calls": dict(sim.calls), "instances": instances, "gc_pauses": GC_PAUSES}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    gc.callbacks.append(_time_gc)
    sim = Simulator(world(args.rule_delay, args.qps, args.callback_url, args.port))
    freezer = asyncio.create_task(freeze_heap_every(args.gc_every)) if args.gc_every > 0 else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(sim, port=args.port):
        print("ready", flush=True)  # noqa: T201 - the parent waits for this line
        await stop.wait()
    if freezer is not None:
        freezer.cancel()
    return stats(sim)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stats", required=True)
    parser.add_argument("--rule-delay", type=float, default=0.0)
    parser.add_argument("--qps", type=int, default=None)
    parser.add_argument("--callback-url", default=None)
    parser.add_argument(
        "--gc-every", type=float, default=5.0, help="seconds between gc.freeze() (0: never)"
    )
    args = parser.parse_args()
    Path(args.stats).write_text(json.dumps(asyncio.run(main(args))))
