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
    bucket = Bucket(rate=10.0, margin=0.0)
    waits = [bucket.reserve(100.0) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])
    widened = Bucket(rate=20.0, margin=0.025)  # 20 slots span 1.025 s
    assert [widened.reserve(0.0) for _ in range(21)][-1] == pytest.approx(1.025)


def test_idle_bucket_does_not_save_up_beyond_burst() -> None:
    bucket = Bucket(rate=10.0, burst=3, margin=0.0)
    assert [bucket.reserve(0.0) for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.1])
    assert [bucket.reserve(100.0) for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.1])


def test_backoff_cuts_gently_then_settles_under_the_throttled_rate() -> None:
    backoff = Backoff(decrease=0.8, plateau=15.0, settle=0.95, cooldown=1.5)
    assert backoff.throttled(0.0)
    assert backoff.factor(0.0) == pytest.approx(0.8)
    assert not backoff.throttled(1.0)  # answers to calls sent before the cut
    assert 0.8 < backoff.factor(1.0) < 0.95
    plateau = [backoff.factor(t) for t in (11.0, 13.6, 16.0)]  # k = 15 * cbrt(0.15 / 0.2)
    assert max(plateau) - min(plateau) < 0.01 and 0.93 < min(plateau) <= 0.951
    assert backoff.factor(25.0) == 1.0  # nothing throttled since: back to the full rate
    share = backoff.factor(9.0)
    assert backoff.throttled(9.0)  # throttled again on the plateau
    assert backoff.factor(9.0) == pytest.approx(0.8 * share)
    assert backoff.factor(9.0 + 13.0) == pytest.approx(0.95 * share, abs=0.01)
    for _ in range(60):
        backoff.throttled(backoff._since + 2.0)  # type: ignore[operator]
    assert backoff.factor(backoff._since) == backoff.floor  # type: ignore[arg-type]


def test_penalty_blocks_then_slows() -> None:
    bucket = Bucket(rate=10.0)
    bucket.penalize(0.0, 1.0)
    assert bucket.reserve(0.0) == pytest.approx(1.0)
    after = bucket.reserve(0.0) - 1.0  # a slot at 80% of the rate after a throttle
    assert bucket.backoff.factor(0.0) == pytest.approx(0.8)
    assert after == pytest.approx(1.025 / (10.0 * 0.8))


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
        assert sent[i + 15] - sent[i] >= 1.025 - 1e-9


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
