"""The App's inbound kinds (docs/inbound.md): the import stage, the listing duty, backfill.

Built by :meth:`syncd.app.App.open` after the other stages: the ``inbound`` stage imports
queued instances, and apply hands it the events of instances syncd does not know
(``Apply.intake``). ``Runner`` schedules :func:`inbound_listing` as the leader duty
``inbound_list``; ``syncd backfill`` uses :func:`inbound_backfill`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from syncd.app_attachback import later_stages as attach_stages
from syncd.db.backfill_store import PostgresBackfillCursor
from syncd.db.inbound_store import PostgresInboundStore
from syncd.metrics.inbound import InboundMetrics
from syncd.pipeline.inbound import Inbound
from syncd.pipeline.inbound_list import MAX_WINDOW, Backfill, Listing
from syncd.quota import PollingBudget
from syncd.settings import Settings
from syncd.settings_inbound import InboundSettings

if TYPE_CHECKING:
    from syncd.app import App, Stage


def inbound_kinds(settings: Settings) -> dict[str, InboundSettings]:
    """The inbound kinds and where their instances land."""
    return {
        name: kind.inbound
        for name, kind in settings.kinds.items()
        if kind.direction == "inbound" and kind.inbound is not None
    }


def _store(app: App) -> PostgresInboundStore:
    targets = inbound_kinds(app.settings)
    return PostgresInboundStore(
        app.pool, targets, actor=app.owner, quiet_after=app.timing.quiet_after
    )


async def later_stages(app: App) -> dict[str, Stage]:
    """The stages built after the others: comments, attachments back (when a kind fetches
    its files) and the inbound kinds' imports."""
    return {**attach_stages(app), **await inbound_stages(app)}


async def inbound_stages(app: App) -> dict[str, Stage]:
    """``{"inbound": stage}`` when a kind is inbound (and apply hands it unknown ids),
    once its table and columns (or procedure) are found (else ``ConfigError``)."""
    targets = inbound_kinds(app.settings)
    if not targets:
        return {}
    codes = {app.settings.kinds[name].process_code: name for name in targets}
    store = _store(app)
    await store.check_targets()
    stage = Inbound(
        store, app.control, app.pauses, app.client, app.clock, app.retry,
        kinds=codes, finish=app.apply.finish, owner=app.owner,
        batch_size=app.settings.pipeline.batch_size, lease=app.timing.lease,
        observer=app.observer, inbound_observer=InboundMetrics(app.registry, targets),
    )  # fmt: skip
    app.apply.intake = stage.intake
    return {"inbound": stage}


def inbound_listing(app: App) -> Listing | None:
    """The leader duty listing inbound kinds' trailing window, or ``None`` (no such kind)."""
    targets = inbound_kinds(app.settings)
    if not targets:
        return None
    return Listing(
        app.client, _store(app), app.control, app.pauses, app.clock,
        kinds={name: app.settings.kinds[name].process_code for name in targets},
        budget=PollingBudget.of(app.settings),
    )  # fmt: skip


def inbound_backfill(app: App, window: timedelta = MAX_WINDOW) -> Backfill:
    """``syncd backfill``'s walk over the listing (its cursor in ``syncd.inbound_backfill``)."""
    cursor = PostgresBackfillCursor(app.pool, actor=app.owner)
    return Backfill(
        app.client, cursor, app.control, app.clock,
        owner=app.owner, window=window, lease=app.timing.lease,
    )  # fmt: skip
