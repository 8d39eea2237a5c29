"""``PostgresRelayStore``: a business database's outbox rows into ``syncd.outbox``, once.

One pass is one PostgreSQL transaction holding the database's turn (a transaction
advisory lock per database name: one replica at a time, so rows go in in id order). The
rows read are inserted in one statement, ``ON CONFLICT (source_database, source_id) DO
NOTHING``: a row read again — its database's mark was lost after syncd's commit, or
another replica's pass read it before the mark — inserts nothing. Ingest then takes the
rows as it takes any (parking, supersede, cancel, quarantine).

When PostgreSQL refuses the batch because of a row's data (``\\u0000`` in a text, a
payload that is not JSON: see :func:`syncd.db.ingest_store.row_data_error`), the pass is
done again row by row under savepoints, and a row still refused is stored as a stand-in
(its texts cleaned, its payload its JSON text as a string), consumed and quarantined with
the error, as ingest quarantines a row: the rows behind it go on.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from syncd.db.connect import redact
from syncd.db.ingest_store import row_data_error
from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, Conn
from syncd.db.text import pg_text
from syncd.errors import StoreError
from syncd.ports.relay import Relayed, SourceRow

_ERROR_MAX = 2000
Read = Callable[[], Awaitable[Sequence[SourceRow]]]


def _record(row: SourceRow) -> dict[str, Any]:
    return {
        "source_id": row.id,
        "created_at": row.created_at.isoformat(),
        "kind": row.kind,
        "business_key": row.business_key,
        "action": row.action,
        "payload": row.payload,
        "originator": row.originator,
        "request_id": row.request_id,
    }


def refused_message(database: str, row: SourceRow, exc: psycopg.Error) -> str:
    error = exc.diag.message_primary or str(exc).strip()
    if exc.diag.message_detail:
        error = f"{error} ({exc.diag.message_detail})"
    return redact(
        f"row {row.id} of [databases.{database}] syncd_outbox: PostgreSQL refused to store "
        f"it: {error}; its payload is kept here as a JSON string. Correct the row's data and "
        "insert it again as a new row of syncd_outbox"
    )[:_ERROR_MAX]


class PostgresRelayStore(BaseStore):
    """syncd's outbox as the relay writes it (implements ``syncd.ports.relay.RelayStore``)."""

    async def relay(self, database: str, read: Read, now: datetime) -> Relayed:
        try:
            return await self._pass(database, read, now, one_by_one=False)
        except StoreError as exc:
            if not row_data_error(exc.__cause__):
                raise
        return await self._pass(database, read, now, one_by_one=True)

    async def _pass(self, database: str, read: Read, now: datetime, *, one_by_one: bool) -> Relayed:
        async with self.transaction() as conn:
            params: dict[str, Any] = {"database": database}
            row = await (await conn.execute(QUERIES["try_lock_relay"], params)).fetchone()
            if not (row and row["locked"]):
                return Relayed(turn=False)
            rows = list(await read())
            if not rows:
                return Relayed()
            quarantined: list[tuple[int, str, str]] = []
            if one_by_one:
                inserted = 0
                for item in rows:
                    try:
                        async with conn.transaction():
                            inserted += await self._insert(conn, database, [item])
                    except psycopg.Error as exc:
                        if not row_data_error(exc):
                            raise
                        if await self._stand_in(conn, database, item, now, exc):
                            quarantined.append((item.id, exc.sqlstate or "", str(exc)))
            else:
                inserted = await self._insert(conn, database, rows)
            ids = tuple(item.id for item in rows)
            position = {"database": database, "last_id": max(ids), "relayed": inserted}
            await conn.execute(QUERIES["record_relay_position"], {**position, "now": now})
            return Relayed(ids, inserted, tuple(quarantined))

    async def _insert(self, conn: Conn, database: str, rows: Sequence[SourceRow]) -> int:
        params = {"database": database, "rows": Jsonb([_record(r) for r in rows])}
        cursor = await conn.execute(QUERIES["relay_outbox_rows"], params)
        return len(await cursor.fetchall())

    async def _stand_in(
        self, conn: Conn, database: str, row: SourceRow, now: datetime, exc: psycopg.Error
    ) -> bool:
        """The refused row, consumed and quarantined; False when it was there already."""
        params = {
            "database": database,
            "source_id": row.id,
            "created_at": row.created_at,
            "kind": pg_text(row.kind),
            "business_key": pg_text(row.business_key),
            "action": pg_text(row.action),
            "payload": pg_text(row.payload if row.payload is not None else json.dumps(None)),
            "originator": pg_text(row.originator),
            "now": now,
            "error_code": exc.sqlstate or "",
            "error_message": refused_message(database, row, exc),
        }
        cursor = await conn.execute(QUERIES["relay_refused_row"], params)
        return bool(await cursor.fetchall())
