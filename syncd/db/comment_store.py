"""``PostgresCommentStore``: outbox comments waiting, sent, dropped or failed (syncd.comment)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, history_line
from syncd.domain import CallRecord
from syncd.domain_comments import CommentItem


class PostgresCommentStore(BaseStore):
    """Implements ``syncd.ports.CommentStore``; a claim takes the comment's lease."""

    async def drop_finished(self, now: datetime) -> int:
        row = await self.fetch_one("drop_finished_comments", {"now": now, "actor": self.actor})
        return int(row["dropped"]) if row else 0

    async def claim_comments(
        self, limit: int, now: datetime, owner: str, lease_until: datetime
    ) -> list[CommentItem]:
        params = {"limit": limit, "now": now, "owner": owner, "lease_until": lease_until}
        rows = await self.fetch_all("claim_comments", params)
        return [CommentItem(**{k: r[k] for k in CommentItem.__dataclass_fields__}) for r in rows]

    async def sent_count(self, approval_id: int, user_id: str, text: str) -> int:
        params = {"approval_id": approval_id, "user_id": user_id, "text": text}
        row = await self.fetch_one("count_sent_comments", params)
        return int(row["sent"]) if row else 0

    async def finish_comment(
        self, item: CommentItem, now: datetime, owner: str, *, sent_as: str | None,
        error: tuple[str, str] | None, calls: Sequence[CallRecord], note: str,
    ) -> None:  # fmt: skip
        code, message = error or (None, None)
        params = {"id": item.id, "now": now, "owner": owner, "sent_as": sent_as}
        params.update(state="failed" if error else "sent", calls=len(calls))
        params.update(error_code=code, error_message=message)
        async with self.transaction() as conn:
            done = await (await conn.execute(QUERIES["finish_comment"], params)).fetchone()
            if done is not None:  # else the lease was lost: the new holder records it
                line = history_line(item.approval_id, event_type="note", message=note)
                await self.calls(conn, item.approval_id, now, calls, line)

    async def release_comment(
        self, item: CommentItem, now: datetime, owner: str, retry_at: datetime, *,
        in_doubt: bool, error: tuple[str, str], calls: Sequence[CallRecord],
    ) -> None:  # fmt: skip
        params = {"id": item.id, "now": now, "owner": owner, "next_attempt_at": retry_at}
        params.update(in_doubt=in_doubt, error_code=error[0], error_message=error[1])
        params.update(calls=len(calls))
        async with self.transaction() as conn:
            await conn.execute(QUERIES["release_comment"], params)
            await self.calls(conn, item.approval_id, now, calls)
