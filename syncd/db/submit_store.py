"""``PostgresSubmitStore``: claims and outcomes of creates and reconciliations.

Guarded transitions: a claim takes a lease and commits before any
DingTalk call; the intent (what is about to be sent) is committed next; the outcome is
recorded in a new transaction, only while the lease is still ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from syncd.db.queries import QUERIES
from syncd.db.store import (
    BaseStore,
    call_line,
    history_line,
    ids,
    jsonb,
    submit_item,
    usage_month,
)
from syncd.db.task_records import iso
from syncd.db.text import pg_text
from syncd.db.together import Together
from syncd.domain import ApprovalState, CallRecord, Intent, SubmitItem


class PostgresSubmitStore(BaseStore):
    """Claims and outcomes of creates and reconciliations (implements
    ``syncd.ports.SubmitStore``)."""

    def __init__(self, pool: AsyncConnectionPool[Any], *, actor: str = "syncd") -> None:
        super().__init__(pool, actor=actor)
        #: Creates being recorded; those answered meanwhile are recorded together next.
        self.creates: Together[dict[str, Any], bool] = Together(
            self._record_created, key=lambda created: created["id"]
        )

    async def claim_submits(
        self, limit: int, now: datetime, owner: str, lease_until: datetime
    ) -> list[SubmitItem]:
        params = {"limit": limit, "now": now, "owner": owner, "lease_until": lease_until}
        async with self.transaction(pipelined=True) as conn:
            rows = await (await conn.execute(QUERIES["claim_submit_batch"], params)).fetchall()
            rows.sort(key=lambda r: r["id"])
            lines = [
                history_line(
                    row["id"],
                    from_state=row["from_state"],
                    to_state="submitting",
                    message=f"attempt {row['attempts']}",
                )
                for row in rows
            ]
            await self.log(conn, now, lines)
        return [submit_item(r) for r in rows]

    async def record_intents(
        self, intents: Sequence[Intent], owner: str, now: datetime
    ) -> set[int]:
        """Commit what is about to be created, for several approvals in one statement;
        returns the ids whose lease is still ``owner``'s (the others must not be sent).
        An intent's note (how its people were found) joins the history once per round:
        when the originator's userId is new to the round."""
        if not intents:
            return set()
        rows = [
            {
                "id": i.approval_id,
                "process_code": i.process_code,
                "form_values": i.form_values,
                "originator_user_id": i.originator_user_id,
                "dept_id": i.dept_id,
            }
            for i in intents
        ]
        params = {"intents": Jsonb(rows), "owner": owner, "now": now}
        notes = {i.approval_id: i for i in intents if i.note}
        async with self.transaction() as conn:
            kept = await (await conn.execute(QUERIES["record_intents"], params)).fetchall()
            lines = [
                history_line(row["id"], event_type="note", message=notes[row["id"]].note)
                for row in sorted(kept, key=lambda r: r["id"])
                if row["id"] in notes
                and row["previous_user_id"] != notes[row["id"]].originator_user_id
            ]
            await self.log(conn, now, lines)
        return set(ids(kept))

    async def record_created(
        self,
        approval_id: int,
        *,
        instance_id: str,
        process_code: str,
        form_values: Any,
        now: datetime,
        next_poll_at: datetime,
        created_at: datetime | None = None,
        calls: Sequence[CallRecord] = (),
    ) -> bool:
        """Store the new instance id; False if the approval already moved on. Creates
        recorded at the same time share one statement (:class:`Together`)."""
        created = {
            "id": approval_id,
            "instance_id": instance_id,
            "process_code": process_code,
            "form_values": form_values,
            "created_at": iso(created_at),
            "now": iso(now),
            "next_poll_at": iso(next_poll_at),
            "month": usage_month(now).isoformat(),
            "message": f"instance {instance_id}",
            "calls": [call_line(approval_id, c) for c in calls],
        }
        return await self.creates(created)

    async def _record_created(self, created: Sequence[dict[str, Any]]) -> list[bool]:
        """``record_created`` for several creates; whether each approval moved."""
        params = {"created": Jsonb(list(created)), "actor": self.actor}
        moved = {row["id"] for row in await self.fetch_all("record_created", params)}
        return [c["id"] in moved for c in created]

    async def record_failed(
        self,
        approval_id: int,
        *,
        to_state: ApprovalState,
        now: datetime,
        next_attempt_at: datetime,
        error_code: str,
        error_message: str,
        refund: bool = False,
        process_code: str | None = None,
        form_values: Any = None,
        calls: Sequence[CallRecord] = (),
        owner: str | None = None,
    ) -> bool:
        """An attempt ended without an instance; False if the approval already moved on
        (or, with ``owner``, if that replica's claim was lost: another one owns it now)."""
        params = {
            "id": approval_id,
            "owner": owner,
            "to_state": to_state.value,
            "now": now,
            "next_attempt_at": next_attempt_at,
            "refund": 1 if refund else 0,
            "error_code": pg_text(error_code),  # DingTalk's words, as PostgreSQL stores them
            "error_message": pg_text(error_message[:2000]),
            "process_code": process_code,
            "form_values": jsonb(form_values),
            "calls": len(calls),
        }
        async with self.transaction(pipelined=True) as conn:
            row = await (await conn.execute(QUERIES["record_attempt_failed"], params)).fetchone()
            if row is None:
                return False
            lines = []
            if row["from_state"] != to_state.value or to_state is not ApprovalState.UNKNOWN:
                message = f"{error_code}: {error_message}"[:2000]
                lines.append(
                    history_line(
                        approval_id,
                        from_state=row["from_state"],
                        to_state=to_state.value,
                        message=message,
                    )
                )
            await self.calls(conn, approval_id, now, calls, *lines)
        return True

    async def expire_leases(self, now: datetime) -> list[int]:
        """Submitting approvals whose worker vanished become ``unknown``."""
        async with self.transaction(pipelined=True) as conn:
            rows = await (
                await conn.execute(QUERIES["expire_submit_leases"], {"now": now})
            ).fetchall()
            message = "lease expired during a create; reconciling before any retry"
            lines = [
                history_line(id_, from_state="submitting", to_state="unknown", message=message)
                for id_ in ids(rows)
            ]
            await self.log(conn, now, lines)
        return ids(rows)

    async def claim_unknowns(
        self, limit: int, now: datetime, owner: str, lease_until: datetime
    ) -> list[SubmitItem]:
        params = {"limit": limit, "now": now, "owner": owner, "lease_until": lease_until}
        rows = await self.fetch_all("claim_unknown_batch", params)
        return [submit_item(r) for r in sorted(rows, key=lambda r: r["id"])]

    async def known_instances(self, instance_ids: Sequence[str]) -> set[str]:
        rows = await self.fetch_all("select_known_instances", {"ids": list(instance_ids)})
        return {r["instance_id"] for r in rows}

    async def record_calls(
        self, approval_id: int, now: datetime, calls: Sequence[CallRecord]
    ) -> None:
        if not calls:
            return
        async with self.transaction(pipelined=True) as conn:
            await conn.execute(QUERIES["add_calls"], {"id": approval_id, "calls": len(calls)})
            await self.calls(conn, approval_id, now, calls)
