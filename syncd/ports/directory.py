"""The directory's seams: DingTalk's contact reads, and the directory tables.

``DirectoryClient`` is implemented by :class:`syncd.dingtalk.contacts.HttpxContactClient`.
Its methods raise a :class:`~syncd.errors.DingTalkError` branch on failure, except that a
user or department DingTalk does not know is ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, get_args

from syncd.people import DirectoryChanges, DirectoryDepartment, DirectoryUser, PersonLeft, UserPage


class DirectoryClient(Protocol):
    async def subdepartments(self, dept_id: int) -> list[DirectoryDepartment]:
        """The direct children of a department."""
        ...

    async def department(self, dept_id: int) -> DirectoryDepartment | None:
        """One department; ``None`` if DingTalk has none of that id (removed)."""
        ...

    async def members(self, dept_id: int, cursor: int = 0, size: int = 100) -> UserPage:
        """One page of a department's direct members."""
        ...

    async def user(self, user_id: str) -> DirectoryUser | None:
        """One user; ``None`` if DingTalk does not find them (unknown or departed)."""
        ...

    async def user_id_by_mobile(self, mobile: str) -> str | None:
        """The present user with this mobile (normal form), or ``None``."""
        ...


# --- the full sync (dirsync) ------------------------------------------------------------

#: How one run of a full sync ended (``syncd_directory_syncs_total{outcome}``): the sync
#: finished (``done``), DingTalk or the database failed and it waits to be resumed
#: (``error``), or another replica took its lease over (``lost``).
SyncOutcome = Literal["done", "error", "lost"]
SYNC_OUTCOMES: tuple[SyncOutcome, ...] = get_args(SyncOutcome)
#: Why a full sync was started: none ever done, the re-sync interval, `syncd directory sync`.
SyncTrigger = Literal["first", "schedule", "command"]


@dataclass(frozen=True)
class SyncRun:
    """One full sync as ``syncd.directory_sync`` holds it.

    ``queue`` holds the departments still to read, the first being read: its members
    from ``cursor`` on, or (``cursor`` -1) its sub-departments next. ``departments`` and
    ``users`` count what this sync has seen (each once), ``calls`` the DingTalk calls it
    made; ``attempts`` the DingTalk failures in a row, the next try waiting for
    ``retry_at``.
    """

    id: int
    trigger: str
    state: str
    started_at: datetime
    finished_at: datetime | None = None
    queue: tuple[int, ...] = (1,)
    cursor: int = 0
    departments: int = 0
    users: int = 0
    calls: int = 0
    attempts: int = 0
    last_error: str | None = None
    retry_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True)
class Reading:
    """What one step of a sync read from DingTalk at ``read_at`` (with ``calls`` calls),
    and where the sync stands after it (``queue``, ``cursor``)."""

    read_at: datetime
    calls: int
    queue: tuple[int, ...]
    cursor: int
    users: Sequence[DirectoryUser] = ()
    departments: Sequence[DirectoryDepartment] = ()
    users_gone: Sequence[str] = ()
    departments_gone: Sequence[int] = ()


@dataclass(frozen=True)
class Unseen:
    """Present users and departments a sync has not seen, read before it started."""

    users: list[str] = field(default_factory=list)
    departments: list[int] = field(default_factory=list)


class DirectorySyncStore(Protocol):
    """The full sync's progress and writes (``PostgresDirectorySyncStore``). Every method
    that moves a sync on is guarded by its lease: a sync whose lease another took over
    raises :class:`~syncd.errors.ClaimLost` and writes nothing."""

    async def claim(
        self, owner: str, now: datetime, until: datetime, *, retry_due: bool = True
    ) -> SyncRun | None:
        """The running sync, now leased to ``owner`` until ``until``, if its lease is
        free, passed or ``owner``'s own (and, with ``retry_due``, its retry time has
        come); else ``None``."""
        ...

    async def begin(
        self, trigger: SyncTrigger, owner: str, now: datetime, until: datetime
    ) -> SyncRun | None:
        """A new sync leased to ``owner``; ``None`` if one is running already."""
        ...

    async def record(self, run: SyncRun, owner: str, reading: Reading, until: datetime) -> SyncRun:
        """In one transaction: the sync's new position and counts, its lease extended,
        what was read saved (``sync_id`` = the sync; a row read later stays), the calls
        added to the monthly usage (exempt purpose ``directory``)."""
        ...

    async def unseen(self, run: SyncRun, limit: int) -> Unseen:
        """Up to ``limit`` of each: present rows this sync did not see, last read before
        it started (a row an event read during the sync is not among them)."""
        ...

    async def finish(self, run: SyncRun, owner: str, now: datetime) -> SyncRun:
        """The sync is ``done``; its lease ends."""
        ...

    async def failed(
        self, run: SyncRun, owner: str, now: datetime, error: str, retry_at: datetime, calls: int
    ) -> None:
        """A step failed at ``now``: the error shown, one more attempt, the lease given up
        until ``retry_at``; the failed calls counted."""
        ...

    async def release(self, run: SyncRun, owner: str) -> None:
        """Give the lease up (stopped): anyone may resume the sync at once."""
        ...

    async def latest(self) -> tuple[SyncRun | None, SyncRun | None]:
        """The running sync and the last one done (``None`` for none)."""
        ...

    async def forget_departed(self, before: datetime) -> int:
        """Delete the rows of users who left before ``before``; how many."""
        ...


class DirectorySyncObserver(Protocol):
    """Told how each run of a full sync ended (``syncd.metrics`` implements it)."""

    def directory_sync_ended(self, outcome: SyncOutcome) -> None: ...


# --- contact-change events (syncd.pipeline.directory_events) ----------------------------


class DirectoryEventStore(Protocol):
    """The directory tables and the inbox rows of contact-change events
    (``PostgresDirectoryStore``). Each method is one transaction."""

    async def apply_directory_changes(
        self, changes: DirectoryChanges, inbox_ids: Sequence[int], now: datetime
    ) -> list[PersonLeft]:
        """Store what the events told (an older read never overwrites a newer one), note
        in the history of each unfinished approval whose originator or running approver
        is now departed (once per approval and person), and mark the events processed:
        all in one transaction. Returns the notes written."""
        ...

    async def defer_directory_events(
        self, inbox_ids: Sequence[int], next_attempt_at: datetime, error: str
    ) -> None:
        """Try the events again at ``next_attempt_at`` (DingTalk could not be read)."""
        ...

    async def skip_directory_events(
        self, inbox_ids: Sequence[int], now: datetime, note: str
    ) -> None:
        """Mark the events processed without changing the directory, ``note`` saying why."""
        ...


class DirectoryObserver(Protocol):
    """Told about contact-change events, for ``syncd_directory_events_total``."""

    def directory_event(self, event_type: str) -> None:
        """A contact-change event was handled (stored, or set aside with a note)."""
        ...
