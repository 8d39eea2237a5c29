"""The directory's tables, written as the daemon role: newer reads win, leavers are erased.

Drawn sequences of reads (a user read present, at a drawn time, with drawn values; a user
found gone) applied in a drawn order leave each user as the latest read said, whatever
order they landed in; a user who left keeps no job number, mobile or email, only the
hashes :func:`syncd.people.DirectoryUser.hashes` gives.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from syncd.db.directory_store import PostgresDirectoryStore
from syncd.people import DirectoryUser

T0 = datetime(2026, 3, 1, tzinfo=UTC)
IDS = ("u1", "u2", "u3")


@st.composite
def reads(draw: st.DrawFn) -> tuple[int, str, DirectoryUser | None]:
    """(seconds after T0, user id, the user as read or None for gone)."""
    at = draw(st.integers(0, 50))
    user_id = draw(st.sampled_from(IDS))
    if draw(st.integers(0, 3)) == 0:
        return at, user_id, None
    n = draw(st.integers(0, 3))
    user = DirectoryUser(
        user_id=user_id,
        name=f"name{n}",
        job_number=draw(st.sampled_from([None, f"E{n}"])),
        mobile=draw(st.sampled_from([None, f"+86138000000{n}"])),
        email=draw(st.sampled_from([None, f"p{n}@example.com"])),
        dept_ids=tuple(draw(st.lists(st.sampled_from([1, 2, 3]), max_size=2, unique=True))),
    )
    return at, user_id, user


def _clear(owner_dsn: str) -> None:
    with psycopg.connect(owner_dsn) as conn:
        conn.execute("TRUNCATE syncd.dingtalk_membership, syncd.dingtalk_user")


async def _apply(dsn: str, plan: list[tuple[int, str, DirectoryUser | None]]) -> None:
    async with AsyncConnectionPool(
        dsn, kwargs={"autocommit": True, "row_factory": dict_row}, min_size=1, open=False
    ) as pool:
        store = PostgresDirectoryStore(pool)
        for at, user_id, user in plan:
            read_at = T0 + timedelta(seconds=at)
            if user is None:
                await store.users_left([user_id], read_at)
            else:
                await store.save_users([user], read_at)


def _rows(dsn: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        users = conn.execute("SELECT * FROM syncd.dingtalk_user").fetchall()
        members = conn.execute("SELECT * FROM syncd.dingtalk_membership").fetchall()
    found = {u["user_id"]: u | {"depts": set()} for u in users}
    for m in members:
        found[m["user_id"]]["depts"].add(m["dept_id"])
    return found


def test_the_latest_read_wins_in_any_order(daemon_dsn: str, owner_dsn: str) -> None:
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(plan=st.lists(reads(), max_size=12))
    def check(plan: list[tuple[int, str, DirectoryUser | None]]) -> None:
        _clear(owner_dsn)
        asyncio.run(_apply(daemon_dsn, plan))
        rows = _rows(daemon_dsn)
        for user_id in IDS:
            mine = [(at, user) for at, uid, user in plan if uid == user_id]
            if not mine:
                assert user_id not in rows
                continue
            # the latest read (on a tie: a read present beats gone, which leaves a present
            # user alone only if it is older; else the first of equal reads landed... so
            # compare with what any read at the latest time could have left)
            latest = max(at for at, _ in mine)
            candidates = [user for at, user in mine if at == latest]
            row = rows.get(user_id)
            if all(c is None for c in candidates):
                if row is None:  # never present: a leave of an unknown user writes nothing
                    assert all(user is None for _, user in mine)
                    continue
                assert row["left_at"] is not None
                assert row["job_number"] is row["mobile"] is row["email"] is None
                assert row["depts"] == set()
                continue
            assert row is not None
            if row["left_at"] is None:
                present = [c for c in candidates if c is not None]
                assert any(
                    (row["name"], row["job_number"], row["mobile"], row["email"], row["depts"])
                    == (c.name, c.job_number, c.mobile, c.email, set(c.dept_ids))
                    for c in present
                )

    check()


def test_a_leaver_keeps_only_hashes(daemon_dsn: str, owner_dsn: str) -> None:
    user = DirectoryUser(
        user_id="u9",
        name="张三",
        job_number="E9",
        mobile="+8613800000009",
        email="z@example.com",
        org_email="z@corp.example",
        dept_ids=(1,),
    )
    _clear(owner_dsn)
    asyncio.run(_apply(daemon_dsn, [(1, "u9", user), (2, "u9", None)]))
    row = _rows(daemon_dsn)["u9"]
    assert row["left_hashes"] == user.hashes()
    assert (row["job_number"], row["mobile"], row["email"], row["org_email"]) == (None,) * 4
