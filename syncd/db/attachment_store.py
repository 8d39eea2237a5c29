"""``PostgresAttachmentStore``: the files committed into DingTalk for each approval round
(``syncd.attachment``), so that a submit retried after a crash reuses them, and the
originator's unionId from the directory."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, history_line
from syncd.domain import CallRecord
from syncd.ports.attachments import Attachment


class PostgresAttachmentStore(BaseStore):
    """Implements ``syncd.ports.attachments.AttachmentStore``."""

    async def attachments(self, approval_id: int) -> dict[tuple[str, int], Attachment]:
        rows = await self.fetch_all("select_attachments", {"approval_id": approval_id})
        return {
            (r["component"], r["file_index"]): Attachment(
                space_id=r["space_id"],
                file_id=r["file_id"],
                file_name=r["file_name"],
                file_size=r["file_size"],
                file_type=r["file_type"],
            )
            for r in rows
        }

    async def record_attachment(
        self,
        approval_id: int,
        component: str,
        index: int,
        file: Attachment,
        uploaded_by: str,
        calls: Sequence[CallRecord],
        now: datetime | None = None,
    ) -> None:
        at = now or datetime.now().astimezone()
        message = (
            f"uploaded {file.file_name!r} ({file.file_size} bytes) for {component!r}"
            f" file {index + 1} as fileId {file.file_id} in space {file.space_id}"
        )
        async with self.transaction(pipelined=True) as conn:
            await conn.execute(
                QUERIES["insert_attachment"],
                {
                    "approval_id": approval_id,
                    "component": component,
                    "file_index": index,
                    "space_id": file.space_id,
                    "file_id": file.file_id,
                    "file_name": file.file_name,
                    "file_size": file.file_size,
                    "file_type": file.file_type,
                    "uploaded_by": uploaded_by,
                    "now": at,
                },
            )
            line = history_line(approval_id, event_type="note", message=message)
            await self.calls(conn, approval_id, at, calls, line)
            await conn.execute(QUERIES["add_calls"], {"id": approval_id, "calls": len(calls)})

    async def union_id(self, user_id: str) -> str | None:
        row = await self.fetch_one("select_union_id", {"user_id": user_id})
        return None if row is None else row["union_id"]

    async def left_at(self, user_id: str) -> datetime | None:
        row = await self.fetch_one("select_user_left_at", {"user_id": user_id})
        return None if row is None else row["left_at"]
