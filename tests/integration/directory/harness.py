"""The full sync's test harness: drawn organisations, the simulator in process behind a
transport that records (and can cut) each contact call, a full sync on a real database as
the daemon role, and the tables read back in the world's terms.

``expected(world)`` is computed from the world file with :mod:`syncd.people`'s normal
forms, independently of the contact client's reading.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from hypothesis import strategies as st
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from syncd.db.directory_sync_store import PostgresDirectorySyncStore
from syncd.dingtalk.calls import ObservedClient
from syncd.dingtalk.client import build_http_client
from syncd.dingtalk.contacts import HttpxContactClient
from syncd.dingtalk.pacing import MemoryPacer
from syncd.people import DirectoryUser, normal, normal_mobile
from syncd.pipeline.directory_sync import DirectorySync
from syncd.pipeline.retry import RetryPolicy
from syncd.simulator import Simulator, World
from syncd.simulator.directory import union_id
from syncd.simulator.world import Department, User
from syncd.testing import FakeClock
from tests.integration.dingtalk.conftest import APP_KEY, APP_SECRET, FakeSleeper

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
LEASE = timedelta(seconds=120)
_MOBILE_FORMS = st.sampled_from(["{n}", "+86 {a}-{b}-{c}", "86{n}", "({a}) {b} {c}"])

Read = tuple[str, Any, Any]  # (call, dept_id or userid, cursor)
Hook = Callable[[int, Read], Awaitable[None]]


def person(number: int, depts: list[int], draw: st.DrawFn, active: bool = True) -> User:
    digits = f"1{number:010d}"
    mobile = draw(_MOBILE_FORMS).format(n=digits, a=digits[:3], b=digits[3:7], c=digits[7:])
    return User(
        user_id=f"u{number}",
        name=f"用户{number}",
        job_number=draw(st.sampled_from(["", f"e{number:04d}"])),
        mobile=draw(st.sampled_from(["", mobile])),
        email=draw(st.sampled_from(["", f"User{number}@Example.COM"])),
        dept_ids=depts,
        active=active,
    )


@st.composite
def organisations(draw: st.DrawFn) -> tuple[list[Department], list[User]]:
    """A tree of departments; people in one or two of them, some departed; sometimes one
    department with more than a page (100) of members."""
    departments = [Department(dept_id=1, name="总公司")]
    for number in range(2, draw(st.integers(1, 6)) + 1):
        parent = draw(st.sampled_from([d.dept_id for d in departments]))
        departments.append(Department(dept_id=number * 10, name=f"部门{number}", parent_id=parent))
    ids = [d.dept_id for d in departments]
    crowded = draw(st.sampled_from([None, *ids]))
    count = draw(st.integers(101, 160) if crowded else st.integers(0, 40))
    users = []
    for number in range(count):
        depts = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=2, unique=True))
        if crowded is not None and crowded not in depts:
            depts = [crowded, *depts[:1]]
        users.append(person(number, depts, draw, active=number % 7 != 3))
    return departments, users


def world_of(departments: list[Department], users: list[User]) -> World:
    return World.default().model_copy(update={"departments": departments, "users": users})


class Recorder(httpx.AsyncBaseTransport):
    """Forwards to the simulator; records every contact call as (call, id, cursor); runs
    ``hook`` before the n-th; cuts the connection at call ``cut_at`` (after recording it,
    as DingTalk might have answered it)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.reads: list[Read] = []
        self.cut_at: int | None = None
        self.hook: Hook | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/topapi/"):
            body = json.loads(request.content or b"{}")
            call = request.url.path.removeprefix("/topapi/")
            read = (call, body.get("dept_id", body.get("userid")), body.get("cursor"))
            self.reads.append(read)
            if self.hook is not None:
                await self.hook(len(self.reads), read)
            if len(self.reads) == self.cut_at:
                raise httpx.ConnectError("connection reset", request=request)
        return await self.inner.handle_async_request(request)


@dataclass
class Rig:
    sim: Simulator
    clock: FakeClock
    recorder: Recorder
    contacts: HttpxContactClient
    store: PostgresDirectorySyncStore
    dsn: str
    owners: list[str] = field(default_factory=list)

    def sync(
        self, owner: str = "replica-a", store: PostgresDirectorySyncStore | None = None
    ) -> DirectorySync:
        return DirectorySync(
            self.contacts,
            store or self.store,
            self.clock,
            RetryPolicy(base=2.0, cap=60.0),
            owner=owner,
            lease=LEASE,
        )

    def rows(self) -> dict[str, Any]:
        return table_rows(self.dsn)


