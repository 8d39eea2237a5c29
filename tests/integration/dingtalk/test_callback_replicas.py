"""The callback endpoint's shared replay guard and its cheap refusals.

Replicas are separate endpoints with pools of their own on one database, connected as
the least-privilege role of ``deploy/sql/least_privilege.sql``; a restart is a new
endpoint on a new pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from syncd.db.inbox import PostgresInbox
from syncd.dingtalk.callback import DEFAULT_MAX_BODY, CallbackEndpoint, create_callback_app
from syncd.testing import FakeClock

from .pushes import (
    MAX_AGE,
    NOW,
    PATH,
    Push,
    Rejections,
    chunks,
    counter,
    endpoint,
    genuine,
)

DEPLOY_SQL = Path(__file__).parents[3] / "deploy" / "sql"


@pytest.fixture
def role_dsn(database: str) -> str:
    """``database`` as ``syncd_daemon``, with only the grants of least_privilege.sql."""
    with psycopg.connect(database, autocommit=True) as conn:
        for script in ("roles.sql", "least_privilege.sql"):
            conn.execute((DEPLOY_SQL / script).read_text(encoding="utf-8"))
    return psycopg.conninfo.make_conninfo(database, user="syncd_daemon")


class Replica:
    """One endpoint on its own pool, answering over an in-process transport."""

    def __init__(self, pool: AsyncConnectionPool[Any], clock: FakeClock) -> None:
        self.pool = pool
        self.rejections = Rejections()
        self.endpoint: CallbackEndpoint = endpoint(PostgresInbox(pool), clock, self.rejections)
        transport = httpx.ASGITransport(app=create_callback_app(self.endpoint))
        self.http = httpx.AsyncClient(transport=transport, base_url="http://syncd")

    async def post(self, push: Push, content: Any = None) -> int:
        response = await self.http.post(
            PATH, params=push.query, content=push.body if content is None else content
        )
        return response.status_code


StartReplica = Callable[[], Awaitable[Replica]]


@pytest.fixture
async def start(role_dsn: str) -> AsyncIterator[tuple[StartReplica, FakeClock]]:
    clock = FakeClock(NOW)
    async with AsyncExitStack() as stack:

        async def replica() -> Replica:
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                role_dsn,
                min_size=1,
                max_size=4,
                open=False,
                kwargs={"row_factory": dict_row, "autocommit": True},
            )
            await pool.open(wait=True)
            started = Replica(pool, clock)
            stack.push_async_callback(pool.close)
            stack.push_async_callback(started.http.aclose)
            return started

        yield replica, clock


async def test_a_replay_is_refused_by_another_replica_and_after_a_restart(start) -> None:
    replica, _ = start
    a, b = await replica(), await replica()
    counts = counter(b.pool)
    push = genuine()
    upper = push.with_signature(push.query["msg_signature"].upper())
    assert await a.post(push) == 200
    assert [await b.post(push), await b.post(upper)] == [403, 403]
    assert await a.post(upper) == 403
    await a.pool.close()  # a restarts: nothing in memory survives
    restarted = await replica()
    assert [await restarted.post(push), await restarted.post(upper)] == [403, 403]
    assert await counts() == (1, 1)
    assert b.rejections.reasons == restarted.rejections.reasons == ["replayed", "replayed"]
    fresh = genuine()
    assert await restarted.post(fresh) == 200
    assert await counts() == (2, 2)


async def test_the_same_push_sent_to_two_replicas_at_once_is_accepted_once(start) -> None:
    replica, _ = start
    a, b = await replica(), await replica()
    pushes = [genuine() for _ in range(20)]
    for push in pushes:
        upper = push.with_signature(push.query["msg_signature"].upper())
        statuses = await asyncio.gather(a.post(push), b.post(upper))
        assert sorted(statuses) == [200, 403], statuses
    assert await counter(a.pool)() == (20, 20)


async def test_expired_claims_are_forgotten_and_their_pushes_stay_refused(start) -> None:
    replica, clock = start
    a = await replica()
    counts = counter(a.pool)
    old, newer = genuine(offset=-100), genuine(offset=+100)
    assert [await a.post(old), await a.post(newer)] == [200, 200]
    clock.advance(MAX_AGE - 100 + 1)  # old's timestamp is now stale, newer's is not
    assert await a.endpoint.forget_expired() == 1
    assert await counts() == (2, 1)
    assert [await a.post(old), await a.post(newer)] == [403, 403]
    assert a.rejections.reasons == ["stale_timestamp", "replayed"]
    clock.advance(MAX_AGE)
    assert await a.endpoint.forget_expired() == 1
    assert await counts() == (2, 0)


class Pulled:
    """A request body produced on demand, counting what the endpoint pulled."""

    def __init__(self, size: int) -> None:
        self.size, self.pulled = size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in chunks(self.size, chunk=16 * 1024):
            self.pulled += len(chunk)
            yield chunk


def _refusals_before_the_body() -> dict[str, Callable[[Push], tuple[Push, dict[str, str]]]]:
    big = {"content-length": str(DEFAULT_MAX_BODY + 1)}
    return {
        "missing_query": lambda p: (Push({"nonce": "n"}, p.body), {}),
        "bad_query": lambda p: (p.with_signature("z" * 40), {}),
        "stale_timestamp": lambda p: (genuine(offset=-MAX_AGE - 5), {}),
        "body_too_large": lambda p: (p, big),
    }


@pytest.mark.parametrize("reason", list(_refusals_before_the_body()))
async def test_checks_before_the_body_read_none_of_it(start, reason: str) -> None:
    replica, _ = start
    a = await replica()
    push, headers = _refusals_before_the_body()[reason](genuine())
    body = Pulled(50 * 1024 * 1024)
    response = await a.http.post(PATH, params=push.query, content=body, headers=headers)
    assert response.status_code in (400, 403, 413)
    assert response.headers["connection"] == "close"
    assert a.rejections.reasons == [reason] and body.pulled == 0


async def test_a_replay_is_refused_before_its_body_is_read(start) -> None:
    replica, _ = start
    a = await replica()
    push = genuine()
    assert await a.post(push) == 200
    body = Pulled(50 * 1024 * 1024)
    assert await a.post(push.with_signature(push.query["msg_signature"].upper()), body) == 403
    assert a.rejections.reasons == ["replayed"] and body.pulled == 0


async def test_a_streamed_body_is_dropped_as_soon_as_it_passes_the_cap(start) -> None:
    replica, _ = start
    a = await replica()
    body = Pulled(50 * 1024 * 1024)
    assert await a.post(genuine(), body) == 413
    assert a.rejections.reasons == ["body_too_large"]
    assert DEFAULT_MAX_BODY < body.pulled <= DEFAULT_MAX_BODY + 16 * 1024
    assert await counter(a.pool)() == (0, 0)
