"""Pacing of DingTalk calls: one bucket per endpoint, backing off when throttled.

DingTalk allows 20 calls per second per app and API (contract §8) and counts them the
way its simulator does: a call is refused when the calls it accepted in the last second
(the window ``(now - 1, now]``) already number the limit. Each endpoint gets a bucket in
GCRA form (a "theoretical arrival time", ``tat``): a call reserves the next free slot and
waits for it; slots are ``(1 + margin) / rate`` seconds apart, so any ``rate``
consecutive slots span ``1 + margin`` seconds.

Why the margin: call ``k`` and call ``k + rate`` reach DingTalk ``1 + margin`` seconds
apart only if both leave on time and the network delays both alike. Two things move
them: the *lateness* of a call (it wakes after its slot: a busy event loop, a busy
machine) and the *jitter* of the delay between sending and DingTalk counting it. A call
that wakes more than ``late`` seconds after its slot is not sent late: it takes a new
slot (the old one stays spent, so the schedule other calls were given still holds); so
does one whose request would be written later than that (:class:`SendWindow`). So
any ``rate`` calls a bucket lets through leave at least ``1 + margin - late`` seconds
apart, and reach DingTalk more than one second apart as long as the jitter stays under
``margin - late``. The defaults (``margin`` 25 ms, ``late`` 10 ms: 15 ms for the
network) pace at ``rate / 1.025``, 97.6% of the rate; see docs/dingtalk-client.md.

When DingTalk throttles anyway (another program spends part of the same app's limit),
the endpoint is blocked for the delay DingTalk asked for and the rate follows
:class:`Backoff`: a gentle cut, then a cubic climb that flattens out just under the rate
at which it was throttled and probes above it only slowly, so it settles on what is
left instead of swinging (halving and a linear climb, as before, swung between 20% and
100% of what was left). A call that would wait longer than ``max_wait`` is not sent:
:class:`~syncd.errors.DingTalkThrottled` tells the caller when to come back, so no lease
is held across a long pause.

:class:`MemoryPacer` paces one process. ``syncd.db.pacing.PostgresPacer``
hands out the same slots from a row per endpoint in PostgreSQL, so any number of
replicas together stay under the rate.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from syncd.errors import DingTalkThrottled
from syncd.ports import Clock

logger = logging.getLogger(__name__)

#: DingTalk's limit on standard tenants: the bucket keeps the margin below it.
DEFAULT_RATE = 20.0
DEFAULT_MAX_WAIT = 10.0
#: Seconds added to each one-second window: covers ``DEFAULT_LATE`` plus 15 ms of jitter.
DEFAULT_MARGIN = 0.025
#: The share of the margin a call may wake late by (the rest is the network's jitter).
LATE_SHARE = 0.4
#: A call that wakes later than this after its slot takes a new one.
DEFAULT_LATE = DEFAULT_MARGIN * LATE_SHARE
#: Slots a call may take in a row (each woken too late) before it gives up for now.
RETAKES = 3
MIN_FACTOR = 0.125

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


@dataclass(frozen=True)
class SendWindow:
    """How long a call that got its slot may still leave: until ``until`` on
    ``clock.monotonic()`` (the slot's start plus the lateness allowed).

    The pacer checks it when the call wakes; the request is checked again just before it
    is written (:class:`~syncd.dingtalk.calls.ObservedClient`'s request hook), since
    building it, fetching a token and a busy event loop can delay it past that check."""

    clock: Clock
    until: float

    def late_by(self) -> float:
        """Seconds past the window (0 or less: still open)."""
        return self.clock.monotonic() - self.until


class SlotMissed(Exception):
    """A paced request that would leave after its window: it was not written. Its slot
    stays spent (the schedule other calls were given still holds); take a new one."""

    def __init__(self, late_by: float) -> None:
        super().__init__(f"{1000 * late_by:.0f} ms past its pacing window")
        self.late_by = late_by


class Pacer(Protocol):
    """Decides when a call to an endpoint may be sent."""

    async def acquire(self, endpoint: str) -> SendWindow:
        """Return when a call may be sent, with how long it may still leave; raise
        DingTalkThrottled if that is too far off."""
        ...

    async def penalize(self, endpoint: str, seconds: float) -> None:
        """DingTalk throttled a call: send nothing to ``endpoint`` for ``seconds``."""
        ...


@dataclass
class Backoff:
    """The share of the configured rate in use, after DingTalk throttled the endpoint.

    A throttle at share ``w`` cuts the share to ``decrease * w``; from there it climbs
    along ``settle * w + c * (t - k) ** 3`` (``t`` seconds since the cut): fast at first,
    flat around ``settle * w`` (reached after ``k`` seconds, ``plateau`` for the widest
    cut), just under the share that was throttled, then faster again, back to the full
    rate ten seconds or so later if nothing throttles. So a neighbour spending part of the
    app's limit costs one throttle (and DingTalk's one-second pause) every 20 s or so,
    not a sawtooth. Throttles within ``cooldown`` seconds of a cut answer calls sent
    before it and are not cut again.
    """

    decrease: float = 0.8
    plateau: float = 15.0
    settle: float = 0.95
    cooldown: float = 1.5
    floor: float = MIN_FACTOR
    _peak: float = 1.0
    _cut: float = 1.0
    _since: float | None = None

    def factor(self, now: float) -> float:
        if self._since is None:
            return 1.0
        c = (1 - self.decrease) / self.plateau**3
        k = math.cbrt(max(0.0, self._peak - self._cut) / c)
        share = self._peak + c * (now - self._since - k) ** 3
        return min(1.0, max(self.floor, share))

    def throttled(self, now: float) -> bool:
        """Cut the share (unless within ``cooldown`` of the last cut); True if cut."""
        if self._since is not None and now - self._since < self.cooldown:
            return False
        throttled_at = self.factor(now)
        self._peak = throttled_at * self.settle
        self._cut = throttled_at * self.decrease
        self._since = now
        return True

    def last_cut(self) -> tuple[float, float, float] | None:
        """The last cut as ``(peak, cut, since)``, to share with other replicas."""
        return None if self._since is None else (self._peak, self._cut, self._since)

    def adopt(self, peak: float, cut: float, since: float) -> None:
        """Follow a cut made elsewhere (``since`` on this process's clock)."""
        self._peak, self._cut, self._since = peak, cut, since


@dataclass
class Bucket:
    """GCRA state of one endpoint (times on the monotonic clock)."""

    rate: float
    burst: int = 1
    margin: float = DEFAULT_MARGIN
    tat: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)

    def interval(self, now: float) -> float:
        return (1.0 + self.margin) / (self.rate * self.backoff.factor(now))

    def next_wait(self, now: float) -> float:
        """How long a call asking now would wait, without reserving anything."""
        tolerance = (self.burst - 1) * self.interval(now)
        return max(0.0, self.tat - tolerance - now)

    def reserve(self, now: float) -> float:
        """Take the next slot; return how long to wait for it."""
        wait = self.next_wait(now)
        self.tat = max(self.tat, now) + self.interval(now)
        return wait

    def penalize(self, now: float, seconds: float) -> None:
        self.backoff.throttled(now)
        tolerance = (self.burst - 1) * self.interval(now)
        self.tat = max(self.tat, now + seconds + tolerance)


def _retaken(endpoint: str, lateness: float, check: str) -> None:
    """Log a slot given up: ``check`` is ``wake`` (``lateness`` is past the slot's start)
    or ``send`` (past its window, just before the request was written)."""
    what = "woke after its slot" if check == "wake" else "would have left after its window"
    logger.info(
        "%s %s by %.0f ms; taking a new slot",
        endpoint,
        what,
        1000 * lateness,
        extra={
            "action": "pacing_slot_retaken",
            "endpoint": endpoint,
            "check": check,
            "late_ms": round(1000 * lateness, 1),
        },
    )


def _late_too_often(endpoint: str) -> DingTalkThrottled:
    return DingTalkThrottled(
        f"{endpoint} was late for {RETAKES + 1} slots in a row (a busy process); try again",
        retry_after=1.0,
        code="localPacing",
    )


async def wait_for_slot(
    endpoint: str,
    reserve: Callable[[], Awaitable[float]],
    *,
    clock: Clock,
    sleep: Sleep,
    late: float,
) -> SendWindow:
    """Wait for a slot from ``reserve`` (it returns when the slot starts, on
    ``clock.monotonic()``, as early as it may be); take a new slot when woken more than
    ``late`` seconds after one. Returns how long the call may still leave."""
    for _ in range(RETAKES + 1):
        due = await reserve()
        wait = due - clock.monotonic()
        if wait > 0:
            await sleep(wait)
        lateness = clock.monotonic() - due
        if lateness <= late:
            return SendWindow(clock, due + late)
        _retaken(endpoint, lateness, "wake")
    raise _late_too_often(endpoint)


async def send_paced(pacer: Pacer, endpoint: str, send: Callable[[SendWindow], Awaitable[T]]) -> T:
    """``send(window)`` once the pacer gives a slot; if the request would have left after
    its window (:class:`SlotMissed`: nothing was written), again with a new slot."""
    for _ in range(RETAKES + 1):
        window = await pacer.acquire(endpoint)
        try:
            return await send(window)
        except SlotMissed as missed:
            _retaken(endpoint, missed.late_by, "send")
    raise _late_too_often(endpoint)


class MemoryPacer:
    """Paces the calls of one process; share one instance between clients."""

    def __init__(
        self,
        *,
        clock: Clock,
        rate: float = DEFAULT_RATE,
        rates: dict[str, float] | None = None,
        burst: int = 1,
        max_wait: float = DEFAULT_MAX_WAIT,
        margin: float = DEFAULT_MARGIN,
        late: float = DEFAULT_LATE,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst < 1 or not 0 <= late <= margin:
            raise ValueError("rate must be positive, burst at least 1, 0 <= late <= margin")
        self._clock = clock
        self._rate = rate
        self._rates = rates or {}
        self._burst = burst
        self._max_wait = max_wait
        self._margin = margin
        self._late = late
        self._sleep = sleep
        self._buckets: dict[str, Bucket] = {}
        self.waited = 0.0  # seconds spent waiting for slots, for metrics

    def bucket(self, endpoint: str) -> Bucket:
        found = self._buckets.get(endpoint)
        if found is None:
            rate = self._rates.get(endpoint, self._rate)
            found = Bucket(rate=rate, burst=self._burst, margin=self._margin)
            self._buckets[endpoint] = found
        return found

    async def _reserve(self, endpoint: str) -> float:
        bucket = self.bucket(endpoint)
        now = self._clock.monotonic()
        wait = bucket.next_wait(now)
        if wait > self._max_wait:
            raise DingTalkThrottled(
                f"{endpoint} is paced; try again later", retry_after=wait, code="localPacing"
            )
        wait = bucket.reserve(now)
        self.waited += wait
        return now + wait

    async def acquire(self, endpoint: str) -> SendWindow:
        return await wait_for_slot(
            endpoint,
            lambda: self._reserve(endpoint),
            clock=self._clock,
            sleep=self._sleep,
            late=self._late,
        )

    async def penalize(self, endpoint: str, seconds: float) -> None:
        self.bucket(endpoint).penalize(self._clock.monotonic(), seconds)
        logger.warning(
            "DingTalk throttled %s; pausing it for %ss",
            endpoint,
            seconds,
            extra={"action": "dingtalk_throttled", "endpoint": endpoint, "retry_after": seconds},
        )
