"""``PostgresFileTable``: files of DDAttachment components read from a table of syncd's
PostgreSQL joined by key (``syncd.ports.file_table.FileTable``).

The statement is built from the kind's settings (identifiers quoted by psycopg), asks
for a file's size first and returns the bytes only of files within the limit, so an
oversized file is never read. The daemon needs SELECT on the table (docs/security.md).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from syncd.ports.file_table import TableFile, TableUnreadable
from syncd.settings_attachments import AttachmentSource


def _table(name: str) -> sql.Identifier:
    schema, _, table = name.rpartition(".")
    return sql.Identifier(schema, table) if schema else sql.Identifier(table)


def statement(source: AttachmentSource) -> sql.Composed:
    """The SELECT of one key's files, their sizes, and the bytes of those within limit."""
    assert source.table and source.key_column and source.name_column and source.content_column
    content = sql.Identifier(source.content_column)
    kind = sql.Identifier(source.type_column) if source.type_column else sql.SQL("NULL")
    order = sql.Identifier(source.order_column or source.name_column)
    return sql.SQL(
        "SELECT {name}::text AS name, {kind}::text AS type, octet_length({content}) AS size, "
        "CASE WHEN octet_length({content}) <= %(max_size)s THEN {content} END AS content "
        "FROM {table} WHERE {key}::text = %(key)s ORDER BY {order}, {name}"
    ).format(
        name=sql.Identifier(source.name_column),
        kind=kind,
        content=content,
        table=_table(source.table),
        key=sql.Identifier(source.key_column),
        order=order,
    )


class PostgresFileTable:
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self.pool = pool

    async def table_files(
        self, source: AttachmentSource, key: str, max_size: int
    ) -> list[TableFile]:
        params = {"key": key, "max_size": max_size}
        try:
            async with self.pool.connection() as conn:
                async with conn.cursor(row_factory=dict_row) as cursor:
                    await cursor.execute(statement(source), params)
                    rows = await cursor.fetchall()
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
            raise TableUnreadable(_said(exc, source, "does not exist")) from exc
        except psycopg.errors.InsufficientPrivilege as exc:
            raise TableUnreadable(
                _said(exc, source, "cannot be read: grant syncd's role SELECT on it")
            ) from exc
        except psycopg.errors.DatatypeMismatch as exc:
            raise TableUnreadable(_said(exc, source, "is not as expected")) from exc
        return [
            TableFile(
                r["name"],
                r["type"],
                r["size"],
                None if r["content"] is None else bytes(r["content"]),
            )
            for r in rows
        ]


def _said(exc: psycopg.Error, source: AttachmentSource, what: str) -> str:
    detail = (exc.diag.message_primary or str(exc)).strip()
    return f"table {source.table} {what} ({detail})"
