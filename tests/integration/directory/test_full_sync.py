"""The full sync, over drawn organisations, on PostgreSQL as the daemon role.

- A sync leaves the directory's tables equal, column by column, to the simulator's
  world (departments nested, more than a page of members, people in two departments,
  departed people, DingTalk's orders beyond 2^53), and counts each person and department
  once.
- Cut at a drawn call (DingTalk unreachable, or the database failing in the step's
  transaction), a new DirectorySync of another replica resumes it: the same tables, and
  no page read twice but the one it was cut at.
- People added and removed between two syncs are found and marked left by the next;
  departments removed are marked removed.
- A read made during a sync (as a contact-change event's) is neither overwritten nor
  marked left by the sync.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.db.directory_store import PostgresDirectoryStore
from syncd.db.directory_sync_store import PostgresDirectorySyncStore
from syncd.errors import StoreError
from syncd.people import DirectoryUser
from syncd.simulator.world import Department, User

from .harness import (
    LEASE,
    T0,
    Rig,
    clear,
    directory_user,
    expected,
    organisations,
    page_reads,
    person,
    rig,
    world_of,
)

Org = tuple[list[Department], list[User]]
EXAMPLES = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


async def _sync_once(r: Rig, owner: str = "replica-a") -> Any:
    outcome, run = await r.sync(owner).sync_now()
    assert outcome == "done", run.last_error
    return run


def test_a_sync_leaves_the_tables_equal_to_the_world(daemon_dsn: str, owner_dsn: str) -> None:
    @EXAMPLES
    @given(org=organisations())
    def check(org: Org) -> None:
        clear(owner_dsn)
        world = world_of(*org)

        async def go() -> None:
            async with rig(world, daemon_dsn) as r:
                run = await _sync_once(r)
                assert r.rows() == expected(world)
                present = [u for u in world.users if u.active]
                assert (run.users, run.departments) == (len(present), len(world.departments))
                reads = page_reads(r.recorder.reads)
                assert len(reads) == len(set(reads))  # no page read twice
                assert run.calls == len(r.recorder.reads)
                usage = await r.store.fetch_all("select_usage", {"month": T0.date().replace(day=1)})
                assert {u["purpose"]: u["calls"] for u in usage} == {"directory": run.calls}
                assert run.lease_owner is None and run.finished_at is not None

        asyncio.run(go())

    check()


class FailingStore(PostgresDirectorySyncStore):
    """The database failing at the end of the ``fail_at``-th step's transaction (the
    step's writes roll back), as a lost connection would."""

    fail_at = 0
    steps = 0

    async def _usage(self, conn: Any, now: Any, calls: int) -> None:  # type: ignore[override]
        await super()._usage(conn, now, calls)
        type(self).steps += 1
        if type(self).steps == self.fail_at:
            raise StoreError("database error: server closed the connection unexpectedly")


def test_a_sync_cut_anywhere_resumes_where_it_was(daemon_dsn: str, owner_dsn: str) -> None:
    @EXAMPLES
    @given(
        org=organisations(), where=st.sampled_from(["dingtalk", "database"]), at=st.integers(1, 30)
    )
    def check(org: Org, where: str, at: int) -> None:
        clear(owner_dsn)
        world = world_of(*org)

        async def go() -> None:
            async with rig(world, daemon_dsn) as r:
                FailingStore.steps, FailingStore.fail_at = 0, at if where == "database" else 0
                failing = FailingStore(r.store._pool)
                if where == "dingtalk":
                    r.recorder.cut_at = at
                first = r.sync("replica-a", failing)
                outcome: str
                try:
                    outcome, _ = await first.sync_now()
                except StoreError:
                    outcome = "crashed"  # the replica dies here; its lease stays
                cut = len(r.recorder.reads) >= at
                assert outcome == (
                    "done" if not cut else "error" if where == "dingtalk" else "crashed"
                )
                r.recorder.cut_at = None
                r.clock.advance(LEASE.total_seconds() + 1)  # the dead replica's lease passes
                run = await r.sync("replica-b").sync_now() if outcome != "done" else None
                if run is not None:
                    assert run[0] == "done"
                assert r.rows() == expected(world)
                reads = Counter(page_reads(r.recorder.reads))
                twice = [read for read, n in reads.items() if n > 1]
                assert all(n <= 2 for n in reads.values())
                if cut:
                    assert twice in ([], [r.recorder.reads[at - 1]])
                else:
                    assert twice == []

        asyncio.run(go())

    check()


def test_people_who_joined_or_left_between_syncs_are_found_by_the_next(
    daemon_dsn: str, owner_dsn: str
) -> None:
    @EXAMPLES
    @given(org=organisations(), data=st.data())
    def check(org: Org, data: st.DataObject) -> None:
        clear(owner_dsn)
        world = world_of(*org)

        async def go() -> None:
            async with rig(world, daemon_dsn) as r:
                await _sync_once(r)
                present = [u for u in world.users if u.active]
                leaving = (
                    data.draw(st.lists(st.sampled_from(present), unique_by=lambda u: u.user_id))
                    if present
                    else []
                )
                departed = {u.user_id: directory_user(u) for u in leaving}
                for u in leaving:
                    r.sim.directory.remove_user(u.user_id)
                ids = [d.dept_id for d in world.departments]
                joining = data.draw(st.integers(0, 5))
                for n in range(joining):
                    depts = data.draw(
                        st.lists(st.sampled_from(ids), min_size=1, max_size=2, unique=True)
                    )
                    joiner = person(1000 + n, depts, data.draw)  # type: ignore[arg-type]
                    r.sim.directory.add_user(joiner)
                removable = [
                    d.dept_id
                    for d in world.departments
                    if d.dept_id != 1
                    and not any(x.parent_id == d.dept_id for x in world.departments)
                    and not any(d.dept_id in u.dept_ids for u in world.users if u.active)
                ]
                for dept_id in removable:
                    r.sim.directory.remove_department(dept_id)
                r.clock.advance(3600)
                run = await _sync_once(r)
                want = expected(world, departed)
                want["removed"] = set(removable)
                assert r.rows() == want
                assert run.users == len([u for u in world.users if u.active])

        asyncio.run(go())

    check()


