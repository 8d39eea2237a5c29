"""The directory's seams: DingTalk's contact reads, and the directory tables.

``DirectoryClient`` is implemented by :class:`syncd.dingtalk.contacts.HttpxContactClient`.
Its methods raise a :class:`~syncd.errors.DingTalkError` branch on failure, except that a
user or department DingTalk does not know is ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

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
