"""``PostgresBackfillCursor``: where ``syncd backfill`` is, per kind
(``syncd.inbound_backfill``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from syncd.db.inbound_store import queue_ids
from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore
from syncd.errors import SyncdError


class PostgresBackfillCursor(BaseStore):
    """Implements ``syncd.ports.inbound.BackfillCursor``."""

    async def take(
        self, kind: str, process_code: str, since: datetime, until: datetime, now: datetime,
        owner: str, lease_until: datetime,
    ) -> tuple[datetime, int, int, int, datetime] | None:  # fmt: skip
        params = {"kind": kind, "process_code": process_code, "since": since, "until": until}
        params |= {"now": now, "owner": owner, "lease_until": lease_until}
        row = await self.fetch_one("take_backfill", params)
        if row is None:
            return None
        return row["window_start"], row["next_token"], row["listed"], row["queued"], row["until"]

    async def advance(
        self, kind: str, process_code: str, owner: str, ids: Sequence[str],
        cursor: tuple[datetime, int], *, done: bool, now: datetime, lease_until: datetime,
    ) -> int:  # fmt: skip
        async with self.transaction() as conn:
            queued = await queue_ids(conn, kind, process_code, ids, "backfill", now)
            params = {"kind": kind, "owner": owner, "window_start": cursor[0]}
            params |= {"next_token": cursor[1], "listed": len(ids), "queued": queued}
            params |= {"done": done, "now": now, "lease_until": lease_until}
            moved = await (await conn.execute(QUERIES["advance_backfill"], params)).fetchone()
            if moved is None:
                raise SyncdError(f"the backfill of kind {kind} was taken over by another run")
        return queued

    async def release(self, kind: str, owner: str, now: datetime) -> None:
        async with self.connection() as conn:
            params = {"kind": kind, "owner": owner, "now": now}
            await conn.execute(QUERIES["release_backfill"], params)
