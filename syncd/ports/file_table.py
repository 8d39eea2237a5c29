"""Files of a DDAttachment component read from a table of the business database, joined
by key (``[kinds.<name>.attachments]`` with ``table``): the port the submit stage reads
them through (``syncd.db.file_table`` implements it on syncd's PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from syncd.settings_attachments import AttachmentSource


@dataclass(frozen=True)
class TableFile:
    """One row of a file table: its name, type column value, size and bytes (``content``
    is ``None`` when the column is NULL or the file is over the size limit asked)."""

    name: str | None
    type: str | None
    size: int | None
    content: bytes | None


class TableUnreadable(Exception):
    """The table cannot be read (missing, a column missing, no privilege): the message
    names the table and column, and the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FileTable(Protocol):
    async def table_files(
        self, source: AttachmentSource, key: str, max_size: int
    ) -> list[TableFile]:
        """The rows of ``source.table`` whose key column equals ``key``, in order; the
        bytes of none larger than ``max_size``. :class:`TableUnreadable` if it cannot."""
        ...
