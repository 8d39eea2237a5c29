"""``PostgresDirectoryStore``: the DingTalk directory's tables, written from DingTalk reads.

Every write carries the time its data was read from DingTalk (``read_at``): a row read
later is never overwritten by one read earlier, so a full sync's page and a
contact-change event's read may land in any order. A user who leaves keeps only their
userid, name and hashes of their matching values (see :mod:`syncd.people`).

Contact-change events are stored through :meth:`PostgresDirectoryStore.apply_directory_changes`:
the directory's changes, the notes on approvals of people who left and the events'
processed marks in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import TypeVar

from psycopg.types.json import Jsonb

from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, Conn, approval_ref, history_line
from syncd.people import DirectoryChanges, DirectoryDepartment, DirectoryUser, PersonLeft

_Id = TypeVar("_Id", str, int)


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
        async with self.transaction() as conn:
            return await self.departments_removed_in(conn, dept_ids, read_at)

    async def departments_removed_in(
        self, conn: Conn, dept_ids: Sequence[int], read_at: datetime
    ) -> list[int]:
        """:meth:`departments_removed` inside the caller's transaction."""
        if not dept_ids:
            return []
        params = {"dept_ids": list(dept_ids), "read_at": read_at}
        cursor = await conn.execute(QUERIES["directory_departments_removed"], params)
        return [int(row["dept_id"]) for row in await cursor.fetchall()]

    # --- contact-change events (implements syncd.ports.directory.DirectoryEventStore) ---

    async def apply_directory_changes(
        self, changes: DirectoryChanges, inbox_ids: Sequence[int], now: datetime
    ) -> list[PersonLeft]:
        """Store what contact events told, note the approvals of people who left, mark the
        events processed: one transaction. Departures and removals go first, so that a
        read as recent as a leave (a rejoin) wins."""
        async with self.transaction() as conn:
            for at, dept_ids in _by_time(changes.removed):
                await self.departments_removed_in(conn, dept_ids, at)
            await self.save_departments_in(conn, changes.departments, changes.read_at)
            for at, user_ids in _by_time(changes.gone):
                await self.users_left_in(conn, user_ids, at)
            await self.save_users_in(conn, changes.users, changes.read_at)
            left = await self._people_left(conn, sorted({u for u, _ in changes.gone}), now)
            await self._inbox_processed(conn, inbox_ids, now, None)
            return left

    async def _people_left(
        self, conn: Conn, user_ids: Sequence[str], now: datetime
    ) -> list[PersonLeft]:
        """Note each unfinished approval of a departed originator or running approver."""
        if not user_ids:
            return []
        cursor = await conn.execute(QUERIES["select_approvals_people_left"], {"user_ids": user_ids})
        rows = await cursor.fetchall()
        lines = [history_line(r["id"], event_type="note", message=r["message"]) for r in rows]
        await self.log(conn, now, lines)
        return [PersonLeft(approval_ref(r), r["user_id"], r["role"], r["message"]) for r in rows]

    async def defer_directory_events(
        self, inbox_ids: Sequence[int], next_attempt_at: datetime, error: str
    ) -> None:
        async with self.transaction() as conn:
            for inbox_id in inbox_ids:
                params = {"id": inbox_id, "next_attempt_at": next_attempt_at, "error": error}
                await conn.execute(QUERIES["defer_inbox_event"], params)

    async def skip_directory_events(
        self, inbox_ids: Sequence[int], now: datetime, note: str
    ) -> None:
        async with self.transaction() as conn:
            await self._inbox_processed(conn, inbox_ids, now, note)

    @staticmethod
    async def _inbox_processed(
        conn: Conn, inbox_ids: Sequence[int], now: datetime, note: str | None
    ) -> None:
        if inbox_ids:
            params = {"ids": list(inbox_ids), "now": now, "note": note}
            await conn.execute(QUERIES["mark_inbox_processed"], params)


def _by_time(pairs: Sequence[tuple[_Id, datetime]]) -> list[tuple[datetime, list[_Id]]]:
    """Ids grouped by the time they are known at, oldest first, each group sorted."""
    groups: dict[datetime, list[_Id]] = {}
    for key, at in pairs:
        groups.setdefault(at, []).append(key)
    return [(at, sorted(set(groups[at]))) for at in sorted(groups)]
