"""The directory as submit reads it: who holds a job number, mobile or email, which
department has a name, who belongs where, and the by-mobile questions already asked.

Implemented by :class:`syncd.db.directory_lookup.PostgresDirectoryLookup`. Every method
is one statement or one transaction; a database failure raises ``StoreError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from syncd.people import By, DirectoryUser


@dataclass(frozen=True)
class Holder:
    """Someone in the directory who holds (or, departed, held) a value."""

    user_id: str
    name: str
    departed: bool = False


@dataclass(frozen=True)
class NamedDepartment:
    """A present department of a looked-up name, with its names from the top."""

    dept_id: int
    #: The names from the top down to this department (the root's first when ``complete``).
    path: tuple[str, ...]
    complete: bool = True


@dataclass(frozen=True)
class MobileAnswer:
    """A by-mobile question asked of DingTalk since the latest full sync, and its answer."""

    asked_at: datetime
    user_id: str | None


class PeopleDirectory(Protocol):
    async def last_full_sync(self) -> datetime | None:
        """When the latest full sync finished; ``None`` if none has yet."""
        ...

    async def holders(self, by: By, values: Sequence[str]) -> dict[str, list[Holder]]:
        """For each value (normal form) of ``by``, who holds it now and who held it before
        leaving (by the hashes a departed user keeps); values nobody holds are absent."""
        ...

    async def departments_named(self, name: str) -> list[NamedDepartment]:
        """The present departments called ``name``."""
        ...

    async def membership(self, user_id: str, dept_id: int) -> bool | None:
        """Whether a present user belongs to a department; ``None`` when the directory
        does not know the user's departments or the department."""
        ...

    async def mobile_answer(self, mobile: str) -> MobileAnswer | None:
        """The by-mobile answer for this mobile (normal form) since the latest full sync."""
        ...

    async def save_mobile_answer(
        self, mobile: str, user: DirectoryUser | None, asked_at: datetime
    ) -> None:
        """Record DingTalk's by-mobile answer (the user it found, saved in the directory,
        or ``None``), so the mobile is not asked about again until the next full sync."""
        ...


class LookupObserver(Protocol):
    """Told how each directory look-up ended (``syncd_directory_lookups_total``)."""

    def directory_lookup(self, by: str, outcome: str) -> None: ...


class NullLookupObserver:
    def directory_lookup(self, by: str, outcome: str) -> None:
        pass
