"""``PostgresDirectorySyncStore``: a full sync's progress in ``syncd.directory_sync``.

Implements :class:`syncd.ports.directory.DirectorySyncStore`. Each step of a sync is one
transaction: the sync row's new position, counts and lease (a guarded UPDATE, taken
first, so it also serialises with a replica taking the sync over), what the step read
(through :class:`~syncd.db.directory_store.PostgresDirectoryStore`'s writes, where a row
read later stays as it is) and the calls in the monthly usage. A crash loses at most the
step it was in; the sync resumes from the row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from syncd.db.directory_store import PostgresDirectoryStore
from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, Conn, usage_month
from syncd.errors import ClaimLost
from syncd.ports.directory import Reading, SyncRun, SyncTrigger, Unseen

#: ``syncd.usage.purpose`` of the contact calls: shown by ``syncd status``, never counted
#: against the monthly quota (contract §15.1).
PURPOSE = "directory"


def sync_run(row: dict[str, Any]) -> SyncRun:
    fields = {k: row[k] for k in SyncRun.__dataclass_fields__ if k in row}
    return SyncRun(**fields | {"queue": tuple(int(d) for d in row["queue"])})


class PostgresDirectorySyncStore(BaseStore):
    def __init__(self, pool: AsyncConnectionPool[Any], *, actor: str = "syncd") -> None:
        super().__init__(pool, actor=actor)
        self.directory = PostgresDirectoryStore(pool, actor=actor)

    async def claim(
        self, owner: str, now: datetime, until: datetime, *, retry_due: bool = True
    ) -> SyncRun | None:
        params = {"owner": owner, "now": now, "until": until, "retry_due": retry_due}
        row = await self.fetch_one("claim_directory_sync", params)
        return None if row is None else sync_run(row)

    async def begin(
        self, trigger: SyncTrigger, owner: str, now: datetime, until: datetime
    ) -> SyncRun | None:
        params = {"trigger": trigger, "owner": owner, "now": now, "until": until}
        row = await self.fetch_one("begin_directory_sync", params)
        return None if row is None else sync_run(row)

    async def record(self, run: SyncRun, owner: str, reading: Reading, until: datetime) -> SyncRun:
        user_ids = sorted({u.user_id for u in reading.users})
        dept_ids = sorted({d.dept_id for d in reading.departments})
        params = {
            "id": run.id,
            "owner": owner,
            "queue": list(reading.queue),
            "cursor": reading.cursor,
            "until": until,
            "calls": reading.calls,
            "user_ids": user_ids,
            "dept_ids": dept_ids,
        }
        async with self.transaction() as conn:
            cursor = await conn.execute(QUERIES["advance_directory_sync"], params)
            row = await cursor.fetchone()
            if row is None:
                raise ClaimLost(f"directory sync {run.id} is no longer leased to {owner}")
            await self._save(conn, run, reading)
            await self._usage(conn, reading.read_at, reading.calls)
        return sync_run(row)

    async def _save(self, conn: Conn, run: SyncRun, reading: Reading) -> None:
        d, at = self.directory, reading.read_at
        await d.save_departments_in(conn, reading.departments, at, sync_id=run.id)
        await d.save_users_in(conn, reading.users, at, sync_id=run.id)
        await d.users_left_in(conn, reading.users_gone, at)
        if reading.departments_gone:
            params = {"dept_ids": list(reading.departments_gone), "read_at": at}
            await conn.execute(QUERIES["directory_departments_removed"], params)

    @staticmethod
    async def _usage(conn: Conn, now: datetime, calls: int) -> None:
        if calls:
            params = {"month": usage_month(now), "purpose": PURPOSE, "calls": calls}
            await conn.execute(QUERIES["add_usage"], params)

    async def unseen(self, run: SyncRun, limit: int) -> Unseen:
        params = {"id": run.id, "started_at": run.started_at, "limit": limit}
        users = await self.fetch_all("unseen_directory_users", params)
        departments = await self.fetch_all("unseen_directory_departments", params)
        return Unseen([str(r["user_id"]) for r in users], [int(r["dept_id"]) for r in departments])

    async def finish(self, run: SyncRun, owner: str, now: datetime) -> SyncRun:
        row = await self.fetch_one(
            "finish_directory_sync", {"id": run.id, "owner": owner, "now": now}
        )
        if row is None:
            raise ClaimLost(f"directory sync {run.id} is no longer leased to {owner}")
        return sync_run(row)

    async def failed(
        self, run: SyncRun, owner: str, now: datetime, error: str, retry_at: datetime, calls: int
    ) -> None:
        params = {
            "id": run.id,
            "owner": owner,
            "error": error,
            "retry_at": retry_at,
            "calls": calls,
        }
        async with self.transaction() as conn:
            await conn.execute(QUERIES["fail_directory_sync"], params)
            await self._usage(conn, now, calls)

    async def release(self, run: SyncRun, owner: str) -> None:
        async with self.connection() as conn:
            await conn.execute(QUERIES["release_directory_sync"], {"id": run.id, "owner": owner})

    async def latest(self) -> tuple[SyncRun | None, SyncRun | None]:
        rows = [sync_run(r) for r in await self.fetch_all("latest_directory_syncs", {})]
        running = next((r for r in rows if r.state == "running"), None)
        done = next((r for r in rows if r.state == "done"), None)
        return running, done

    async def forget_departed(self, before: datetime, limit: int = 5000) -> int:
        """Delete departed users (and tombstones) who left before ``before``."""
        forgotten = 0
        while True:
            async with self.connection() as conn:
                cursor = await conn.execute(
                    QUERIES["forget_departed_users"], {"before": before, "limit": limit}
                )
            forgotten += cursor.rowcount
            if cursor.rowcount < limit:
                return forgotten

    async def counts(self) -> dict[str, Any]:
        """Present and departed users, present departments, the last sync's end."""
        row = await self.fetch_one("directory_counts", {})
        assert row is not None
        return row
