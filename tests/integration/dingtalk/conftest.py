"""Fixtures for the DingTalk side: a pool on a fresh database and the inbox on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from syncd.db.inbox import PostgresInbox


@pytest.fixture
async def pool(database: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database, min_size=1, max_size=4, open=False, kwargs={"row_factory": dict_row}
    )
    await pool.open(wait=True)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def inbox(pool: AsyncConnectionPool[Any]) -> PostgresInbox:
    return PostgresInbox(pool)


InboxRows = Callable[[], Awaitable[list[dict[str, Any]]]]


@pytest.fixture
def inbox_rows(pool: AsyncConnectionPool[Any]) -> InboxRows:
    """Reads every inbox row, oldest first."""

    async def read() -> list[dict[str, Any]]:
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT dedup_key, channel, event_type, instance_id, payload"
                " FROM syncd.inbox ORDER BY id"
            )
            return list(await cursor.fetchall())

    return read