@asynccontextmanager
async def rig(world: World, dsn: str) -> AsyncIterator[Rig]:
    clock = FakeClock(T0)
    sim = Simulator(world, clock=clock)
    recorder = Recorder(httpx.ASGITransport(app=sim.app))
    api = build_http_client(
        APP_KEY, APP_SECRET, base_url="http://sim", clock=clock, transport=recorder
    )
    oapi = ObservedClient(base_url="http://sim", auth=api.auth, transport=recorder)
    pacer = MemoryPacer(clock=clock, rate=15, sleep=FakeSleeper(clock))
    contacts = HttpxContactClient(oapi, pacer=pacer, clock=clock)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        dsn, kwargs={"autocommit": True, "row_factory": dict_row}, min_size=1, open=False
    )
    await pool.open()
    try:
        yield Rig(sim, clock, recorder, contacts, PostgresDirectorySyncStore(pool), dsn)
    finally:
        await pool.close()
        await api.aclose()
        await oapi.aclose()
        await sim.aclose()


def clear(owner_dsn: str) -> None:
    with psycopg.connect(owner_dsn) as conn:
        conn.execute(
            "TRUNCATE syncd.dingtalk_membership, syncd.dingtalk_user, syncd.dingtalk_department,"
            " syncd.directory_sync, syncd.usage"
        )


USER_COLUMNS = ("union_id", "name", "job_number", "mobile", "email", "org_email", "activated")


def table_rows(dsn: str) -> dict[str, Any]:
    """The directory's tables: users (columns, memberships, left), departments."""
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        users = conn.execute("SELECT * FROM syncd.dingtalk_user").fetchall()
        members = conn.execute("SELECT * FROM syncd.dingtalk_membership").fetchall()
        depts = conn.execute("SELECT * FROM syncd.dingtalk_department").fetchall()
    found: dict[str, Any] = {
        "present": {},
        "departed": {},
        "departments": {},
        "removed": set(),
    }
    depts_of: dict[str, set[int]] = {}
    for m in members:
        depts_of.setdefault(m["user_id"], set()).add(m["dept_id"])
    for u in users:
        if u["left_at"] is None:
            columns = tuple(u[c] for c in USER_COLUMNS)
            found["present"][u["user_id"]] = (*columns, depts_of.get(u["user_id"], set()))
        else:
            assert u["user_id"] not in depts_of  # a leaver belongs nowhere
            found["departed"][u["user_id"]] = sorted(u["left_hashes"])
    for d in depts:
        if d["removed_at"] is None:
            found["departments"][d["dept_id"]] = (d["parent_id"], d["name"])
        else:
            found["removed"].add(d["dept_id"])
    return found


def directory_user(u: User) -> DirectoryUser:
    """A world person as the directory should hold them (normal forms)."""
    return DirectoryUser(
        user_id=u.user_id,
        name=u.name,
        union_id=union_id(u),
        job_number=normal("job_number", u.job_number) if u.job_number else None,
        mobile=normal_mobile(u.mobile, u.state_code) if u.mobile else None,
        email=u.email.lower() if u.email else None,
        dept_ids=tuple(u.dept_ids),
        activated=u.activated,
    )


def expected(world: World, departed: dict[str, DirectoryUser] | None = None) -> dict[str, Any]:
    """The tables after a sync of ``world``; ``departed``: users present before who left
    (what the directory held of them)."""
    present = {}
    for u in world.users:
        if u.active:
            d = directory_user(u)
            columns = tuple(getattr(d, c) for c in USER_COLUMNS)
            present[u.user_id] = (*columns, set(u.dept_ids))
    return {
        "present": present,
        "departed": {k: sorted(v.hashes()) for k, v in (departed or {}).items()},
        "departments": {d.dept_id: (d.parent_id, d.name) for d in world.departments},
        "removed": set(),
    }


def page_reads(reads: list[Read]) -> list[Read]:
    return [r for r in reads if r[0] in ("v2/user/list", "v2/department/listsub")]
