"""The inbound kinds' listings: the trailing-window safety net and ``syncd backfill``.

Start events can be lost (Stream keeps no failed list, contract §20.2): a leader duty
(:class:`Listing`) lists each inbound process code's instance ids created over a trailing
window (§5.1) and queues the ones syncd does not know, its calls counted within the
polling budget. :class:`Backfill` walks ``[since, until]`` in windows of at most 120 days
and pages of 20, queueing each page and moving its cursor in one transaction, under a
lease: cut anywhere, the next run resumes at the page after the last one recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from syncd.domain import CallRecord
from syncd.errors import DingTalkAuthError, DingTalkError, DingTalkQuotaExhausted, SyncdError
from syncd.pipeline.calls import call
from syncd.pipeline.pauses import Pauses
from syncd.ports import Clock, ControlStore
from syncd.ports.inbound import BackfillCursor, InboundStore, InstanceLister
from syncd.quota import PollingBudget

logger = logging.getLogger(__name__)

PURPOSE = "inbound_list"
#: DingTalk's longest listing window (contract §5.1).
MAX_WINDOW = timedelta(days=120)
#: The trailing window the duty lists (how often: ``polling.inbound_list_interval``).
LISTING_WINDOW = timedelta(hours=24)
_MS = timedelta(milliseconds=1)


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class Listing:
    """The duty: queue the unknown instances of every inbound kind's trailing window."""

    def __init__(
        self,
        lister: InstanceLister,
        store: InboundStore,
        control: ControlStore,
        pauses: Pauses,
        clock: Clock,
        *,
        kinds: Mapping[str, str],
        budget: PollingBudget,
        window: timedelta = LISTING_WINDOW,
    ) -> None:
        """``kinds`` maps each inbound kind to its process code; the duty's calls and the
        poller's share ``budget``."""
        self.lister, self.store, self.control = lister, store, control
        self.pauses, self.clock = pauses, clock
        self.kinds = dict(kinds)
        self.budget = budget
        self.window = window

    async def run_once(self) -> int:
        now = self.clock.now()
        if not self.kinds or await self.pauses.active(now):
            return 0
        usage = await self.control.usage(now)
        left = self.budget.left(usage, now)
        queued = 0
        for kind, code in sorted(self.kinds.items()):
            token: int | None = 0
            while token is not None and left > 0:
                calls: list[CallRecord] = []
                since = epoch_ms(now - self.window)
                request = self.lister.list_page(code, since, epoch_ms(now), token)
                try:
                    page = await call(calls, "list", PURPOSE, request)
                except DingTalkError as exc:
                    await self.control.add_usage(now, PURPOSE)
                    await _pause(self.pauses, exc, now)
                    logger.warning(
                        "inbound listing failed: %s", exc.message,
                        extra={"action": "inbound_list_failed", "kind": kind},
                    )  # fmt: skip
                    return queued
                await self.control.add_usage(now, PURPOSE)
                left -= 1
                queued += await self.store.queue(kind, code, page.ids, "listing", now)
                token = page.next_token
        if queued:
            logger.info(
                "inbound listing found instances syncd did not know",
                extra={"action": "inbound_listed", "queued": queued},
            )
        return queued


async def _pause(pauses: Pauses, exc: DingTalkError, now: datetime) -> None:
    if isinstance(exc, DingTalkQuotaExhausted):
        await pauses.quota_exhausted(now)
    elif isinstance(exc, DingTalkAuthError):
        await pauses.auth_failed(now, exc.message)


@dataclass(frozen=True)
class BackfillState:
    """Where a backfill is: the window being listed, its end, ids listed and queued."""

    kind: str
    window_start: datetime
    window_end: datetime
    until: datetime
    pages: int
    listed: int
    queued: int
    done: bool = False


#: Called after every page with how the backfill stands.
BackfillProgress = Callable[[BackfillState], None]


class BackfillBusy(SyncdError):
    """Another backfill of the kind holds its lease."""


class Backfill:
    def __init__(
        self,
        lister: InstanceLister,
        cursor: BackfillCursor,
        control: ControlStore,
        clock: Clock,
        *,
        owner: str,
        window: timedelta = MAX_WINDOW,
        lease: timedelta = timedelta(minutes=5),
    ) -> None:
        if not timedelta(0) < window <= MAX_WINDOW:
            raise ValueError(f"a listing window is at most {MAX_WINDOW.days} days")
        self.lister, self.cursor, self.control, self.clock = lister, cursor, control, clock
        self.owner, self.window, self.lease = owner, window, lease

    async def run(
        self, kind: str, process_code: str, since: datetime, until: datetime | None = None,
        progress: BackfillProgress | None = None, max_pages: int | None = None,
    ) -> BackfillState:  # fmt: skip
        """List ``[since, until]`` (default: now), queueing every id not known; resumes a
        cut backfill of the same ``since``. ``max_pages`` stops early (tests, budgets)."""
        now = self.clock.now()
        taken = await self.cursor.take(
            kind, process_code, since, until or now, now, self.owner, now + self.lease
        )
        if taken is None:
            raise BackfillBusy(f"a backfill of kind {kind} is running elsewhere; try later")
        start, token, listed, queued, end = taken
        pages = 0
        state = BackfillState(kind, start, self._end(start, end), end, 0, listed, queued)
        try:
            while start <= end and (max_pages is None or pages < max_pages):
                window_end = self._end(start, end)
                request = self.lister.list_page(
                    process_code, epoch_ms(start), epoch_ms(window_end), token
                )
                try:
                    page = await call([], "list", PURPOSE, request)
                finally:
                    await self.control.add_usage(self.clock.now(), PURPOSE)
                pages += 1
                if page.next_token is None:
                    start, token = window_end + _MS, 0
                else:
                    token = page.next_token
                done = start > end
                now = self.clock.now()
                new = await self.cursor.advance(
                    kind, process_code, self.owner, page.ids, (start, token),
                    done=done, now=now, lease_until=now + self.lease,
                )  # fmt: skip
                listed, queued = listed + len(page.ids), queued + new
                state = BackfillState(
                    kind, start, self._end(start, end), end, pages, listed, queued, done
                )
                if progress is not None:
                    progress(state)
        finally:
            if not state.done:
                await self.cursor.release(kind, self.owner, self.clock.now())
        return state

    def _end(self, start: datetime, until: datetime) -> datetime:
        return min(start + self.window - _MS, until)
