"""``PostgresWriteBackStore``: outcomes the business targets refused, written again, and
unfinished rounds' progress; and the write-back step every transaction that makes
approvals final shares.

An outcome goes to its kind's :class:`~syncd.ports.BusinessTarget` on the connection of
syncd's transaction, and the approval is marked written in the same transaction: the
business row and syncd's state commit together, or neither does. A target that refuses
(``WriteBackError``) rolls the transaction back; the caller then records the refusal in a
transaction of its own, and the outcome waits in ``syncd.unwritten``. Progress goes the
same way, one round per transaction, the round's latest state read under lock (see
``lock_progress`` in sql/queries.sql), a refusal recorded with the round to be retried.
Every such transaction is marked as syncd's write-back, so capture triggers skip it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, Conn, approval_ref, ids
from syncd.dingtalk.models import InstanceLinks, instance_links
from syncd.domain import ApprovalRef, ApprovalState, Outcome
from syncd.domain_comments import last_comment, written_comments
from syncd.errors import WriteBackError
from syncd.ports import BusinessTarget, ProgressRow, ProgressWrite

#: Each kind's business target, on syncd's connection (a kind without one is marked
#: written with a note, as there is nothing to write).
Targets = Mapping[str, BusinessTarget[Conn]]


class OutcomeWrites(BaseStore):
    """Writing outcome rows to their targets and recording refusals, on a connection."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        targets: Targets,
        *,
        actor: str = "syncd",
        corp_id: str = "",
    ) -> None:
        """``corp_id`` builds the links DingTalk did not give (``dingtalk.corp_id``)."""
        super().__init__(pool, actor=actor)
        self.targets = targets
        self.corp_id = corp_id

    async def write_outcomes(
        self,
        conn: Conn,
        rows: Sequence[dict[str, Any]],
        now: datetime,
        force: bool = False,
        *,
        marked: bool = False,
    ) -> None:
        """Write outcome rows to their targets (each once, unless ``force``) and mark the
        approvals written, in one statement (only their history notes when the statement
        that made them final ``marked`` them already). Raises ``WriteBackError`` when a
        target refuses: the caller's transaction must then roll back."""
        due = [r for r in rows if force or r["written_back_at"] is None]
        newer = await self._newer_writes(conn, [r for r in due if r["kind"] in self.targets])
        written = []
        begun = False
        for row in due:
            target = self.targets.get(row["kind"])
            if target is None:
                message = "no write-back configured"
            elif row["id"] in newer:
                message = (
                    f"not written back to {target.name}: round {newer[row['id']]} of the "
                    "business key has written the row since, and a round never overwrites "
                    "a newer one"
                )
            else:
                if not begun:  # capture triggers skip what follows
                    await conn.execute(QUERIES["begin_writeback"])
                    begun = True
                await target.write(conn, _outcome(row, self.corp_id), again=force)
                message = f"written back to {target.name}"
            written.append({"id": row["id"], "message": message})
        if written:
            params = {"written": Jsonb(written), "now": now, "actor": self.actor}
            query = QUERIES["note_written_back" if marked else "mark_written_back"]
            await conn.execute(query, params)

    async def _newer_writes(self, conn: Conn, rows: Sequence[dict[str, Any]]) -> dict[int, int]:
        """Of ``rows`` (outcomes to write), those a newer round of their key has written
        over, by approval id, with that round. Their keys are locked first, until the
        transaction ends, against every other write of them (see ``lock_writeback_keys``)."""
        if not rows:
            return {}
        keys = {"kinds": [r["kind"] for r in rows], "keys": [r["business_key"] for r in rows]}
        await conn.execute(QUERIES["lock_writeback_keys"], keys)
        query = QUERIES["select_newer_writes"]
        found = await conn.execute(query, {"ids": [r["id"] for r in rows]})
        return {r["id"]: r["newer_round"] for r in await found.fetchall()}

    async def writeback_failed(
        self, conn: Conn, approval_id: int, now: datetime, error: str, retry_at: datetime
    ) -> None:
        """Record a refusal: the error, one more attempt, the next at ``retry_at``."""
        params = {"id": approval_id, "now": now, "error": error[:2000], "next_attempt_at": retry_at}
        await conn.execute(QUERIES["record_writeback_failed"], params)
        await self.history(
            conn, approval_id, now, event_type="note", message=f"write-back failed: {error}"
        )


