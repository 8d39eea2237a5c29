"""Contact-change events keep the directory equal to DingTalk's organisation.

Each example starts from a directory a full sync filled (the daemon's own contact client
walking the simulator's tree into its directory store), then draws a sequence of changes
made through the simulator's admin API: people added (with job numbers, mobiles and
emails written every which way), changed, moved between departments, activating
DingTalk, leaving and rejoining; departments created, renamed, moved and removed. Each
change's event is delivered as a drawn plan says: over Stream (as the Stream client
stores it), over the encrypted HTTP callback into the daemon's own route, or through
DingTalk's failed-push list read by the daemon's sweeper; once or twice; at once, after
later changes were made and drained, or lost and only redelivered at the end through
the failed-push list. After draining, the directory tables equal the simulator's
organisation column by column (present people and their departments, departed people
with nothing but their userid and name, removed departments marked), and every event
was processed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.dingtalk.events import make_event
from syncd.simulator import Simulator, World
from syncd.simulator.events import Event, failed_item

from .conftest import APP_KEY, Env
from .directory_world import (
    CALLBACK,
    admin,
    callback_client,
    directory_departments,
    directory_users,
    point_callbacks,
    seed,
    world_departments,
    world_users,
)

POOL = ("u1", "u2", "u3", "u4", "u5", "n1", "n2")
LOST = 3  # a delay that never comes: redelivered through the failed-push list at the end
PUSH_ATTEMPTS = 5

people = st.sampled_from(POOL)
steps = st.one_of(
    st.tuples(st.just("add"), people, st.integers(0, 9), st.integers(0, 3)),
    st.tuples(
        st.just("modify"),
        people,
        st.sampled_from(["name", "email", "job_number", "mobile"]),
        st.integers(0, 3),
    ),
    st.tuples(st.just("move"), people, st.lists(st.integers(0, 9), min_size=1, max_size=2)),
    st.tuples(st.just("leave"), people),
    st.tuples(st.just("activate"), people),
    st.tuples(st.just("dept_create"), st.integers(0, 9)),
    st.tuples(st.just("dept_modify"), st.integers(0, 9), st.integers(0, 3), st.integers(0, 9)),
    st.tuples(st.just("dept_remove"), st.integers(0, 9)),
)


@dataclass(frozen=True)
class Delivery:
    """Per event (by emission number, cyclic): its channel, copies and delay (in drain
    points; ``LOST``: only at the end, through the failed-push list); then whether the
    daemon drains after each step."""

    channels: list[str]
    copies: list[int]
    delays: list[int]
    drains: list[bool]


deliveries = st.builds(
    Delivery,
    st.lists(st.sampled_from(["stream", "callback", "failed"]), min_size=20, max_size=20),
    st.lists(st.sampled_from([1, 1, 2]), min_size=20, max_size=20),
    st.lists(st.sampled_from([0, 0, 1, 2, LOST]), min_size=20, max_size=20),
    st.lists(st.booleans(), min_size=12, max_size=12),
)


def _mobile(user_id: str, n: int, pretty: bool) -> str:
    digits = f"139{POOL.index(user_id):02d}{n:06d}"
    return f"+86 {digits[:3]}-{digits[3:7]}-{digits[7:]}" if pretty else digits


def _request(sim: Simulator, step: tuple[Any, ...], created: list[int]) -> tuple[str, str, Any]:
    """The admin request for a drawn step (method, path, body)."""
    depts = sorted(d.dept_id for d in sim.world.departments)
    what = step[0]
    if what == "add":
        _, uid, dept, n = step
        body = {
            "user_id": uid,
            "name": f"{uid}-{n}",
            "dept_ids": [depts[dept % len(depts)]],
            "job_number": f" e{n}{uid} " if n % 2 else "",
            "mobile": _mobile(uid, n, pretty=n == 1) if n else "",
            "email": f"{uid}.{n}@Example.COM" if n != 2 else "",
        }
        return "POST", "/_sim/directory/users", body
    if what == "modify":
        _, uid, field, n = step
        value = {
            "name": f"{uid} renamed {n}",
            "email": f"{uid}.m{n}@EXAMPLE.com",
            "job_number": f"j{n}-{uid}",
            "mobile": _mobile(uid, 10 + n, pretty=n % 2 == 1),
        }[field]
        return "PATCH", f"/_sim/directory/users/{uid}", {field: value}
    if what == "move":
        targets = sorted({depts[i % len(depts)] for i in step[2]})
        return "PATCH", f"/_sim/directory/users/{step[1]}", {"dept_ids": targets}
    if what == "leave":
        return "DELETE", f"/_sim/directory/users/{step[1]}", None
    if what == "activate":
        return "PATCH", f"/_sim/directory/users/{step[1]}", {"activated": True}
    if what == "dept_create":
        created.append(100 + len(created))  # DingTalk never gives a department id twice
        body = {"dept_id": created[-1], "name": f"部门{created[-1]}"}
        return (
            "POST",
            "/_sim/directory/departments",
            body | {"parent_id": depts[step[1] % len(depts)]},
        )
    if what == "dept_modify":
        _, dept, n, parent = step
        body = {"name": f"改名{n}", "parent_id": depts[parent % len(depts)]}
        return "PATCH", f"/_sim/directory/departments/{depts[dept % len(depts)]}", body
    return "DELETE", f"/_sim/directory/departments/{depts[step[1] % len(depts)]}", None


class Deliverer:
    """Delivers the simulator's events to the daemon through the channel a plan says."""

    def __init__(self, env: Env, daemon: Any, plan: Delivery) -> None:
        self.env, self.daemon, self.plan = env, daemon, plan
        self.app = env.sim.world.apps[0]
        self.callbacks = callback_client(daemon)
        self.due: list[tuple[int, Event, str, int]] = []  # (drain point, event, channel, n)
        self.lost: list[Event] = []

    def emitted(self, events: list[Event], now_point: int) -> None:
        for event in events:
            n = len(self.due) + len(self.lost)
            delay = self.plan.delays[n % 20]
            if delay == LOST:
                self.lost.append(event)
                continue
            for _ in range(self.plan.copies[n % 20]):
                self.due.append((now_point + delay, event, self.plan.channels[n % 20], n))

    async def deliver(self, point: int) -> None:
        now = [d for d in self.due if d[0] <= point]
        self.due = [d for d in self.due if d[0] > point]
        # the latest emitted first: deliveries overtake each other
        for _, event, channel, _n in sorted(now, key=lambda d: -d[3]):
            await self._send(event, channel)
        await self.daemon.drain()

    async def _send(self, event: Event, channel: str) -> None:
        if channel == "stream":
            stored = make_event("stream", event.event_type, event.data, event.event_id)
            await self.daemon.app.inbox.put_many([stored])
        elif channel == "callback":
            await self._push(event)
        else:
            await self._failed_list([event])

    async def _push(self, event: Event) -> None:
        """Push over the HTTP callback until the daemon acknowledges, as DingTalk retries:
        on a loaded machine the daemon may answer 503 (storing took over its 1 s deadline),
        which is the contract, not a failure of this test."""
        acknowledged = self.env.sim.events_acknowledged
        point_callbacks(self.env.sim, self.callbacks)
        try:
            for _ in range(PUSH_ATTEMPTS):
                before = len(acknowledged)
                await self.env.sim.callbacks.push(self.app, event)
                if len(acknowledged) > before:
                    assert acknowledged[-1]["eventId"] == event.event_id
                    return
        finally:
            point_callbacks(self.env.sim, None)
        pytest.fail(f"the daemon refused {PUSH_ATTEMPTS} pushes of event {event.event_id}")

    async def _failed_list(self, events: list[Event]) -> None:
        self.env.sim.callbacks.failed.setdefault(APP_KEY, []).extend(map(failed_item, events))
        await self.daemon.app.sweeper.run_once()

    async def finish(self) -> None:
        await self.deliver(10**6)
        await self._failed_list(self.lost)
        await self.daemon.drain()
        await self.callbacks.aclose()


