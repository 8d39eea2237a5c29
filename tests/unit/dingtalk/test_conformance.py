"""Each implementation is assignable to its Protocol (mypy checks these lines)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import httpx
from psycopg_pool import AsyncConnectionPool

from syncd.db.inbox import PostgresInbox
from syncd.db.pacing import PostgresPacer
from syncd.dingtalk.client import HttpxApprovalClient, windows
from syncd.dingtalk.pacing import MemoryPacer, Pacer
from syncd.ports import ApprovalClient, CallbackInbox, InboxWriter
from syncd.testing import FakeClock


async def test_implementations_fit_their_protocols() -> None:
    pool: AsyncConnectionPool = AsyncConnectionPool("dbname=none", open=False)
    async with httpx.AsyncClient() as http:
        client: ApprovalClient = HttpxApprovalClient(http, clock=FakeClock())
        inbox: InboxWriter = PostgresInbox(pool)
        callback_inbox: CallbackInbox = PostgresInbox(pool)
        pacers: list[Pacer] = [
            MemoryPacer(clock=FakeClock()),
            PostgresPacer(pool, clock=FakeClock()),
        ]
        assert client and inbox and callback_inbox and len(pacers) == 2


def test_windows_cover_the_range_in_120_day_pieces_without_gaps() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    pieces = windows(start, start + timedelta(days=300))
    assert len(pieces) == 3
    assert pieces[0][0] == int(start.timestamp() * 1000)
    assert pieces[-1][1] == int((start + timedelta(days=300)).timestamp() * 1000)
    for (_, upper), (lower, _) in itertools.pairwise(pieces):
        assert lower == upper + 1
    assert all(upper - lower < 120 * 86_400_000 for lower, upper in pieces)
    assert windows(start, start - timedelta(days=1)) == []
