"""The pacer against DingTalk's own count: no sliding one-second window over the limit.

Workers call through one :class:`MemoryPacer` in virtual time (``tests.virtual_time``):
Hypothesis draws how many there are, how long each thinks between calls, and how late
the process wakes each sleeping call, and how long each call then takes on its way to the
socket (building the request, a token, a busy event loop: the window is checked again
there, as the HTTP client's request hook does). The send times must keep every ``limit``
consecutive calls at least ``1 + margin - late`` seconds apart, so that a network delay
varying by up to ``margin - late`` still puts no more than ``limit`` calls in any window
DingTalk counts (``(t - 1, t]``), and the pacer must use the rate it is given.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.dingtalk.pacing import (
    DEFAULT_LATE,
    DEFAULT_MARGIN,
    MemoryPacer,
    SendWindow,
    SlotMissed,
    send_paced,
)
from syncd.errors import DingTalkThrottled
from syncd.simulator.faults import Faults, Limiter
from syncd.simulator.world import FaultSettings, Limits
from syncd.testing import FakeClock
from tests.virtual_time import VirtualTime

LIMIT = 20


def max_in_window(times: list[float], span: float) -> int:
    """The most calls any half-open window ``(t - span, t]`` holds."""
    ordered = sorted(times)
    start, most = 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - span + 1e-9:
            start += 1
        most = max(most, end - start + 1)
    return most


async def _worker(
    vt: VirtualTime,
    pacer: MemoryPacer,
    thinks: list[float],
    sent: list[float],
    on_the_way: Callable[[], float] = lambda: 0.0,
) -> None:
    """Calls after each think time; a call refused 10 times is given up (a process late on
    every wake-up sends nothing: that is the price of never sending late). A call takes
    ``on_the_way()`` seconds from its slot to the socket, where its window is checked."""

    async def write(window: SendWindow) -> None:
        if delay := on_the_way():
            await vt.nap(delay)
        if window.late_by() > 0:
            raise SlotMissed(window.late_by())
        sent.append(vt.clock.monotonic())

    for think in thinks:
        if think:
            await vt.nap(think)
        for _ in range(10):
            try:
                await send_paced(pacer, "create", write)
            except DingTalkThrottled as refused:
                await vt.nap(refused.retry_after)
                continue
            break


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rate=st.sampled_from([5, 13, LIMIT]),
    workers=st.lists(
        st.lists(st.floats(0, 0.3) | st.just(0.0), min_size=5, max_size=25), min_size=1, max_size=6
    ),
    lateness=st.lists(st.floats(0, DEFAULT_LATE) | st.floats(0, 0.2), min_size=1, max_size=40),
    on_the_way=st.lists(st.just(0.0) | st.floats(0, DEFAULT_LATE) | st.floats(0, 0.5), min_size=1),
)
def test_no_window_holds_more_than_the_rate(
    rate: int, workers: list[list[float]], lateness: list[float], on_the_way: list[float]
) -> None:
    clock = FakeClock()
    late, way = itertools.cycle(lateness), itertools.cycle(on_the_way)
    vt = VirtualTime(clock, lambda: next(late))
    pacer = MemoryPacer(clock=clock, rate=rate, sleep=vt.sleep)
    sent: list[float] = []
    calls = (_worker(vt, pacer, thinks, sent, lambda: next(way)) for thinks in workers)
    asyncio.run(vt.run(*calls))
    assert len(sent) <= sum(len(w) for w in workers)
    # Each call reaches DingTalk after a delay in [d, d + jitter]: the worst case moves
    # the earlier calls of a window late and the later ones early.
    jitter = DEFAULT_MARGIN - DEFAULT_LATE
    assert max_in_window(sent, 1.0 + jitter) <= rate


@settings(max_examples=25, deadline=None)
@given(workers=st.integers(2, 8), on_time=st.lists(st.floats(0, DEFAULT_LATE), min_size=1))
def test_a_backlog_is_sent_at_the_rate_less_the_margin(workers: int, on_time: list[float]) -> None:
    clock = FakeClock()
    late = itertools.cycle(on_time)
    vt = VirtualTime(clock, lambda: next(late))
    pacer = MemoryPacer(clock=clock, rate=LIMIT, sleep=vt.sleep)
    sent: list[float] = []
    each = 300 // workers
    asyncio.run(vt.run(*(_worker(vt, pacer, [0.0] * each, sent) for _ in range(workers))))
    assert len(sent) == each * workers
    rate = (len(sent) - 1) / (max(sent) - min(sent))
    assert rate >= LIMIT / (1 + DEFAULT_MARGIN) - 0.05
    assert rate >= 0.97 * LIMIT


async def test_calls_woken_late_every_time_give_up_rather_than_crowd() -> None:
    clock = FakeClock()
    vt = VirtualTime(clock, lambda: 0.5)  # a process too busy to wake on time
    pacer = MemoryPacer(clock=clock, rate=LIMIT, sleep=vt.sleep)
    sent: list[float] = []
    refused: list[DingTalkThrottled] = []

    async def call() -> None:
        try:
            await pacer.acquire("get")
        except DingTalkThrottled as error:
            refused.append(error)
        else:
            sent.append(clock.monotonic())

    await vt.run(*(call() for _ in range(60)))
    assert refused and {e.code for e in refused} == {"localPacing"}
    assert len(sent) + len(refused) == 60
    assert max_in_window(sent, 1.0 + DEFAULT_MARGIN - DEFAULT_LATE) <= LIMIT


def _per_second(times: list[float], start: float) -> Counter[int]:
    return Counter(int(t - start) for t in times)


async def test_throttled_by_a_neighbour_it_settles_on_what_is_left() -> None:
    """A neighbour spends 5 of the app's 20 calls/s on the same API for two minutes."""
    clock = FakeClock()
    vt = VirtualTime(clock)
    limiter = Limiter(clock, Faults(FaultSettings(seed=1), Limits(qps_per_api=LIMIT)))
    pacer = MemoryPacer(clock=clock, rate=LIMIT, sleep=vt.sleep)
    start = clock.monotonic()
    ours: list[float] = []
    refused: list[float] = []

    async def neighbour() -> None:
        for _ in range(5 * 120):
            limiter.check_rate("app", "create")
            await vt.nap(0.2)

    async def syncd() -> None:
        while clock.monotonic() - start < 120:
            try:
                await pacer.acquire("create")
            except DingTalkThrottled as paced:
                await vt.nap(paced.retry_after)
                continue
            await vt.nap(0.01)  # on its way to DingTalk
            if limiter.check_rate("app", "create") is None:
                ours.append(clock.monotonic())
            else:
                refused.append(clock.monotonic())
                await pacer.penalize("create", 1.0)

    await vt.run(neighbour(), *(syncd() for _ in range(4)))
    late = [t for t in refused if t - start >= 30]
    settled = _per_second([t for t in ours if t - start >= 30], start)
    rates = [settled.get(s, 0) for s in range(30, 120)]
    assert len(late) <= 9  # at most one throttle per 10 s once settled
    assert sum(rates) / len(rates) >= 0.85 * (LIMIT - 5)
    # no swing: 5-second averages stay within 20% of what is left
    fives = [sum(rates[i : i + 5]) / 5 for i in range(0, len(rates), 5)]
    assert min(fives) >= 0.75 * (LIMIT - 5), fives


@pytest.mark.parametrize("margin", [-0.1, 0.005])
def test_lateness_must_fit_in_the_margin(margin: float) -> None:
    with pytest.raises(ValueError):
        MemoryPacer(clock=FakeClock(), margin=margin, late=0.01)