def _fresh(env: Env) -> Env:
    """A new organisation for each example, and empty directory tables and inbox."""
    env.sql(
        "TRUNCATE syncd.dingtalk_membership, syncd.dingtalk_user, syncd.dingtalk_department,"
        " syncd.inbox"
    )
    return dataclasses.replace(env, sim=Simulator(World.default(), clock=env.clock))


async def _run(env: Env, plan: list[tuple[Any, ...]], delivery: Delivery) -> set[str]:
    """Seed, make the changes, deliver their events; the users who left."""
    config = env.settings(
        directory={"enabled": True}, events={"stream": False, "callback": CALLBACK}
    )
    left: set[str] = set()
    created: list[int] = []
    async with env.daemon(config) as daemon, admin(env.sim) as sim_admin:
        await seed(daemon)
        deliverer = Deliverer(env, daemon, delivery)
        for point, step in enumerate(plan):
            env.clock.advance(1)  # each change at its own millisecond
            before = len(env.sim.events)
            method, path, body = _request(env.sim, step, created)
            response = await sim_admin.request(method, path, json=body)
            assert response.status_code in (200, 400), response.text
            if response.status_code == 200 and step[0] == "leave":
                left.add(step[1])
            elif response.status_code == 200 and step[0] == "add":
                left.discard(step[1])
            deliverer.emitted(env.sim.events[before:], point)
            if delivery.drains[point % 12]:
                env.clock.advance(1)
                await deliverer.deliver(point)
        env.clock.advance(1)
        await deliverer.finish()
    return left


@pytest.mark.timeout(900)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=st.lists(steps, min_size=1, max_size=12), delivery=deliveries)
async def test_after_draining_the_directory_is_the_organisation(env, plan, delivery):
    env = _fresh(env)
    left = await _run(env, plan, delivery)
    users = directory_users(env)
    assert {u: row for u, row in users.items() if not row["left"]} == world_users(env.sim)
    departed = {u: row for u, row in users.items() if row["left"]}
    assert set(departed) == left
    for row in departed.values():  # only the userid and name are kept
        assert row["job_number"] is row["mobile"] is row["email"] is None and row["depts"] == []
    departments = directory_departments(env)
    present = {d: (name, parent) for d, (name, parent, gone) in departments.items() if not gone}
    assert present == world_departments(env.sim)
    assert env.sql("SELECT count(*) FROM syncd.inbox WHERE processed_at IS NULL") == [(0,)]
    assert env.sql("SELECT count(*) FROM syncd.inbox WHERE last_error IS NOT NULL") == [(0,)]
