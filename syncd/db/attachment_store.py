"""``PostgresAttachmentStore``: the files committed into DingTalk for each approval round
(``syncd.attachment``), so that a submit retried after a crash reuses them, and the
originator's unionId from the directory."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, history_line
from syncd.domain import CallRecord
from syncd.ports.attachments import Attachment, attachment_slot, comment_slot


class PostgresAttachmentStore(BaseStore):
    """Implements ``syncd.ports.attachments.AttachmentStore``."""

    async def attachments(self, approval_id: int) -> dict[tuple[str, int], Attachment]:
        rows = await self.fetch_all("select_attachments", {"approval_id": approval_id})
        return {(r["component"], r["file_index"]): _attachment(r) for r in rows}

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
        params: dict[str, Any] = {"approval_id": approval_id, "component": component}
        params["file_index"] = index
        params.update(_file(file), uploaded_by=uploaded_by, now=at)
        slot = attachment_slot(component, index)
        await self._record("insert_attachment", params, approval_id, slot, message, calls, at)

    async def comment_files(self, comment_id: int) -> dict[int, Attachment]:
        rows = await self.fetch_all("select_comment_files", {"comment_id": comment_id})
        return {r["file_index"]: _attachment(r) for r in rows}

    async def record_comment_file(
        self,
        comment_id: int,
        approval_id: int,
        index: int,
        file: Attachment,
        uploaded_by: str,
        calls: Sequence[CallRecord],
        now: datetime,
    ) -> None:
        message = (
            f"uploaded {file.file_name!r} ({file.file_size} bytes) for comment {comment_id}"
            f" file {index + 1} as fileId {file.file_id} in space {file.space_id}"
        )
        params: dict[str, Any] = {"comment_id": comment_id, "file_index": index}
        params.update(_file(file), uploaded_by=uploaded_by, now=now)
        slot = comment_slot(comment_id, index)
        await self._record("insert_comment_file", params, approval_id, slot, message, calls, now)

    async def _record(
        self,
        query: str,
        params: dict[str, Any],
        approval_id: int,
        slot: str,
        message: str,
        calls: Sequence[CallRecord],
        at: datetime,
    ) -> None:
        """A committed file's row, its calls and a history line, in one transaction; its
        upload is no longer in doubt."""
        async with self.transaction(pipelined=True) as conn:
            await conn.execute(QUERIES[query], params)
            await conn.execute(
                QUERIES["upload_recorded"], {"approval_id": approval_id, "slot": slot}
            )
            line = history_line(approval_id, event_type="note", message=message)
            await self.calls(conn, approval_id, at, calls, line)
            await conn.execute(QUERIES["add_calls"], {"id": approval_id, "calls": len(calls)})

    async def upload_begun(self, approval_id: int, slot: str, now: datetime) -> datetime | None:
        params = {"approval_id": approval_id, "slot": slot, "now": now}
        row = await self.fetch_one("upload_begun", params)
        return row["begun_at"] if row is not None and row["attempts"] > 1 else None

    async def union_id(self, user_id: str) -> str | None:
        row = await self.fetch_one("select_union_id", {"user_id": user_id})
        return None if row is None else row["union_id"]

    async def left_at(self, user_id: str) -> datetime | None:
        row = await self.fetch_one("select_user_left_at", {"user_id": user_id})
        return None if row is None else row["left_at"]

    async def directory_synced(self) -> bool:
        row = await self.fetch_one("directory_last_full_sync", {})
        return row is not None and row["finished_at"] is not None


def _attachment(row: dict[str, Any]) -> Attachment:
    return Attachment(
        space_id=row["space_id"],
        file_id=row["file_id"],
        file_name=row["file_name"],
        file_size=row["file_size"],
        file_type=row["file_type"],
    )


def _file(file: Attachment) -> dict[str, Any]:
    return {
        "space_id": file.space_id,
        "file_id": file.file_id,
        "file_name": file.file_name,
        "file_size": file.file_size,
        "file_type": file.file_type,
    }
