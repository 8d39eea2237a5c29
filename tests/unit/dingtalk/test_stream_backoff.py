"""Reconnect delays of the Stream client: doubling, capped, jittered."""

from __future__ import annotations

import random

from syncd.dingtalk.stream import reconnect_delay


def test_reconnect_delay_doubles_up_to_the_cap() -> None:
    rng = random.Random(1)
    for attempt in range(8):
        ceiling = min(8.0, 2.0**attempt)
        assert ceiling / 2 <= reconnect_delay(attempt, initial=1.0, cap=8.0, rng=rng) <= ceiling


def test_huge_attempt_counts_stay_at_the_cap() -> None:
    assert reconnect_delay(10_000, cap=60.0) <= 60.0