async def test_a_read_made_during_a_sync_wins(daemon_dsn: str, owner_dsn: str) -> None:
    """While the second sync reads a department's page, an event reads two of its people
    (after the page's read began, before it is saved): one DingTalk renamed since, one
    who left that department. The sync neither overwrites the first with its older page
    nor marks the second left at its end."""
    clear(owner_dsn)
    departments = [
        Department(dept_id=1, name="总公司"),
        Department(dept_id=10, name="研发", parent_id=1),
    ]
    users = [
        User(user_id=f"u{n}", name=f"用户{n}", dept_ids=[1 if n < 120 else 10], job_number=f"E{n}")
        for n in range(150)
    ]
    world = world_of(departments, users)
    async with rig(world, daemon_dsn) as r:
        await _sync_once(r)
        r.clock.advance(3600)
        directory = PostgresDirectoryStore(r.store._pool)
        renamed = DirectoryUser(
            user_id="u130", name="事件读到的名字", job_number="E130", dept_ids=(10,)
        )
        stayed = DirectoryUser(user_id="u140", name="用户140", job_number="E140", dept_ids=(10,))

        async def event(n: int, read: Any) -> None:
            if read == ("v2/user/list", 10, 0):  # the sync took this page's read time
                r.sim.directory.remove_user("u140")
                r.sim.directory.modify_user("u130", name="页里的名字")
                r.clock.advance(1)
                await directory.save_users([renamed, stayed], r.clock.now())

        r.recorder.hook = event
        run = await _sync_once(r)
        rows = r.rows()
        assert rows["present"]["u130"][1] == "事件读到的名字"
        assert rows["present"]["u140"][1] == "用户140" and "u140" not in rows["departed"]
        assert len(rows["present"]) == 150
        assert run.users == 149  # u140 was on no page


@pytest.mark.parametrize("owner", ["replica-a", "replica-b"])
async def test_one_sync_at_a_time_and_a_live_lease_is_followed(
    daemon_dsn: str, owner_dsn: str, owner: str
) -> None:
    """While replica-a holds the running sync, ``sync_now`` of another follows it until
    its lease passes, then takes it over; its own owner just resumes it."""
    clear(owner_dsn)
    world = world_of([Department(dept_id=1, name="总公司")], [])
    async with rig(world, daemon_dsn) as r:
        now = r.clock.now()
        held = await r.store.begin("schedule", "replica-a", now, now + LEASE)
        assert held is not None
        assert await r.store.begin("command", owner, now, now + LEASE) is None
        followed: list[int] = []

        async def wait(seconds: float) -> None:
            r.clock.advance(60)

        outcome, run = await r.sync(owner).sync_now(
            following=lambda s: followed.append(s.id), wait=wait
        )
        assert outcome == "done" and run.id == held.id
        assert followed == ([] if owner == "replica-a" else [held.id, held.id])


async def test_a_department_removed_while_queued_is_marked_removed(
    daemon_dsn: str, owner_dsn: str
) -> None:
    """DingTalk removes a queued department before the sync reads it: its read fails,
    DingTalk no longer has it, and the sync marks it removed and goes on."""
    clear(owner_dsn)
    departments = [
        Department(dept_id=1, name="总公司"),
        Department(dept_id=10, name="研发", parent_id=1),
        Department(dept_id=20, name="空的", parent_id=1),
    ]
    users = [
        User(user_id=f"u{n}", name=f"用户{n}", dept_ids=[1 if n % 2 else 10]) for n in range(6)
    ]
    world = world_of(departments, users)
    async with rig(world, daemon_dsn) as r:

        async def remove(n: int, read: Any) -> None:
            if read == ("v2/user/list", 20, 0):
                r.sim.directory.remove_department(20)

        r.recorder.hook = remove
        run = await _sync_once(r)
        want = expected(world)
        want["removed"] = {20}
        assert r.rows() == want
        assert ("v2/department/get", 20, None) in r.recorder.reads
        assert run.departments == 3


async def test_a_replica_whose_lease_passed_loses_the_sync_to_its_new_owner(
    daemon_dsn: str, owner_dsn: str
) -> None:
    """Replica A stalls past its lease in the middle of a page; B takes the sync over. A's
    page is not saved (its step writes nothing), A stops (``lost``), B finishes."""
    clear(owner_dsn)
    users = [User(user_id=f"u{n}", name=f"用户{n}", dept_ids=[1]) for n in range(250)]
    world = world_of([Department(dept_id=1, name="总公司")], users)
    async with rig(world, daemon_dsn) as r:
        taken: list[Any] = []

        async def stall(n: int, read: Any) -> None:
            if read == ("v2/user/list", 1, 100) and not taken:
                r.clock.advance(LEASE.total_seconds() + 1)
                now = r.clock.now()
                taken.append(await r.store.claim("replica-b", now, now + LEASE))

        r.recorder.hook = stall
        outcome, run = await r.sync("replica-a").sync_now()
        assert outcome == "lost" and taken[0] is not None and taken[0].cursor == 100
        outcome, run = await r.sync("replica-b").sync_now()
        assert outcome == "done" and run.id == taken[0].id
        assert r.rows() == expected(world)
        assert run.users == 250
