"""1,000 hostile requests against the callback endpoint served over real HTTP (uvicorn on
loopback, as the daemon serves it): memory stays flat and nothing is stored.

The hostile bodies (50 MB streamed with and without a declared length, deep nesting,
garbage, forgeries, replays, stale pushes) are produced a chunk at a time, so the test
itself never holds one; the endpoint's process is this process, and its allocations are
measured with tracemalloc (peak over the run, after a warm-up) and its resident size
read from /proc.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import sys
import tracemalloc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from syncd.db.inbox import PostgresInbox
from syncd.dingtalk.callback import DEFAULT_MAX_BODY, REASONS, create_callback_app
from syncd.http import serve
from syncd.testing import FakeClock

from .pushes import (
    MAX_AGE,
    NOW,
    PATH,
    Push,
    Rejections,
    chunks,
    counter,
    endpoint,
    genuine,
    sign,
)

HUGE = 50 * 1024 * 1024
MiB = 1024 * 1024
#: Requests in flight at once (workers of the barrage).
IN_FLIGHT = 8


@dataclass
class Hostile:
    """One hostile request: query, a body to stream (or bytes), extra headers."""

    name: str
    query: dict[str, str]
    body: Callable[[], Any]
    headers: dict[str, str]
    huge: bool = False


def _kinds(replayed: Push) -> list[Callable[[int], Hostile]]:
    upper = replayed.with_signature(replayed.query["msg_signature"].upper())
    deep = b"[" * (DEFAULT_MAX_BODY - 10)

    def stream(size: int, fill: bytes = b"[") -> Callable[[], AsyncIterator[bytes]]:
        return lambda: chunks(size, fill)

    def fixed(data: bytes) -> Callable[[], bytes]:
        return lambda: data

    return [
        lambda n: Hostile("huge_streamed", genuine().query, stream(HUGE), {}, huge=True),
        lambda n: Hostile(
            "huge_declared",
            genuine().query,
            stream(HUGE, b"{"),
            {"content-length": str(HUGE)},
            huge=True,
        ),
        lambda n: Hostile("deep", genuine().query, fixed(deep), {}),
        lambda n: Hostile("deep_object", genuine().query, fixed(b'{"encrypt":' + deep), {}),
        lambda n: Hostile("not_utf8", genuine().query, fixed(b'{"encrypt": "\xff\xfe\xfd"}'), {}),
        lambda n: Hostile("garbage", genuine().query, fixed(os.urandom(n % 4000)), {}),
        lambda n: Hostile("wrong_types", genuine().query, fixed(b'{"encrypt": [1, {"a": 2}]}'), {}),
        lambda n: _forged(sign(json.dumps({"EventType": "x"}), token="forger-token")),
        lambda n: _forged(genuine().with_signature(f"{n:040x}")),
        lambda n: Hostile("replayed", upper.query, fixed(upper.body), {}),
        lambda n: Hostile("replayed_huge", upper.query, stream(HUGE), {}, huge=True),
        lambda n: _forged(genuine(offset=-MAX_AGE - 1 - n)),
        lambda n: Hostile("bad_query", {"msg_signature": "x", "nonce": "é"}, fixed(b"{}"), {}),
    ]


def _forged(push: Push) -> Hostile:
    return Hostile("forged", push.query, lambda: push.body, {})


def _rss() -> int:
    """This process's resident set size, in bytes (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def _send(http: httpx.AsyncClient, request: Hostile, url: str) -> str:
    """The status, or ``cut`` when the endpoint refused a huge body by closing the
    connection before the sender finished sending it."""
    try:
        response = await http.post(
            url, params=request.query, content=request.body(), headers=request.headers
        )
    except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
        assert request.huge, request.name
        return "cut"
    assert response.status_code in (400, 403, 413), (request.name, response.status_code)
    return str(response.status_code)


async def _barrage(
    http: httpx.AsyncClient, url: str, requests: list[Hostile], concurrency: int = IN_FLIGHT
) -> dict[str, int]:
    """Send ``requests``, ``concurrency`` at a time (by as many workers, so the barrage
    itself does not hold a thousand waiting tasks); count the outcomes."""
    outcomes: dict[str, int] = {}
    queue = iter(requests)

    async def worker() -> None:
        for request in queue:
            outcome = await _send(http, request, url)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_thousand_hostile_requests_leave_memory_flat_and_store_nothing(
    pool: AsyncConnectionPool[Any],
) -> None:
    rejections = Rejections()
    app = create_callback_app(endpoint(PostgresInbox(pool), FakeClock(NOW), rejections))
    counts = counter(pool)
    tracemalloc.start()
    try:
        async with serve(app) as listening, httpx.AsyncClient(timeout=60) as http:
            url = listening.base_url + PATH
            replayed = genuine()
            first = await http.post(url, params=replayed.query, content=replayed.body)
            assert first.status_code == 200
            kinds = _kinds(replayed)
            warm_up = [kind(n) for n, kind in enumerate(kinds * 2)]
            await _barrage(http, url, warm_up)
            barrage = [kind(n) for n, kind in zip(range(1000), itertools.cycle(kinds))]
            gc.collect()
            before, rss_before = tracemalloc.get_traced_memory()[0], _rss()
            tracemalloc.reset_peak()
            outcomes = await _barrage(http, url, barrage)
            peak, rss_after = tracemalloc.get_traced_memory()[1], _rss()
    finally:
        tracemalloc.stop()
    growth = peak - before
    figures = {
        "outcomes": outcomes,
        "traced_peak_growth_mib": round(growth / MiB, 2),
        "rss_mib": [round(rss_before / MiB, 1), round(rss_after / MiB, 1)],
    }
    sys.stdout.write(json.dumps({"hostile_callbacks": figures}) + "\n")  # shown with -s
    assert sum(outcomes.values()) == 1000
    assert len(rejections.reasons) == 1000 + len(warm_up)
    assert set(rejections.reasons) <= REASONS
    assert await counts() == (1, 1)  # the one genuine push, nothing else
    # Sender and endpoint both live in this process: about half a MiB per request in
    # flight (the cap, socket reads, parser buffers) for both together.
    assert growth < IN_FLIGHT * MiB, figures
    # One 50 MB body held anywhere would show here.
    assert rss_after - rss_before < 32 * MiB, figures
