"""The directory's seams: DingTalk's contact reads, and the directory tables.

``DirectoryClient`` is implemented by :class:`syncd.dingtalk.contacts.HttpxContactClient`.
Its methods raise a :class:`~syncd.errors.DingTalkError` branch on failure, except that a
user or department DingTalk does not know is ``None``.
"""

from __future__ import annotations

from typing import Protocol

from syncd.people import DirectoryDepartment, DirectoryUser, UserPage


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
