"""Contact-change events (contract §16) keep the directory current.

They reach ``syncd.inbox`` like approval events (Stream, callback, the failed-push list,
deduplicated there), and the apply stage hands them here. They carry ids only, so
DingTalk is read again: a user added, changed or activated is read (``None``: gone, so
departed); a user who left needs no read; a department created or changed is read
(``None``: removed); a removed one needs no read. One event may name several ids, and
one batch reads each id once. What the reads found, the approvals whose originator or
running approver left (noted in their history) and the events' processed marks are
stored in one transaction. An event whose read failed waits and is tried again with
backoff, never lost. Without the directory (``[directory] enabled = false``), and for
contact events the directory has no use for (admins, role labels, the organisation's
own details), the events are only marked processed, with a note.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from syncd.dingtalk.events import DIRECTORY_EVENTS, dept_ids, event_time_ms, user_ids
from syncd.domain import InboxItem
from syncd.errors import DingTalkError
from syncd.logging import approval_fields
from syncd.people import DirectoryChanges, DirectoryDepartment, DirectoryUser, PersonLeft
from syncd.pipeline.retry import RetryPolicy
from syncd.ports import Clock
from syncd.ports.directory import DirectoryClient, DirectoryEventStore, DirectoryObserver

logger = logging.getLogger(__name__)

LEAVE = "user_leave_org"
REMOVE = "org_dept_remove"
#: The events whose ids are read again (a leave and a removal need no read).
READ_USERS = frozenset({"user_add_org", "user_modify_org", "user_active_org"})
READ_DEPARTMENTS = frozenset({"org_dept_create", "org_dept_modify"})
#: The notes of events set aside (``syncd.inbox.last_error``).
NOT_ENABLED = (
    "contact event not applied: the directory is not enabled ([directory] enabled = false)"
)
NOT_USED = "contact event not used: the directory keeps no admins, role labels or org details"
#: A failed read is tried again after 5 s, 10 s, 20 s, ... at most 10 minutes (jittered).
RETRY = RetryPolicy(base=5.0, cap=600.0)


class _NullObserver:
    def directory_event(self, event_type: str) -> None:
        pass


@dataclass
class _Reads:
    """What DingTalk answered for each id read, and the ids whose read failed."""

    users: dict[str, DirectoryUser | None] = field(default_factory=dict)
    departments: dict[int, DirectoryDepartment | None] = field(default_factory=dict)
    failed: dict[str | int, str] = field(default_factory=dict)


def _reads_users(item: InboxItem) -> list[str]:
    return user_ids(item.payload) if item.event_type in READ_USERS else []


def _reads_departments(item: InboxItem) -> list[int]:
    return dept_ids(item.payload) if item.event_type in READ_DEPARTMENTS else []


def _known_at(item: InboxItem, read_at: datetime) -> datetime:
    """When a leave or a removal happened: the event's own time (so a late redelivery
    cannot undo a rejoin read since), else now, when syncd learns of it."""
    ms = event_time_ms(item.payload)
    return read_at if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


class DirectoryEvents:
    """Applies contact-change events to the directory (called by the apply stage)."""

    def __init__(
        self,
        store: DirectoryEventStore,
        client: DirectoryClient,
        clock: Clock,
        *,
        enabled: bool,
        observer: DirectoryObserver | None = None,
        retry: RetryPolicy = RETRY,
    ) -> None:
        self.store = store
        self.client = client
        self.clock = clock
        self.enabled = enabled
        self.observer: DirectoryObserver = observer or _NullObserver()
        self.retry = retry

    async def handle(self, items: Sequence[InboxItem]) -> None:
        """Apply (or set aside) a batch of non-approval events claimed from the inbox."""
        unused = [i for i in items if i.event_type not in DIRECTORY_EVENTS]
        changes = [i for i in items if i.event_type in DIRECTORY_EVENTS]
        if not self.enabled:
            unused, changes = [*unused, *changes], []
        if unused:
            note = NOT_USED if self.enabled else NOT_ENABLED
            await self.store.skip_directory_events([i.id for i in unused], self.clock.now(), note)
            self._counted(unused)
        if changes:
            await self._apply(changes)

    async def _apply(self, items: list[InboxItem]) -> None:
        read_at = self.clock.now()
        reads = await self._read(items)
        done = [i for i in items if not self._failures(i, reads)]
        for item in items:
            if failures := self._failures(item, reads):
                await self._defer(item, failures)
        if not done:
            return
        changes = _changes(done, reads, read_at)
        noted = await self.store.apply_directory_changes(
            changes, [i.id for i in done], self.clock.now()
        )
        self._counted(done)
        for left in noted:
            _log_left(left)

    async def _read(self, items: Iterable[InboxItem]) -> _Reads:
        """Read each user and department the events name once; failures kept by id."""
        reads = _Reads()
        items = list(items)
        for user_id in sorted({u for i in items for u in _reads_users(i)}):
            try:
                reads.users[user_id] = await self.client.user(user_id)
            except DingTalkError as exc:
                reads.failed[user_id] = str(exc)
        for dept_id in sorted({d for i in items for d in _reads_departments(i)}):
            try:
                reads.departments[dept_id] = await self.client.department(dept_id)
            except DingTalkError as exc:
                reads.failed[dept_id] = str(exc)
        return reads

    @staticmethod
    def _failures(item: InboxItem, reads: _Reads) -> list[str]:
        wanted: list[str | int] = [*_reads_users(item), *_reads_departments(item)]
        return [f"{key}: {reads.failed[key]}" for key in wanted if key in reads.failed]

    async def _defer(self, item: InboxItem, failures: list[str]) -> None:
        delay = timedelta(seconds=self.retry.delay(item.attempts))
        error = "DingTalk not read, tried again later: " + "; ".join(failures)
        await self.store.defer_directory_events([item.id], self.clock.now() + delay, error[:500])
        logger.warning(
            "contact event deferred",
            extra={
                "action": "directory_event_deferred",
                "event_type": item.event_type,
                "inbox_id": item.id,
                "attempt": item.attempts,
                "retry_in": delay.total_seconds(),
                "error": error[:500],
            },
        )

    def _counted(self, items: Iterable[InboxItem]) -> None:
        for item in items:
            self.observer.directory_event(item.event_type)


def _changes(items: list[InboxItem], reads: _Reads, read_at: datetime) -> DirectoryChanges:
    """What the events and their reads say, in one :class:`DirectoryChanges`."""
    users: dict[str, DirectoryUser] = {}
    departments: dict[int, DirectoryDepartment] = {}
    gone: set[tuple[str, datetime]] = set()
    removed: set[tuple[int, datetime]] = set()
    for item in items:
        for user_id in _reads_users(item):
            if (user := reads.users[user_id]) is None:
                gone.add((user_id, read_at))
            else:
                users[user_id] = user
        for dept_id in _reads_departments(item):
            if (dept := reads.departments[dept_id]) is None:
                removed.add((dept_id, read_at))
            else:
                departments[dept_id] = dept
        if item.event_type == LEAVE:
            gone.update((u, _known_at(item, read_at)) for u in user_ids(item.payload))
        elif item.event_type == REMOVE:
            removed.update((d, _known_at(item, read_at)) for d in dept_ids(item.payload))
    return DirectoryChanges(
        read_at=read_at,
        users=tuple(users[u] for u in sorted(users)),
        departments=tuple(departments[d] for d in sorted(departments)),
        gone=tuple(sorted(gone)),
        removed=tuple(sorted(removed)),
    )


def _log_left(left: PersonLeft) -> None:
    logger.info(
        "a person left while an approval waits",
        extra={
            "action": "approval_person_left",
            **approval_fields(left.approval),
            "instance_id": left.approval.instance_id,
            "user_id": left.user_id,
            "role": left.role,
        },
    )
