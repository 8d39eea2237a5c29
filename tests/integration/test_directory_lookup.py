"""Look-ups at submit over drawn directories, on PostgreSQL as the daemon role.

Drawn people share job numbers, mobiles and emails from small pools (so two people with
one mobile happen), lack some of them (no mobile, no email, no job number), and some
have left; a drawn identifier is written every which way (spaces, dashes, ``+86``,
``0086``, parentheses, upper-case emails, a lower-case job number). Each look-up ends
exactly as the directory says: the one present holder is found, several are
``person_ambiguous`` (naming them), only departed holders are ``person_departed``,
nobody is ``person_unknown``; a mobile never shows whole in a message. Departments
named by name or path from the top resolve to the departments of that path only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from syncd.db.directory_lookup import PostgresDirectoryLookup
from syncd.people import DirectoryDepartment, DirectoryUser, normal
from syncd.pipeline.lookup import DirectoryNotReady, LookupProblem, People
from syncd.pipeline.sources import resolve
from syncd.settings_kinds import KindSettings
from syncd.testing import FakeClock
from tests.roles import APPLICATION

READER = "syncd_reader"

T0 = datetime(2026, 3, 1, tzinfo=UTC)
JOBS = ("E1", "E2", "E3")
MOBILES = ("13800000001", "13800000002", "13900000003")
EMAILS = ("ann@example.com", "bob@example.com", "cy@corp.example")
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@dataclass(frozen=True)
class Person:
    user: DirectoryUser
    departed: bool


@st.composite
def people(draw: st.DrawFn) -> list[Person]:
    found = []
    for number in range(draw(st.integers(0, 6))):
        mobile = draw(st.sampled_from((None, *MOBILES)))
        user = DirectoryUser(
            user_id=f"u{number}",
            name=f"用户{number}",
            job_number=draw(st.sampled_from((None, *JOBS))),
            mobile=normal("mobile", mobile) if mobile else None,
            email=draw(st.sampled_from((None, *EMAILS))),
            org_email=draw(st.sampled_from((None, *EMAILS))),
            dept_ids=(1,),
        )
        found.append(Person(user, draw(st.integers(0, 3)) == 0))
    return found


def _written(draw: st.DrawFn, by: str, value: str) -> str:
    """``value`` as a legacy row might write it."""
    pad = draw(st.sampled_from(["", " ", "  "]))
    if by == "job_number":
        return pad + draw(st.sampled_from([value, value.lower()])) + pad
    if by == "email":
        return pad + draw(st.sampled_from([value, value.upper(), value.title()])) + pad
    a, b, c = value[:3], value[3:7], value[7:]
    forms = [value, f"+86 {a}-{b}-{c}", f"0086 {a} {b} {c}", f"({a}) {b}-{c}", f"+86{value}"]
    return pad + draw(st.sampled_from(forms)) + pad


@st.composite
def identifiers(draw: st.DrawFn) -> tuple[str, str]:
    by = draw(st.sampled_from(["job_number", "mobile", "email"]))
    pool = {"job_number": JOBS, "mobile": MOBILES, "email": EMAILS}[by]
    return by, _written(draw, by, draw(st.sampled_from(pool)))


def expected(directory: list[Person], by: str, written: str) -> tuple[str, list[str]]:
    """The outcome the directory calls for, and who (userIds)."""
    value = normal(by, written)  # type: ignore[arg-type]
    holders = [p for p in directory if value in p.user.keys().get(by, [])]  # type: ignore[call-overload]
    present = [p.user.user_id for p in holders if not p.departed]
    if len(present) == 1:
        return "found", present
    if present:
        return "person_ambiguous", present
    if holders:
        return "person_departed", [p.user.user_id for p in holders]
    return "person_unknown", []


def sql(dsn: str, query: str, *params: Any) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(query, params or None)


def clear(owner_dsn: str, *, synced: bool = True) -> None:
    sql(
        owner_dsn,
        "TRUNCATE syncd.dingtalk_membership, syncd.dingtalk_user, syncd.dingtalk_department, "
        "syncd.directory_mobile_ask, syncd.directory_sync",
    )
    if synced:
        finish_sync(owner_dsn, T0)


def finish_sync(owner_dsn: str, at: datetime) -> None:
    """A full sync that finished at ``at`` (the dirsync part writes these)."""
    sql(
        owner_dsn,
        "INSERT INTO syncd.directory_sync (trigger, started_at, finished_at, state) "
        "VALUES ('first', %s, %s, 'done')",
        at - timedelta(minutes=1),
        at,
    )


@asynccontextmanager
async def lookup_store(dsn: str) -> AsyncIterator[PostgresDirectoryLookup]:
    async with AsyncConnectionPool(
        dsn, kwargs={"autocommit": True, "row_factory": dict_row}, min_size=1, open=False
    ) as pool:
        yield PostgresDirectoryLookup(pool)


async def fill(store: PostgresDirectoryLookup, directory: list[Person]) -> None:
    await store.save_users([p.user for p in directory], T0)
    gone = [p.user.user_id for p in directory if p.departed]
    await store.users_left(gone, T0 + timedelta(seconds=1))


def originator_kind(by: str) -> KindSettings:
    return KindSettings(process_code="P", originator={"field": "who", "by": by})


async def translate(store: PostgresDirectoryLookup, kind: KindSettings, payload: Any) -> Any:
    resolved = resolve(kind, payload, {})
    people = People(store, None, FakeClock(T0))
    try:
        translated, note = await people.translate(resolved, [])
    except LookupProblem as exc:
        return exc
    return translated, note


def test_each_lookup_ends_as_the_directory_says(daemon_dsn: str, owner_dsn: str) -> None:
    @SETTINGS
    @given(directory=people(), asked=identifiers())
    def check(directory: list[Person], asked: tuple[str, str]) -> None:
        by, written = asked
        clear(owner_dsn)
        outcome, who = expected(directory, by, written)

        async def run() -> Any:
            async with lookup_store(daemon_dsn) as store:
                await fill(store, directory)
                return await translate(store, originator_kind(by), {"who": written})

        got = asyncio.run(run())
        if outcome == "found":
            translated, note = got
            assert translated.originator == who[0]
            assert note.startswith(f"originator {by} ") and f"→ {who[0]} (" in note
            return
        assert isinstance(got, LookupProblem)
        assert got.code == outcome
        assert got.message.startswith("originator: ") and "payload path 'who'" in got.message
        for user_id in who:
            assert f"{user_id} (用户" in got.message
        if by == "mobile":
            digits = normal("mobile", written)[3:]
            assert digits not in got.message
            assert f"{digits[:3]}****{digits[-4:]}" in got.message

    check()


def test_nothing_is_looked_up_before_the_first_full_sync(daemon_dsn: str, owner_dsn: str) -> None:
    clear(owner_dsn, synced=False)
    sql(
        owner_dsn,
        "INSERT INTO syncd.directory_sync (trigger, started_at, state) "
        "VALUES ('first', %s, 'running')",
        T0,
    )

    async def run() -> None:
        async with lookup_store(daemon_dsn) as store:
            await store.save_users([DirectoryUser("u1", "张三", job_number="E1")], T0)
            resolved = resolve(originator_kind("job_number"), {"who": "E1"}, {})
            with pytest.raises(DirectoryNotReady, match="first full sync"):
                await People(store, None, FakeClock(T0)).translate(resolved, [])

    asyncio.run(run())


NAMES = ("研发部", "后端组", "前端组")


@st.composite
def trees(draw: st.DrawFn) -> list[DirectoryDepartment]:
    departments = [DirectoryDepartment(1, "示例公司")]
    for number in range(2, draw(st.integers(3, 9))):
        parent = draw(st.sampled_from([d.dept_id for d in departments]))
        departments.append(DirectoryDepartment(number, draw(st.sampled_from(NAMES)), parent))
    return departments


def path_of(departments: list[DirectoryDepartment], dept_id: int) -> tuple[str, ...]:
    by_id = {d.dept_id: d for d in departments}
    names: list[str] = []
    current: DirectoryDepartment | None = by_id[dept_id]
    while current is not None:
        names.insert(0, current.name)
        current = by_id.get(current.parent_id) if current.parent_id else None
    return tuple(names)


def test_departments_by_name_or_path_from_the_top(daemon_dsn: str, owner_dsn: str) -> None:
    @SETTINGS
    @given(tree=trees(), data=st.data())
    def check(tree: list[DirectoryDepartment], data: st.DataObject) -> None:
        clear(owner_dsn)
        target = data.draw(st.sampled_from(tree[1:]))
        full = path_of(tree, target.dept_id)
        asked = data.draw(st.sampled_from(["/".join(full[1:]), "/".join(full), full[-1]]))
        parts = tuple(asked.split("/"))
        if len(parts) == 1:
            wanted = [d.dept_id for d in tree if d.name == parts[0]]
        else:
            wanted = [
                d.dept_id
                for d in tree
                if parts in (path_of(tree, d.dept_id), path_of(tree, d.dept_id)[1:])
            ]
        kind = KindSettings(
            process_code="P", originator={"value": "u1"}, dept_id={"field": "d", "by": "name"}
        )

        async def run() -> Any:
            async with lookup_store(daemon_dsn) as store:
                await store.save_departments(tree, T0)
                return await translate(store, kind, {"d": asked})

        got = asyncio.run(run())
        if len(wanted) == 1:
            assert got[0].dept_id == wanted[0]
        else:
            assert isinstance(got, LookupProblem)
            assert got.code == ("department_ambiguous" if wanted else "department_unknown")
            for dept_id in wanted:
                assert f"({dept_id})" in got.message

    check()


DIRECTORY_TABLES = (
    "dingtalk_user",
    "dingtalk_department",
    "dingtalk_membership",
    "directory_mobile_ask",
    "directory_sync",
)


def test_only_the_daemon_reads_the_directory(
    database: str, daemon_dsn: str, owner_dsn: str, logins: Any, application: Any
) -> None:
    clear(owner_dsn)
    reader = logins.new(database, "reader", acts_as=READER)
    grant = "GRANT {} TO {}"
    sql(database, grant.format(APPLICATION, application.role))  # an application's login
    with psycopg.connect(daemon_dsn, autocommit=True) as conn:
        for table in DIRECTORY_TABLES:
            conn.execute(f"SELECT 1 FROM syncd.{table}").fetchall()
    for dsn in (reader, application.dsn):
        with psycopg.connect(dsn, autocommit=True) as conn:
            for table in DIRECTORY_TABLES:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(f"SELECT 1 FROM syncd.{table}")
