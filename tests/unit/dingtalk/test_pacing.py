"""Token-bucket maths and backoff, on a FakeClock."""

from __future__ import annotations

import pytest

from syncd.dingtalk.pacing import Backoff, Bucket, MemoryPacer
from syncd.errors import DingTalkThrottled
from syncd.testing import FakeClock


def _pacer(clock: FakeClock, **kw: object) -> MemoryPacer:
    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    return MemoryPacer(clock=clock, sleep=sleep, **kw)  # type: ignore[arg-type]


def test_slots_are_one_interval_apart() -> None:
    bucket = Bucket(rate=10.0)
    waits = [bucket.reserve(100.0) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_idle_bucket_does_not_save_up_beyond_burst() -> None:
    bucket = Bucket(rate=10.0, burst=3)
    assert [bucket.reserve(0.0) for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.1])
    assert [bucket.reserve(100.0) for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.1])


def test_backoff_halves_then_recovers_linearly() -> None:
    backoff = Backoff(recovery_seconds=10.0)
    backoff.throttled(0.0)
    assert backoff.factor(0.0) == 0.5
    backoff.throttled(0.0)
    assert backoff.factor(0.0) == 0.25
    assert backoff.factor(5.0) == pytest.approx(0.75)
    assert backoff.factor(100.0) == 1.0
    for _ in range(10):
        backoff.throttled(100.0)
    assert backoff.factor(100.0) == 0.125


def test_penalty_blocks_then_slows() -> None:
    bucket = Bucket(rate=10.0)
    bucket.penalize(0.0, 1.0)
    assert bucket.reserve(0.0) == pytest.approx(1.0)
    assert bucket.reserve(0.0) == pytest.approx(1.2)  # half the rate after a throttle


async def test_pacer_keeps_each_endpoint_under_its_rate() -> None:
    clock = FakeClock()
    pacer = _pacer(clock, rate=15.0)
    start = clock.monotonic()
    sent: list[float] = []
    for _ in range(45):
        await pacer.acquire("create")
        sent.append(clock.monotonic() - start)
    await pacer.acquire("get")  # another endpoint has its own bucket
    assert clock.monotonic() - start == pytest.approx(sent[-1])
    for i in range(len(sent) - 15):
        assert sent[i + 15] - sent[i] >= 1.0 - 1e-9


async def test_pacer_refuses_to_wait_longer_than_max_wait() -> None:
    clock = FakeClock()
    pacer = _pacer(clock, rate=1.0, max_wait=5.0)
    await pacer.penalize("list", 60.0)
    with pytest.raises(DingTalkThrottled) as caught:
        await pacer.acquire("list")
    assert caught.value.retry_after == pytest.approx(60.0)
    clock.advance(60.0)
    await pacer.acquire("list")


def test_pacer_rejects_nonsense_rates() -> None:
    with pytest.raises(ValueError):
        MemoryPacer(clock=FakeClock(), rate=0)
