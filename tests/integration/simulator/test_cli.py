"""``syncd simulator callback`` against a running simulator: registers a URL that answers
the check_url push, and reports why one that does not is refused; `serve` freezes its heap."""

from __future__ import annotations

import argparse
import asyncio
import gc

from syncd import http
from syncd.simulator import Simulator, World, serve
from syncd.simulator.cli import add_parser, run
from syncd.simulator.heap import freeze_heap_every
from syncd.testing import FakeClock
from tests.unit.simulator.test_callbacks import APP_KEY, Receiver


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["simulator", *argv])


async def test_callback_command_registers_only_a_url_that_answers(capsys) -> None:
    receiver = Receiver()
    sim = Simulator(World.default(), clock=FakeClock())
    async with http.serve(receiver.app, "127.0.0.1", 0) as listening, serve(sim) as server:
        good = f"http://127.0.0.1:{listening.port}/cb"
        code = await asyncio.to_thread(run, _parse("callback", good, "--url", server.base_url))
        assert code == 0 and capsys.readouterr().out == f"{APP_KEY}: {good}\n"
        assert receiver.received == [{"EventType": "check_url"}]
        receiver.mode = "wrong"
        args = _parse(
            "callback", f"http://127.0.0.1:{listening.port}/cb?v=2", "--url", server.base_url
        )
        assert await asyncio.to_thread(run, args) == 1
        err = capsys.readouterr().err
        assert err.startswith("400: callback URL not registered: ") and "not 'success'" in err
        assert sim.callbacks.url(APP_KEY) == good
        args = _parse("callback", "none", "--app-key", APP_KEY, "--url", server.base_url)
        assert await asyncio.to_thread(run, args) == 0
        assert capsys.readouterr().out == f"{APP_KEY}: no HTTP push\n"
        assert sim.callbacks.url(APP_KEY) is None


def test_serve_freezes_its_heap_every_5_seconds_unless_told() -> None:
    assert _parse("serve").freeze_heap_every == 5.0
    assert _parse("serve", "--freeze-heap-every", "0").freeze_heap_every == 0.0


async def test_freezing_moves_the_heap_out_of_the_collectors_reach() -> None:
    gc.unfreeze()
    held = [[n] for n in range(1000)]  # containers the collector tracks
    freezer = asyncio.create_task(freeze_heap_every(3600))
    try:
        await asyncio.sleep(0)  # the task's first step freezes, then sleeps
        assert gc.get_freeze_count() >= len(held)
    finally:
        freezer.cancel()
        gc.unfreeze()


def test_serve_takes_a_seed() -> None:
    assert _parse("serve", "--seed", "7").seed == 7
    assert _parse("serve").seed is None
