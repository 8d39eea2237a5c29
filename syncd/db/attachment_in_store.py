"""``PostgresAttachmentInStore``: attachments back (``syncd.attachment_in``,
``syncd.attachment_fetch``). A file's record and its row in the business table commit in
one transaction: a crash before the commit leaves neither (the file is fetched again), a
crash after leaves both (the record keeps it from being inserted twice)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from psycopg import sql
from psycopg.types.json import Jsonb

from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, history_line
from syncd.domain import CallRecord
from syncd.ports.attachments_back import FetchItem, FileBack, LinksTarget

#: The business table's columns (README, "Attachments back").
COLUMNS = (
    "business_key", "file_id", "file_name", "file_size", "file_type", "attached_by",
    "attached_at", "attached_in", "content",
)  # fmt: skip


def _insert(table: str) -> sql.Composed:
    schema, name = table.split(".", 1)
    return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(schema, name),
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        sql.SQL(", ").join(sql.Placeholder(c) for c in COLUMNS),
    )


def _update(target: LinksTarget) -> sql.Composed:
    """The links into the business row (a key of any type: the parameter is untyped)."""
    table = sql.Identifier(*(p for p in target.table.rpartition(".")[::2] if p))
    return sql.SQL("UPDATE {} SET {} = %(links)s WHERE {} = %(key)s").format(
        table, sql.Identifier(target.column),
        sql.Identifier(target.key_column),
    )  # fmt: skip


def _record(item: FetchItem, file: FileBack, now: datetime) -> dict[str, object]:
    return {
        "approval_id": item.approval_id, "file_id": file.file_id, "space_id": file.space_id,
        "attached_in": file.attached_in, "file_name": file.name, "file_size": file.size,
        "file_type": file.type, "attached_by": file.attached_by,
        "attached_at": file.attached_at, "now": now,
    }  # fmt: skip


class PostgresAttachmentInStore(BaseStore):
    """Implements ``syncd.ports.attachments_back.AttachmentInStore``."""

    async def claim(
        self,
        kinds: Sequence[str],
        limit: int,
        now: datetime,
        owner: str,
        lease_until: datetime,
        since: Mapping[str, datetime] | None = None,
    ) -> list[FetchItem]:
        params = {"kinds": list(kinds), "limit": limit, "now": now, "owner": owner}
        params["since"] = Jsonb({k: at.isoformat() for k, at in (since or {}).items()})
        rows = await self.fetch_all(
            "claim_attachment_fetches", params | {"lease_until": lease_until}
        )
        return [FetchItem(**r) for r in rows]

    async def recorded(self, approval_id: int) -> set[str]:
        rows = await self.fetch_all("select_attachments_in", {"approval_id": approval_id})
        return {r["file_id"] for r in rows}

    async def save(
        self,
        item: FetchItem,
        file: FileBack,
        calls: Sequence[CallRecord],
        now: datetime,
        *,
        table: str | None = None,
        data: bytes | None = None,
        stored_as: str | None = None,
        error: tuple[str, str] | None = None,
    ) -> bool:
        code, message = error or (None, None)
        params = _record(item, file, now) | {
            "state": "failed" if error else "fetched",
            "stored_as": stored_as or (table if error is None else None),
            "error_code": code, "error_message": message,
        }  # fmt: skip
        where = f"{file.attached_in!r}" if not file.on_comment else "a comment"
        note = (
            f"attachment back: {file.name!r} (fileId {file.file_id}, {where}) not fetched:"
            f" {message}"
            if error
            else f"attachment back: {file.name!r} (fileId {file.file_id}, {where}, "
            f"{file.size} bytes) fetched into {stored_as or table}"
        )
        async with self.transaction() as conn:
            cursor = await conn.execute(QUERIES["insert_attachment_in"], params)
            if await cursor.fetchone() is None:
                return False  # recorded already: nothing more
            if table is not None and error is None:
                row = {
                    "business_key": item.business_key, "file_id": file.file_id,
                    "file_name": file.name, "file_size": file.size, "file_type": file.type,
                    "attached_by": file.attached_by, "attached_at": file.attached_at,
                    "attached_in": file.attached_in, "content": data or b"",
                }  # fmt: skip
                await conn.execute(_insert(table), row)
            line = history_line(item.approval_id, event_type="note", message=note)
            await self.calls(conn, item.approval_id, now, calls, line)
            await conn.execute(QUERIES["add_calls"], {"id": item.approval_id, "calls": len(calls)})
        return True

    async def save_links(
        self,
        item: FetchItem,
        links: Sequence[tuple[FileBack, dict[str, object]]],
        calls: Sequence[CallRecord],
        now: datetime,
        target: LinksTarget,
    ) -> bool:
        where = f"{target.table}.{target.column}"
        async with self.transaction() as conn:
            await conn.execute(QUERIES["begin_writeback"])  # no capture of this update
            value = Jsonb([entry for _, entry in links])
            cursor = await conn.execute(_update(target), {"links": value, "key": item.business_key})
            if cursor.rowcount < 1:
                return False
            for file, _ in links:
                params = _record(item, file, now) | {"state": "linked", "stored_as": where}
                params.update(error_code=None, error_message=None)
                await conn.execute(QUERIES["insert_attachment_in"], params)
            note = f"attachment back: {len(links)} download links (valid 15 minutes) into {where}"
            line = history_line(item.approval_id, event_type="note", message=note)
            await self.calls(conn, item.approval_id, now, calls, line)
            await conn.execute(QUERIES["add_calls"], {"id": item.approval_id, "calls": len(calls)})
        return True

    async def finish(self, item: FetchItem, now: datetime, owner: str) -> None:
        params = {"approval_id": item.approval_id, "now": now, "owner": owner}
        async with self.connection() as conn:
            await conn.execute(QUERIES["finish_attachment_fetch"], params)

    async def release(
        self,
        item: FetchItem,
        now: datetime,
        owner: str,
        retry_at: datetime,
        error: str,
        calls: Sequence[CallRecord],
        *,
        give_up: bool = False,
    ) -> None:
        params = {"approval_id": item.approval_id, "owner": owner, "error": error[:2000]}
        params |= {"next_attempt_at": retry_at, "give_up": give_up, "now": now}
        async with self.transaction() as conn:
            await conn.execute(QUERIES["release_attachment_fetch"], params)
            await self.calls(conn, item.approval_id, now, calls)
            await conn.execute(QUERIES["add_calls"], {"id": item.approval_id, "calls": len(calls)})