class PostgresWriteBackStore(OutcomeWrites):
    """Implements ``syncd.ports.WriteBackStore``: the write-back retry and ``syncd replay``."""

    async def claim_unwritten(
        self, limit: int, now: datetime, lease_until: datetime, max_attempts: int
    ) -> list[ApprovalRef]:
        params = {
            "limit": limit,
            "now": now,
            "lease_until": lease_until,
            "max_attempts": max_attempts,
        }
        return [approval_ref(r) for r in await self.fetch_all("claim_unwritten_batch", params)]

    async def write_back(
        self, approval_id: int, now: datetime, retry_at: datetime, *, force: bool = False
    ) -> str | None:
        """Retry one write-back (again, with ``force``); returns the error, or None."""
        try:
            async with self.transaction() as conn:
                query = QUERIES["select_outcome"]
                row = await (await conn.execute(query, {"id": approval_id})).fetchone()
                assert row is not None
                # Written meanwhile (a replica, a replay) unless forced: nothing to do.
                await self.write_outcomes(conn, [row], now, force=force)
            return None
        except WriteBackError as exc:
            error = str(exc)
        async with self.transaction() as conn:
            await self.writeback_failed(conn, approval_id, now, error, retry_at)
        return error

    # --- progress -----------------------------------------------------------------------

    async def due_progress(self, kinds: Sequence[str], limit: int, now: datetime) -> list[int]:
        params = {"kinds": list(kinds), "limit": limit, "now": now}
        return ids(await self.fetch_all("select_due_progress", params))

    async def write_progress(
        self,
        approval_id: int,
        now: datetime,
        decide: Callable[[ProgressRow], Outcome | None],
        *,
        retry_at: Callable[[int], datetime],
        max_attempts: int,
    ) -> ProgressWrite | None:
        """Write one round's latest state if still due (see ``WriteBackStore``)."""
        async with self.transaction() as conn:
            params = {"id": approval_id, "now": now, "lock_timeout": LOCK_TIMEOUT}
            try:
                async with conn.transaction():  # a savepoint: a lock timeout leaves it usable
                    locked = await (await conn.execute(QUERIES["lock_progress"], params)).fetchone()
            except psycopg.errors.LockNotAvailable:
                # SKIP LOCKED skips a round whose final outcome is being written, but not the
                # newer version of a row updated meanwhile: PostgreSQL waits for that one.
                # Skipped all the same; it stays due for the next pass.
                return None
            if locked is None:
                return None
            query = QUERIES["select_progress"]
            found = await (await conn.execute(query, {"id": approval_id})).fetchone()
            if found is None:  # written meanwhile by another replica
                return None
            row = _progress_row(found, self.corp_id)
            outcome = decide(row)
            target = self.targets.get(row.kind)
            if outcome is None or target is None:
                await self._progress_done(conn, row, now, written=False)
                return ProgressWrite(row, None)
            try:
                async with conn.transaction():  # a refusal leaves nothing of the write
                    await target.write_progress(conn, outcome)
            except WriteBackError as exc:
                retry = retry_at(row.attempts + 1)
                return await self._progress_failed(
                    conn, row, outcome, now, str(exc), retry, max_attempts
                )
            await self._progress_done(conn, row, now, written=True)
            return ProgressWrite(row, outcome)

    async def _progress_done(
        self, conn: Conn, row: ProgressRow, now: datetime, *, written: bool
    ) -> None:
        params = {"id": row.approval_id, "seq": row.seq, "written": written, "now": now}
        await conn.execute(QUERIES["mark_progress_written"], params)

    async def _progress_failed(
        self,
        conn: Conn,
        row: ProgressRow,
        outcome: Outcome,
        now: datetime,
        error: str,
        retry_at: datetime,
        max_attempts: int,
    ) -> ProgressWrite:
        params = {
            "id": row.approval_id,
            "seq": row.seq,
            "error": error[:2000],
            "retry_at": retry_at,
            "max_attempts": max_attempts,
        }
        failed = await (await conn.execute(QUERIES["record_progress_failed"], params)).fetchone()
        gave_up = bool(failed and failed["gave_up"])
        note = f"progress write-back ({outcome.status}) failed"
        if gave_up:
            note += f" {max_attempts} times, given up until the next change"
        await self.history(
            conn, row.approval_id, now, event_type="note", message=f"{note}: {error}"
        )
        return ProgressWrite(row, None, error=error, gave_up=gave_up)


#: How long a progress write waits for a lock (the business row, another write of its
#: key) before it gives up and is retried: a final outcome waiting on it waits no longer.
LOCK_TIMEOUT = "1s"


def _progress_row(row: dict[str, Any], corp_id: str) -> ProgressRow:
    links = _links(row, corp_id)
    return ProgressRow(
        approval_id=row["id"],
        kind=row["kind"],
        business_key=row["business_key"],
        round=row["round"],
        state=ApprovalState(row["state"]),
        seq=row["seq"],
        instance_id=row["instance_id"],
        changed_at=row["changed_at"],
        error_message=row["last_error_message"],
        url=links.url,
        pc_url=links.pc_url,
        mobile_url=links.mobile_url,
        current_nodes=tuple(row["current_nodes"]),
        pending_approvers=tuple(row["pending"]),
        has_tasks=bool(row["has_tasks"]),
        superseded=bool(row["superseded"]),
        attempts=row["attempts"],
        comments=written_comments(row["comments"]),
    )


def _links(row: dict[str, Any], corp_id: str) -> InstanceLinks:
    return instance_links(
        corp_id,
        row["instance_id"],
        url=row["url"],
        task_pc_url=row["task_pc_url"],
        task_mobile_url=row["task_mobile_url"],
    )


def _outcome(row: dict[str, Any], corp_id: str) -> Outcome:
    links = _links(row, corp_id)
    comments = written_comments(row["comments"])
    return Outcome(
        approval_id=row["id"],
        kind=row["kind"],
        business_key=row["business_key"],
        round=row["round"],
        status=row["state"],
        dingtalk_status=row["dingtalk_status"],
        result=row["dingtalk_result"],
        instance_id=row["instance_id"],
        business_id=row["business_id"],
        finished_at=row["finished_at"],
        remark=row["remark"],
        approver=row["approver"],
        seq=row["progress_seq"],
        url=links.url,
        pc_url=links.pc_url,
        mobile_url=links.mobile_url,
        state_changed_at=row["finished_at"],
        comments=comments,
        last_comment=last_comment(comments),
    )
