"""``PostgresDirectoryLookup``: the directory's tables as submit reads them (implements
``syncd.ports.lookup.PeopleDirectory``).

Values are compared in their normal form (:func:`syncd.people.normal`), the form the
directory stores; a departed user is found by :func:`syncd.people.match_hash` of the
value in the hashes kept for them. A by-mobile question is remembered by the hash of the
mobile, never the number.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from syncd.db.directory_store import PostgresDirectoryStore
from syncd.db.queries import QUERIES
from syncd.people import By, DirectoryUser, match_hash
from syncd.ports.lookup import Holder, MobileAnswer, NamedDepartment


class PostgresDirectoryLookup(PostgresDirectoryStore):
    async def last_full_sync(self) -> datetime | None:
        row = await self.fetch_one("directory_last_full_sync", {})
        return row["finished_at"] if row else None

    async def holders(self, by: By, values: Sequence[str]) -> dict[str, list[Holder]]:
        unique = list(dict.fromkeys(values))
        if not unique:
            return {}
        params = {
            "by": by,
            "values": unique,
            "hashes": [match_hash(by, value) for value in unique],
        }
        found: dict[str, list[Holder]] = {}
        for row in await self.fetch_all("lookup_directory_users", params):
            holder = Holder(row["user_id"], row["name"], departed=row["departed"])
            found.setdefault(row["value"], []).append(holder)
        return found

    async def departments_named(self, name: str) -> list[NamedDepartment]:
        rows = await self.fetch_all("lookup_directory_departments", {"name": name})
        return [
            NamedDepartment(int(r["dept_id"]), tuple(r["path"]), complete=r["complete"])
            for r in rows
        ]

    async def membership(self, user_id: str, dept_id: int) -> bool | None:
        row = await self.fetch_one("directory_membership", {"user_id": user_id, "dept_id": dept_id})
        if row is None or not (row["user_known"] and row["dept_known"]):
            return None
        return bool(row["member"])

    async def mobile_answer(self, mobile: str) -> MobileAnswer | None:
        row = await self.fetch_one("select_mobile_ask", {"hash": match_hash("mobile", mobile)})
        return MobileAnswer(row["asked_at"], row["user_id"]) if row else None

    async def save_mobile_answer(
        self, mobile: str, user: DirectoryUser | None, asked_at: datetime
    ) -> None:
        params = {
            "hash": match_hash("mobile", mobile),
            "asked_at": asked_at,
            "user_id": user.user_id if user else None,
        }
        async with self.transaction() as conn:
            if user is not None:
                await self.save_users_in(conn, [user], asked_at)
            await conn.execute(QUERIES["save_mobile_ask"], params)
