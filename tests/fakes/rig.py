"""``Rig``: the pipeline's stages wired as the daemon wires them, over the in-memory
stores, a fake clock and any ``ApprovalClient`` (most often the simulator's)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from syncd.errors import SyncdError
from syncd.pipeline.apply import Apply
from syncd.pipeline.cancel import Cancel
from syncd.pipeline.ingest import Ingest
from syncd.pipeline.pauses import Pauses
from syncd.pipeline.reconcile import Reconcile
from syncd.pipeline.retry import RetryPolicy
from syncd.pipeline.schemas import SchemaCache
from syncd.pipeline.submit import Submit, Timing
from syncd.pipeline.track import Poll
from syncd.pipeline.writeback import WriteBackRetry
from syncd.ports import ApprovalClient
from syncd.settings_kinds import KindSettings
from syncd.testing import FakeClock
from tests.fakes.apply import MemoryApplyStore, MemoryInbox, MemoryWriteBackStore
from tests.fakes.ingest import MemoryIngestStore
from tests.fakes.memory import MemoryDb
from tests.fakes.stores import MemoryCancelStore, MemoryControlStore, MemoryPollStore
from tests.fakes.submit import MemorySubmitStore
from tests.fakes.target import MemoryTarget

#: The Runner's lanes (``syncd.runner.LANES``): the way in and the way back.
WAY_IN = ("ingest", "submit", "reconcile", "cancel")
WAY_BACK = ("apply", "writeback", "poll")
ORDER = WAY_IN + WAY_BACK


class RecordingObserver:
    """An ``Observer`` that keeps what it was told: (what, *labels) tuples."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def of(self, what: str) -> list[tuple[Any, ...]]:
        return [entry[1:] for entry in self.seen if entry[0] == what]

    def stage_run(self, stage: str, handled: int, seconds: float) -> None:
        self.seen.append(("stage_run", stage, handled))

    def stage_failed(self, stage: str, error_class: str) -> None:
        self.seen.append(("stage_failed", stage, error_class))

    def approval_created(self, kind: str, seconds_since_capture: float) -> None:
        self.seen.append(("approval_created", kind))

    def approval_parked(self, kind: str, state: str, reason: str) -> None:
        self.seen.append(("approval_parked", kind, state, reason))

    def outbox_quarantined(self, kind: str, sqlstate: str) -> None:
        self.seen.append(("outbox_quarantined", kind, sqlstate))

    def approval_finished(
        self,
        kind: str,
        state: str,
        channel: str,
        *,
        written: bool,
        seconds_since_decision: float | None,
        calls_spent: int | None,
        seconds_to_decision: float | None = None,
    ) -> None:
        self.seen.append(("approval_finished", kind, state, channel, written))

    def progress_written(self, kind: str, *, written: bool) -> None:
        self.seen.append(("progress_written", kind, written))

    def writeback_retried(self, kind: str, *, written: bool) -> None:
        self.seen.append(("writeback_retried", kind, written))

    def event_stored(self, channel: str, new: bool) -> None:
        self.seen.append(("event_stored", channel, new))

    def callback_rejected(self, reason: str) -> None:
        self.seen.append(("callback_rejected", reason))


@dataclass
class Rig:
    """One replica's stages over a :class:`MemoryDb` (several rigs may share one)."""

    db: MemoryDb
    clock: FakeClock
    client: ApprovalClient
    kinds: Mapping[str, KindSettings]
    owner: str = "replica-1"
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(rng=random.Random(0)))
    timing: Timing = field(
        default_factory=lambda: Timing(
            lease=timedelta(seconds=120),
            unknown_grace=timedelta(seconds=10),
            quiet_after=timedelta(seconds=60),
            send_margin=timedelta(seconds=21),
        )
    )
    targets: dict[str, MemoryTarget] = field(default_factory=dict)
    needs: dict[str, frozenset[str]] = field(default_factory=dict)
    monthly_budget: int = 1000
    max_interval: timedelta = timedelta(hours=6)
    observer: RecordingObserver = field(default_factory=RecordingObserver)

    def __post_init__(self) -> None:
        db, clock, kinds, timing = self.db, self.clock, self.kinds, self.timing
        self.inbox = MemoryInbox(db, clock)
        self.control = MemoryControlStore(db)
        self.pauses = Pauses(self.control)
        self.submit_store = MemorySubmitStore(db)
        self.apply_store = MemoryApplyStore(db, self.targets)
        self.apply = Apply(
            self.apply_store,
            self.client,
            clock,
            quiet_after=timing.quiet_after,
            lease=timing.lease,
            needs=self.needs,
            observer=self.observer,
        )
        self.ingest = Ingest(MemoryIngestStore(db), kinds, clock, observer=self.observer)
        self.submit = Submit(
            self.submit_store,
            self.pauses,
            self.client,
            SchemaCache(self.client, clock),
            kinds,
            clock,
            self.retry,
            timing,
            owner=self.owner,
            observer=self.observer,
        )
        self.reconcile = Reconcile(
            self.submit_store,
            self.pauses,
            self.client,
            self.apply,
            kinds,
            clock,
            self.retry,
            owner=self.owner,
            quiet_after=timing.quiet_after,
            lease=timing.lease,
        )
        self.cancel = Cancel(
            MemoryCancelStore(db),
            self.pauses,
            self.client,
            self.apply,
            kinds,
            clock,
            self.retry,
            owner=self.owner,
            lease=timing.lease,
        )
        self.writeback = WriteBackRetry(MemoryWriteBackStore(db, self.targets), clock)
        self.poll = Poll(
            MemoryPollStore(db),
            self.control,
            self.pauses,
            self.client,
            self.apply,
            clock,
            quiet_after=timing.quiet_after,
            max_interval=self.max_interval,
            monthly_budget=self.monthly_budget,
            lease=timing.lease,
        )

    async def lanes(self) -> dict[str, int]:
        """Run the two lanes once side by side, as the Runner does."""
        way_in, way_back = await asyncio.gather(self.cycle(WAY_IN), self.cycle(WAY_BACK))
        return way_in | way_back

    async def cycle(self, names: tuple[str, ...] = ORDER) -> dict[str, int]:
        """Run the stages once, in order. A stage failing with syncd's own error (a
        database or DingTalk failure) is skipped, as the Runner's loop does; anything
        else (an assertion of the fakes, a defect) fails the test."""
        counts: dict[str, int] = {}
        for name in names:
            try:
                counts[name] = await getattr(self, name).run_once()
            except SyncdError as exc:
                self.observer.stage_failed(name, type(exc).__name__)
                counts[name] = 0
        return counts
