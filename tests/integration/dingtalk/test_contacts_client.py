"""The contact client reads the simulator's whole organisation as the simulator holds it.

Whatever drawn directory the world file describes (departments nested, people in several
departments, more than a page of members, departed people, mobiles and emails written
every which way), walking the tree with the client finds exactly the present people, each
with their job number, mobile and emails in normal form; a departed or unknown user is
``None``, and the by-mobile call finds present people only.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.dingtalk.calls import ObservedClient
from syncd.dingtalk.client import build_http_client
from syncd.dingtalk.contacts import HttpxContactClient
from syncd.dingtalk.pacing import MemoryPacer
from syncd.people import DirectoryUser, normal, normal_mobile
from syncd.simulator import Simulator, World
from syncd.simulator.world import Department, User
from syncd.testing import FakeClock

from .conftest import APP_KEY, APP_SECRET, FakeSleeper

_MOBILE_FORMS = st.sampled_from(["{n}", "+86 {a}-{b}-{c}", "86{n}", "({a}) {b} {c}"])


@st.composite
def organisations(draw: st.DrawFn) -> tuple[list[Department], list[User]]:
    count = draw(st.integers(1, 6))
    departments = [Department(dept_id=1, name="总公司")]
    for number in range(2, count + 1):
        parent = draw(st.sampled_from([d.dept_id for d in departments]))
        departments.append(Department(dept_id=number * 10, name=f"部门{number}", parent_id=parent))
    ids = [d.dept_id for d in departments]
    people = draw(st.integers(0, 130))
    users = []
    for number in range(people):
        digits = f"1{number:010d}"
        form = draw(_MOBILE_FORMS)
        mobile = form.format(n=digits, a=digits[:3], b=digits[3:7], c=digits[7:])
        users.append(
            User(
                user_id=f"u{number}",
                name=f"用户{number}",
                job_number=draw(st.sampled_from(["", f"e{number:04d}"])),
                mobile=draw(st.sampled_from(["", mobile])),
                email=draw(st.sampled_from(["", f"User{number}@Example.COM"])),
                dept_ids=draw(st.lists(st.sampled_from(ids), min_size=1, max_size=2, unique=True)),
                active=draw(st.booleans()) or number % 3 != 0,
            )
        )
    return departments, users


async def _walk(client: HttpxContactClient) -> dict[str, DirectoryUser]:
    found: dict[str, DirectoryUser] = {}
    queue = [1]
    while queue:
        dept_id = queue.pop(0)
        queue += [d.dept_id for d in await client.subdepartments(dept_id)]
        cursor: int | None = 0
        while cursor is not None:
            page = await client.members(dept_id, cursor)
            found.update({u.user_id: u for u in page.users})
            cursor = page.next_cursor
    return found


async def _read(world: World) -> None:
    clock = FakeClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    sim = Simulator(world, clock=clock)
    transport = httpx.ASGITransport(app=sim.app)
    api = build_http_client(
        APP_KEY, APP_SECRET, base_url="http://sim", clock=clock, transport=transport
    )
    oapi = ObservedClient(base_url="http://sim", auth=api.auth, transport=transport)
    pacer = MemoryPacer(clock=clock, rate=15, sleep=FakeSleeper(clock))
    client = HttpxContactClient(oapi, pacer=pacer, clock=clock)
    try:
        found = await _walk(client)
        present = [u for u in world.users if u.active]
        assert sorted(found) == sorted(u.user_id for u in present)
        for user in present:
            got = found[user.user_id]
            assert got.job_number == (
                normal("job_number", user.job_number) if user.job_number else None
            )
            assert got.mobile == (normal_mobile(user.mobile) if user.mobile else None)
            assert got.email == (user.email.lower() if user.email else None)
            assert sorted(got.dept_ids) == sorted(user.dept_ids)
            assert await client.user(user.user_id) == got
            if got.mobile is not None:
                assert await client.user_id_by_mobile(got.mobile) in {
                    u.user_id for u in present if u.mobile and normal_mobile(u.mobile) == got.mobile
                }
        for user in world.users:
            if not user.active:
                assert await client.user(user.user_id) is None
                if user.mobile:
                    assert await client.user_id_by_mobile(normal_mobile(user.mobile)) is None
        assert await client.department(999_999) is None
    finally:
        await api.aclose()
        await oapi.aclose()
        await sim.aclose()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(org=organisations())
def test_walking_the_tree_finds_exactly_the_present_people(
    org: tuple[list[Department], list[User]],
) -> None:
    departments, users = org
    world = World.default().model_copy(update={"departments": departments, "users": users})
    asyncio.run(_read(world))
