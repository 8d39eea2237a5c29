"""The directory's full sync: every department and its members, read into the directory.

A sync walks DingTalk's department tree breadth-first from the root (1): the root
itself, then for each department in the queue its members page by page
(``v2/user/list``, ``page_size`` a page) and then its sub-departments
(``v2/department/listsub``), which join the end of the queue. Each step is one DingTalk
call, and what it read is saved in the same transaction that moves the sync's position
on (``syncd.directory_sync``: queue and cursor), so a sync stopped anywhere (kill -9, the
database gone, DingTalk failing) resumes at the step it was in: no page is read twice
but that one, none is missed.

When the queue is empty, what the sync did not see is checked, one call each: a
present user (or department) in the directory, last read before the sync started, that
no page showed is read on its own (``v2/user/get``, ``v2/department/get``). DingTalk not
finding them marks them left (removed), as of that read; finding them (moved during
the sync, say) saves them. A row an event read during the sync is newer than the sync's
start, so it is neither checked nor overwritten: events that came during the sync win.
Then the sync is ``done``.

One sync runs at a time, cluster-wide (a unique index), under a lease that every step
extends; a replica that dies leaves a lease that passes, and another takes the sync
over. A DingTalk error gives the lease up with a retry time (backoff); the row shows the
error. Contact calls are paced like every call and recorded in the monthly usage under
their own purpose (``directory``), which never counts against the quota.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta

from syncd.errors import ClaimLost, DingTalkError, DingTalkTransient, StoreError
from syncd.pipeline.retry import RetryPolicy
from syncd.ports import Clock
from syncd.ports.directory import (
    DirectoryClient,
    DirectorySyncObserver,
    DirectorySyncStore,
    Reading,
    SyncOutcome,
    SyncRun,
)

logger = logging.getLogger(__name__)

ROOT = 1
#: ``cursor`` of a department whose members are read: its sub-departments are next.
MEMBERS_READ = -1
#: How often ``syncd directory sync`` looks again at a sync another process runs.
FOLLOW_INTERVAL = 2.0

Progress = Callable[[SyncRun], None]
Wait = Callable[[float], Awaitable[None]]


def _fields(run: SyncRun, **more: object) -> dict[str, object]:
    return {"sync_id": run.id, "trigger": run.trigger, **more}


class DirectorySync:
    """Runs full syncs for ``owner``; see the module's docs."""

    def __init__(
        self,
        client: DirectoryClient,
        store: DirectorySyncStore,
        clock: Clock,
        retry: RetryPolicy,
        *,
        owner: str,
        lease: timedelta,
        page_size: int = 100,
        observer: DirectorySyncObserver | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.clock = clock
        self.retry = retry
        self.owner = owner
        self.lease = lease
        self.page_size = page_size
        self.observer = observer

    def _until(self) -> datetime:
        return self.clock.now() + self.lease

    # --- one run --------------------------------------------------------------------

    async def drive(
        self, run: SyncRun, progress: Progress | None = None
    ) -> tuple[SyncOutcome, SyncRun]:
        """Run ``run`` (leased to this owner) to its end, or until a step fails; how it
        ended and the sync as it stands. Cancelled, it gives its lease up (resumable at
        once by anyone)."""
        fresh = not run.calls
        logger.info(
            "directory sync started" if fresh else "directory sync resumed",
            extra=_fields(run, action="directory_sync_start" if fresh else "directory_sync_resume"),
        )
        try:
            return await self._steps(run, progress)
        except asyncio.CancelledError:
            with contextlib.suppress(StoreError):
                await self.store.release(run, self.owner)
            raise

    async def _steps(self, run: SyncRun, progress: Progress | None) -> tuple[SyncOutcome, SyncRun]:
        checked: set[str] = set()
        current = run
        try:
            while True:
                step = await self._step(current, checked)
                if step is None:
                    break
                current = step
                if progress is not None:
                    progress(current)
            current = await self.store.finish(current, self.owner, self.clock.now())
        except DingTalkError as exc:
            return self._ended("error"), await self._failed(current, exc)
        except ClaimLost:
            logger.warning(
                "directory sync taken over by another replica",
                extra=_fields(current, action="directory_sync_lost"),
            )
            return self._ended("lost"), current
        except StoreError:
            self._ended("error")
            raise
        logger.info(
            "directory sync done",
            extra=_fields(
                current,
                action="directory_sync_done",
                departments=current.departments,
                users=current.users,
                calls=current.calls,
            ),
        )
        if progress is not None:
            progress(current)
        return self._ended("done"), current

    def _ended(self, outcome: SyncOutcome) -> SyncOutcome:
        if self.observer is not None:
            self.observer.directory_sync_ended(outcome)
        return outcome

    async def _failed(self, run: SyncRun, exc: DingTalkError) -> SyncRun:
        """Record a failed step (its one call counted); the sync as it now stands."""
        now = self.clock.now()
        delay = self.retry.delay(run.attempts + 1)
        retry_at = now + timedelta(seconds=delay)
        error = f"{type(exc).__name__}: {exc}"[:500]
        await self.store.failed(run, self.owner, now, error, retry_at, calls=1)
        logger.error(
            "directory sync failed; retried later",
            extra=_fields(
                run,
                action="directory_sync_error",
                error=error,
                attempt=run.attempts + 1,
                retry_in=round(delay, 1),
            ),
        )
        return replace(
            run,
            calls=run.calls + 1,
            attempts=run.attempts + 1,
            last_error=error,
            retry_at=retry_at,
            lease_owner=None,
            lease_until=None,
        )

    # --- one step: one DingTalk call, one transaction -------------------------------

    async def _step(self, run: SyncRun, checked: set[str]) -> SyncRun | None:
        """The next step of ``run``; ``None`` when nothing is left to read."""
        if not run.departments:
            return await self._root(run)
        if run.queue and run.cursor != MEMBERS_READ:
            return await self._members(run)
        if run.queue:
            return await self._children(run)
        return await self._check_unseen(run, checked)

    async def _record(self, run: SyncRun, reading: Reading) -> SyncRun:
        return await self.store.record(run, self.owner, reading, self._until())

    async def _root(self, run: SyncRun) -> SyncRun:
        read_at = self.clock.now()
        root = await self.client.department(ROOT)
        if root is None:
            raise DingTalkTransient("DingTalk does not find the root department (1)")
        return await self._record(
            run, Reading(read_at, 1, run.queue, run.cursor, departments=[root])
        )

    async def _members(self, run: SyncRun) -> SyncRun:
        read_at = self.clock.now()
        try:
            page = await self.client.members(run.queue[0], run.cursor, self.page_size)
        except DingTalkError as exc:
            return await self._removed_meanwhile(run, read_at, exc)
        cursor = MEMBERS_READ if page.next_cursor is None else page.next_cursor
        return await self._record(run, Reading(read_at, 1, run.queue, cursor, users=page.users))

    async def _children(self, run: SyncRun) -> SyncRun:
        read_at = self.clock.now()
        try:
            children = await self.client.subdepartments(run.queue[0])
        except DingTalkError as exc:
            return await self._removed_meanwhile(run, read_at, exc)
        rest = run.queue[1:]
        queue = rest + tuple(d.dept_id for d in children if d.dept_id not in rest)
        return await self._record(run, Reading(read_at, 1, queue, 0, departments=children))

    async def _removed_meanwhile(
        self, run: SyncRun, read_at: datetime, error: DingTalkError
    ) -> SyncRun:
        """Reading the first department of the queue failed: if DingTalk no longer has
        it (removed since it was queued), it is removed and the sync goes on without it;
        otherwise ``error`` stands."""
        dept_id = run.queue[0]
        if await self.client.department(dept_id) is not None:
            raise error
        gone = Reading(read_at, 2, run.queue[1:], 0, departments_gone=[dept_id])
        return await self._record(run, gone)

    async def _check_unseen(self, run: SyncRun, checked: set[str]) -> SyncRun | None:
        unseen = await self.store.unseen(run, 1)
        read_at = self.clock.now()
        if unseen.users:
            user_id = unseen.users[0]
            if f"u:{user_id}" in checked:
                return None  # its row did not move on (cannot happen; never loop)
            checked.add(f"u:{user_id}")
            user = await self.client.user(user_id)
            found = Reading(read_at, 1, (), 0, users=[user] if user else [])
            gone = Reading(read_at, 1, (), 0, users_gone=[user_id])
            return await self._record(run, found if user else gone)
        if unseen.departments:
            dept_id = unseen.departments[0]
            if f"d:{dept_id}" in checked:
                return None
            checked.add(f"d:{dept_id}")
            dept = await self.client.department(dept_id)
            found = Reading(read_at, 1, (), 0, departments=[dept] if dept else [])
            gone = Reading(read_at, 1, (), 0, departments_gone=[dept_id])
            return await self._record(run, found if dept else gone)
        return None

    # --- `syncd directory sync` -----------------------------------------------------

    async def sync_now(
        self,
        progress: Progress | None = None,
        *,
        following: Progress | None = None,
        wait: Wait = asyncio.sleep,
    ) -> tuple[SyncOutcome, SyncRun]:
        """Resume the running sync (without waiting for its retry time) or start one,
        and run it to its end. While another process holds the running sync's lease,
        follow it (``following`` is told how it stands after each ``wait``) until it is
        done (its outcome is this one's) or its lease passes (then take it over)."""
        followed: SyncRun | None = None
        while True:
            now = self.clock.now()
            run = await self.store.claim(self.owner, now, self._until(), retry_due=False)
            if run is not None:
                return await self.drive(run, progress)
            running, done = await self.store.latest()
            if running is None and followed is not None and done is not None:
                if done.id == followed.id:
                    return "done", done
            if running is None:
                run = await self.store.begin("command", self.owner, now, self._until())
                if run is not None:
                    return await self.drive(run, progress)
                continue
            followed = running
            if following is not None:
                following(running)
            await wait(FOLLOW_INTERVAL)
