"""``PostgresDirectoryStore``: the DingTalk directory's tables, written from DingTalk reads.

Every write carries the time its data was read from DingTalk (``read_at``): a row read
later is never overwritten by one read earlier, so a full sync's page and a
contact-change event's read may land in any order. A user who leaves keeps only their
userid, name and hashes of their matching values (see :mod:`syncd.people`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

from psycopg.types.json import Jsonb

from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, Conn
from syncd.people import DirectoryDepartment, DirectoryUser


class PostgresDirectoryStore(BaseStore):
    async def save_users(
        self, users: Sequence[DirectoryUser], read_at: datetime, *, sync_id: int | None = None
    ) -> list[str]:
        """Upsert users and their memberships; returns the users written (a row read after
        ``read_at`` stays as it is)."""
        async with self.transaction() as conn:
            return await self.save_users_in(conn, users, read_at, sync_id=sync_id)

    async def save_users_in(
        self,
        conn: Conn,
        users: Sequence[DirectoryUser],
        read_at: datetime,
        *,
        sync_id: int | None = None,
    ) -> list[str]:
        """:meth:`save_users` inside the caller's transaction."""
        if not users:
            return []
        unique = {u.user_id: u for u in users}  # the last read of a user in a batch wins
        rows = [{k: v for k, v in asdict(u).items() if k != "dept_ids"} for u in unique.values()]
        params = {"users": Jsonb(rows), "read_at": read_at, "sync_id": sync_id}
        cursor = await conn.execute(QUERIES["save_directory_users"], params)
        written = [row["user_id"] for row in await cursor.fetchall()]
        memberships = [
            {"user_id": u.user_id, "dept_id": d} for u in unique.values() for d in u.dept_ids
        ]
        await conn.execute(
            QUERIES["replace_directory_memberships"],
            {"user_ids": written, "memberships": Jsonb(memberships)},
        )
        return written

    async def save_departments(
        self,
        departments: Sequence[DirectoryDepartment],
        read_at: datetime,
        *,
        sync_id: int | None = None,
    ) -> list[int]:
        """Upsert departments; returns those written."""
        async with self.transaction() as conn:
            return await self.save_departments_in(conn, departments, read_at, sync_id=sync_id)

    async def save_departments_in(
        self,
        conn: Conn,
        departments: Sequence[DirectoryDepartment],
        read_at: datetime,
        *,
        sync_id: int | None = None,
    ) -> list[int]:
        """:meth:`save_departments` inside the caller's transaction."""
        if not departments:
            return []
        rows = [asdict(d) for d in {d.dept_id: d for d in departments}.values()]
        params = {"departments": Jsonb(rows), "read_at": read_at, "sync_id": sync_id}
        cursor = await conn.execute(QUERIES["save_directory_departments"], params)
        return [int(row["dept_id"]) for row in await cursor.fetchall()]

    async def users_left(self, user_ids: Sequence[str], read_at: datetime) -> list[str]:
        """Users DingTalk no longer finds as of ``read_at``: their matching values erased
        (hashes kept), memberships dropped. Returns those who left now."""
        async with self.transaction() as conn:
            return await self.users_left_in(conn, user_ids, read_at)

    async def users_left_in(
        self, conn: Conn, user_ids: Sequence[str], read_at: datetime
    ) -> list[str]:
        """:meth:`users_left` inside the caller's transaction."""
        if not user_ids:
            return []
        params = {"user_ids": list(user_ids), "read_at": read_at}
        cursor = await conn.execute(QUERIES["directory_users_left"], params)
        return [row["user_id"] for row in await cursor.fetchall()]

    async def departments_removed(self, dept_ids: Sequence[int], read_at: datetime) -> list[int]:
        """Departments DingTalk no longer has as of ``read_at``; returns those removed now."""
        if not dept_ids:
            return []
        params = {"dept_ids": list(dept_ids), "read_at": read_at}
        rows = await self.fetch_all("directory_departments_removed", params)
        return [int(row["dept_id"]) for row in rows]
