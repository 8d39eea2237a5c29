"""Files of a DDAttachment component from a table joined by key (``table`` in
``[kinds.<name>.attachments]``): each row one file, read at submit through the
:class:`~syncd.ports.file_table.FileTable` port. A key with no file (unless the source
is not ``required``), a file with no name or no content, or one over the size limit
parks the round with a message naming the table, the key and the column."""

from __future__ import annotations

import mimetypes
from typing import Any

from syncd.domain import SubmitItem
from syncd.pipeline.sources import MISSING, lookup
from syncd.ports.attachments import FileRef, extension
from syncd.ports.file_table import FileTable, TableFile, TableUnreadable
from syncd.settings_attachments import AttachmentSource


class TableFileProblem(Exception):
    """A table's file cannot be sent; the message names table, key and column."""

    def __init__(self, message: str, code: str = "attachment_unavailable") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def table_key(source: AttachmentSource, item: SubmitItem) -> str:
    """The value the key column must equal: the payload path ``key``, else the row's
    business key."""
    if source.key is None:
        return item.business_key
    value: Any = lookup(item.payload, source.key)
    if value is MISSING or value is None or isinstance(value, dict | list):
        raise TableFileProblem(
            f"table {source.table}: the payload has no key at {source.key!r} (a string or "
            "a number)",
            code="bad_payload",
        )
    return str(value)


def file_name(row: TableFile) -> str | None:
    """The row's name, with the extension its type column gives when it has none."""
    if row.name is None or not row.name.strip():
        return None
    if extension(row.name) or not row.type:
        return row.name
    ext = row.type.strip().lower()
    if "/" in ext:  # a MIME type
        ext = (mimetypes.guess_extension(ext) or "").lstrip(".")
    ext = ext.lstrip(".")
    return f"{row.name}.{ext}" if ext else row.name


async def table_refs(
    table: FileTable | None, label: str, source: AttachmentSource, item: SubmitItem, max_size: int
) -> list[FileRef]:
    """The files of one component, read from its table (see the module's docstring)."""
    assert source.table is not None
    key = table_key(source, item)
    where = f"{source.table} where {source.key_column} = {key!r}"
    if table is None:
        raise TableFileProblem(f"attachment {label!r}: {where}: no file table is set up")
    try:
        rows = await table.table_files(source, key, max_size)
    except TableUnreadable as exc:
        raise TableFileProblem(f"attachment {label!r}: {exc.message}") from exc
    if not rows and source.required:
        raise TableFileProblem(
            f"attachment {label!r}: no file in {where} (add the file, or set required = false "
            "for a component that may have none)"
        )
    refs = []
    for n, row in enumerate(rows, start=1):
        what = f"attachment {label!r} file {n} in {where}"
        name = file_name(row)
        if name is None:
            raise TableFileProblem(f"{what}: {source.name_column} is empty")
        if row.size is None:
            raise TableFileProblem(f"{what} ({name!r}): {source.content_column} is NULL")
        if row.content is None or row.size > max_size:
            raise TableFileProblem(
                f"{what} ({name!r}): {source.content_column} is {row.size} bytes, over the "
                f"limit of {max_size}",
                code="attachment_refused",
            )
        refs.append(FileRef(name, content=row.content))
    return refs
