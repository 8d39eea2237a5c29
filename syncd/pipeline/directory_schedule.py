"""When the directory is synced, and what ``syncd directory status`` says of it.

``DirectorySchedule`` is the leader duty the Runner schedules when the directory is
enabled: at every tick it resumes the running sync (once its lease is free and its retry
time has come) or starts one when none was ever done (``first``) or the last one done
is ``resync_interval`` old (``schedule``). The sync runs in the background, so a tick
never waits for it; only one runs in a process, and the sync's lease keeps replicas
from running it twice. ``forget`` deletes the rows of users who left more than
``forget_after`` ago.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from syncd.errors import SyncdError
from syncd.pipeline.directory_sync import DirectorySync
from syncd.ports import Clock
from syncd.ports.directory import DirectorySyncStore, SyncOutcome, SyncRun, SyncTrigger

logger = logging.getLogger(__name__)

#: How often the duty looks at the directory's syncs (seconds).
TICK = 60.0
#: How often departed users past ``forget_after`` are deleted (seconds).
FORGET_EVERY = 3600.0


def due(done: SyncRun | None, now: datetime, interval: timedelta) -> SyncTrigger | None:
    """Why a new sync starts now, if it does: none done yet, or the last one too old."""
    if done is None:
        return "first"
    if done.finished_at is None or done.finished_at + interval <= now:
        return "schedule"
    return None


class DirectorySchedule:
    def __init__(
        self,
        sync: DirectorySync,
        store: DirectorySyncStore,
        clock: Clock,
        *,
        resync_interval: timedelta,
        forget_after: timedelta,
    ) -> None:
        self.sync = sync
        self.store = store
        self.clock = clock
        self.resync_interval = resync_interval
        self.forget_after = forget_after
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> None:
        """The scheduled job: start :meth:`run_due` in the background unless it runs."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._background(), name="directory_sync")

    async def _background(self) -> None:
        try:
            await self.run_due()
        except SyncdError as exc:  # the database gone: the lease passes, a tick resumes
            logger.error(
                "directory sync stopped: %s",
                exc,
                extra={"action": "directory_sync_error", "error": str(exc)},
            )
        except Exception:  # the top of a loop: a bug must not end the daemon
            logger.exception("directory sync crashed", extra={"action": "directory_sync_error"})

    async def run_due(self) -> SyncOutcome | None:
        """Resume or start a sync if one is due, and run it; ``None`` when none was."""
        now = self.clock.now()
        until = now + self.sync.lease
        run = await self.store.claim(self.sync.owner, now, until)
        if run is None:
            running, done = await self.store.latest()
            trigger = due(done, now, self.resync_interval)
            if running is not None or trigger is None:
                return None  # another holds it, it waits to retry, or none is due
            run = await self.store.begin(trigger, self.sync.owner, now, until)
            if run is None:
                return None  # another replica began one first
        outcome, _ = await self.sync.drive(run)
        return outcome

    async def forget(self) -> int:
        """Delete the rows of users who left more than ``forget_after`` ago."""
        forgotten = await self.store.forget_departed(self.clock.now() - self.forget_after)
        if forgotten:
            logger.info(
                "departed users forgotten",
                extra={"action": "directory_forget", "users": forgotten},
            )
        return forgotten

    async def stop(self) -> None:
        """Cancel a sync running in the background (it stays resumable)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def status_report(
    running: SyncRun | None,
    done: SyncRun | None,
    counts: dict[str, Any],
    now: datetime,
    *,
    enabled: bool,
    resync_interval: timedelta,
) -> dict[str, Any]:
    """``syncd directory status``: the running and the last sync, the directory's size,
    and what needs attention (never synced; the last sync older than twice the
    re-sync interval)."""
    attention: list[str] = []
    if done is None:
        attention.append("the directory was never synced: `syncd directory sync`")
    elif done.finished_at is not None and now - done.finished_at > 2 * resync_interval:
        attention.append(
            f"the last sync finished more than twice directory.resync_interval ago "
            f"({done.finished_at.isoformat()}): is a daemon running with the directory "
            "enabled? `syncd directory sync` syncs it now"
        )
    return {
        "enabled": enabled,
        "resync_interval_seconds": resync_interval.total_seconds(),
        "running": _sync(running),
        "last": _sync(done),
        "users": {"present": counts["present"], "departed": counts["departed"]},
        "departments": counts["departments"],
        "attention": attention,
    }


def _sync(run: SyncRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id,
        "state": run.state,
        "trigger": run.trigger,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "departments": run.departments,
        "departments_queued": len(run.queue),
        "users": run.users,
        "calls": run.calls,
        "attempts": run.attempts,
        "last_error": run.last_error,
        "retry_at": run.retry_at,
        "lease_owner": run.lease_owner,
        "lease_until": run.lease_until,
    }
