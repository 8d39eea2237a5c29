"""The contact APIs (contract §15) over generated organisations, and the contact-change
events (§16) every change of the organisation emits."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.simulator import Simulator, World
from syncd.simulator.directory import CONTACT_EVENTS, Directory, DirectoryError
from syncd.simulator.world import Department, User
from syncd.testing import FakeClock

APP_KEY, APP_SECRET = "dingsimappkey0001", "sim-app-secret-0001"
OAPI = "https://oapi.dingtalk.com"
_RUN = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def organisations(draw: st.DrawFn) -> dict[str, Any]:
    """A department tree under root 1, and people in one or more departments: some
    without a mobile, email or job number, some departed (possibly holding the mobile of
    a present person, as DingTalk allows once they have left)."""
    count = draw(st.integers(1, 8))
    departments: list[dict[str, Any]] = [{"dept_id": 1, "name": "root"}]
    ids = [1]
    for index in range(2, count + 1):
        parent = draw(st.sampled_from(ids))
        departments.append({"dept_id": index * 7, "name": f"d{index}", "parent_id": parent})
        ids.append(index * 7)
    people = draw(st.integers(0, 230))
    users: list[dict[str, Any]] = []
    held: set[str] = set()
    for n in range(people):
        active = draw(st.integers(0, 9)) > 0
        mobile = draw(st.one_of(st.just(""), st.integers(0, 40).map(lambda i: f"1380000{i:04d}")))
        if active and mobile in held:
            mobile = ""
        if active and mobile:
            held.add(mobile)
        depts = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=3, unique=True))
        users.append(
            {
                "user_id": f"user{n:03d}",
                "name": f"人{n}",
                "dept_ids": depts,
                "active": active,
                "mobile": mobile,
                "job_number": draw(st.sampled_from(["", f"E{n:05d}"])),
                "email": draw(st.sampled_from(["", f"p{n}@example.com"])),
            }
        )
    return {
        "apps": [{"app_key": APP_KEY, "app_secret": APP_SECRET}],
        "departments": departments,
        "users": users,
        "limits": {"qps_per_api": None, "monthly_quota": 0},
    }


class Oapi:
    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self.token = token

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await self.client.post(path, params={"access_token": self.token}, json=body)
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        assert "request_id" in answer
        return answer

    async def ok(self, path: str, body: dict[str, Any]) -> Any:
        answer = await self.call(path, body)
        assert answer["errcode"] == 0, answer
        return answer["result"]


async def _with_oapi(world: World, check: Any) -> Simulator:
    sim = Simulator(world, clock=FakeClock())
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url=OAPI) as client:
        r = await client.get("/gettoken", params={"appkey": APP_KEY, "appsecret": APP_SECRET})
        await check(Oapi(client, r.json()["access_token"]), sim)
    await sim.aclose()
    return sim


@_RUN
@given(org=organisations(), size=st.integers(1, 100))
def test_walking_the_tree_and_paging_visits_every_present_person_once(org, size) -> None:
    world = World.model_validate(org)
    present = {u.user_id for u in world.users if u.active}

    async def check(oapi: Oapi, sim: Simulator) -> None:
        seen: list[str] = []
        queue, visited = [1], []
        while queue:
            dept = queue.pop(0)
            visited.append(dept)
            children = await oapi.ok("/topapi/v2/department/listsub", {"dept_id": dept})
            assert all(c["parent_id"] == dept for c in children)
            queue += [c["dept_id"] for c in children]
            listed: list[str] = []
            cursor = 0
            while True:
                page = await oapi.ok(
                    "/topapi/v2/user/list", {"dept_id": dept, "cursor": cursor, "size": size}
                )
                assert len(page["list"]) <= size
                listed += [u["userid"] for u in page["list"]]
                if not page["has_more"]:
                    assert "next_cursor" not in page
                    break
                cursor = page["next_cursor"]
            direct = [u.user_id for u in world.users if u.active and dept in u.dept_ids]
            assert listed == direct  # each direct member once, departed ones never
            ids = await oapi.ok("/topapi/user/listid", {"dept_id": dept})
            assert ids["userid_list"] == direct
            seen += listed
        assert sorted(visited) == sorted(d.dept_id for d in world.departments)
        assert set(seen) == present
        # contact calls are exempt from the monthly quota: a quota of 0 refused none of
        # them, while it refuses a metered old-API call
        assert sim.calls["oapi.user.list"] >= len(visited)
        metered = await oapi.client.get(
            "/call_back/get_call_back_failed_result", params={"access_token": oapi.token}
        )
        assert metered.json()["errcode"] == 90020

    asyncio.run(_with_oapi(world, check))


@_RUN
@given(org=organisations(), prefix=st.sampled_from(["", "+86"]))
def test_by_mobile_finds_the_present_holder_or_answers_60121(org, prefix) -> None:
    world = World.model_validate(org)
    holders = {u.mobile: u.user_id for u in world.users if u.active and u.mobile}
    departed = {u.mobile for u in world.users if not u.active and u.mobile} - set(holders)

    async def check(oapi: Oapi, sim: Simulator) -> None:
        for mobile, user_id in holders.items():
            found = await oapi.ok("/topapi/v2/user/getbymobile", {"mobile": prefix + mobile})
            assert found == {"userid": user_id}
        for mobile in departed:  # departed people cannot be found by mobile (§15.9)
            answer = await oapi.call("/topapi/v2/user/getbymobile", {"mobile": mobile})
            assert answer["errcode"] == 60121
        bad = await oapi.call("/topapi/v2/user/getbymobile", {"mobile": "not-a-phone"})
        assert bad["errcode"] == 40104
        for user in world.users:
            answer = await oapi.call("/topapi/v2/user/get", {"userid": user.user_id})
            if not user.active:
                assert answer["errcode"] == 60121 and answer["errmsg"] == "找不到该用户"
                continue
            detail = answer["result"]
            assert detail["userid"] == user.user_id and detail["dept_id_list"] == user.dept_ids
            assert detail["job_number"] == user.job_number and detail["email"] == user.email
            assert ("mobile" in detail) == bool(user.mobile)
            assert all(o["order"] > 2**53 for o in detail["dept_order_list"])

    asyncio.run(_with_oapi(world, check))


async def test_errors_are_dingtalk_envelopes() -> None:
    async def check(oapi: Oapi, sim: Simulator) -> None:
        cases: list[tuple[str, dict[str, Any], int]] = [
            ("/topapi/v2/department/listsub", {"dept_id": 999}, 60003),
            ("/topapi/v2/department/get", {"dept_id": 999}, 60003),
            ("/topapi/v2/department/get", {}, 400002),
            ("/topapi/v2/user/list", {"dept_id": 1, "cursor": 0, "size": 101}, 40035),
            ("/topapi/v2/user/list", {"dept_id": 1, "cursor": -1, "size": 10}, 40035),
            ("/topapi/v2/user/list", {"dept_id": 999, "cursor": 0, "size": 10}, 60003),
            ("/topapi/v2/user/list", {"dept_id": 1, "size": 10}, 400002),
            ("/topapi/v2/user/get", {"userid": "nobody"}, 60121),
            ("/topapi/v2/user/get", {"userid": "x" * 65}, 33012),
            ("/topapi/user/listid", {"dept_id": 999}, 60003),
        ]
        for path, body, code in cases:
            answer = await oapi.call(path, body)
            assert answer["errcode"] == code, (path, body, answer)
            assert set(answer) == {"errcode", "errmsg", "request_id"}
        r = await oapi.client.post(
            "/topapi/v2/user/get", params={"access_token": "bad"}, json={"userid": "u1"}
        )
        assert r.json()["errcode"] == 88 and r.json()["sub_code"] == "40014"
        form = await oapi.client.post(
            "/topapi/v2/department/get",
            params={"access_token": oapi.token},
            content="dept_id=2&language=zh_CN",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert form.json()["result"]["dept_id"] == 2  # the docs' samples send forms

    await _with_oapi(World.default(), check)


# --- changes and their events ------------------------------------------------------------


@st.composite
def changes(draw: st.DrawFn) -> list[tuple[str, Any]]:
    steps = draw(
        st.lists(
            st.sampled_from(["add", "modify", "move", "leave", "dcreate", "dmodify", "dremove"]),
            max_size=12,
        )
    )
    return [(step, draw(st.integers(0, 50))) for step in steps]


def _apply(directory: Directory, step: str, n: int) -> tuple[str, dict[str, Any]] | None:
    """One change; the event it must emit, or None when the organisation refuses it."""
    world = directory.world
    present = [u for u in world.users if u.active]
    depts = [d.dept_id for d in world.departments]
    try:
        if step == "add":
            user = User(user_id=f"new{n}", name="新人", dept_ids=[depts[n % len(depts)]])
            directory.add_user(user)
            return "user_add_org", {"userId": [user.user_id]}
        if step in ("modify", "move", "leave") and present:
            user_id = present[n % len(present)].user_id
            if step == "leave":
                directory.remove_user(user_id)
                return "user_leave_org", {"userId": [user_id]}
            if step == "move":
                directory.modify_user(user_id, dept_ids=[depts[n % len(depts)]])
            else:
                directory.modify_user(user_id, job_number=f"J{n}", email=f"e{n}@x.cn")
            return "user_modify_org", {"userId": [user_id]}
        if step == "dcreate":
            directory.add_department(Department(dept_id=1000 + n, name="新部门", parent_id=1))
            return "org_dept_create", {"deptId": [1000 + n]}
        if step in ("dmodify", "dremove"):
            dept_id = depts[n % len(depts)]
            if step == "dmodify":
                directory.modify_department(dept_id, name=f"部门{n}")
                return "org_dept_modify", {"deptId": [dept_id]}
            directory.remove_department(dept_id)
            return "org_dept_remove", {"deptId": [dept_id]}
    except DirectoryError:
        return None
    return None


@_RUN
@given(steps=changes())
def test_each_change_emits_its_event_with_the_ids(steps) -> None:
    sim = Simulator(World.default(), clock=FakeClock())
    for step, n in steps:
        before = len(sim.events)
        expected = _apply(sim.directory, step, n)
        emitted = sim.events[before:]
        if expected is None:
            assert emitted == []
            continue
        assert len(emitted) == 1
        event = emitted[0]
        assert event.event_type == expected[0] and event.event_type in CONTACT_EVENTS
        assert {k: event.data[k] for k in expected[1]} == expected[1]
        if "userId" in event.data:
            assert event.data["timeStamp"].isdigit()
        if event.event_type == "user_modify_org":
            assert event.data["diffInfo"]["userid"] == event.data["userId"][0]
    # the world stays consistent: it validates as a world file would
    World.model_validate(sim.world.dump())


def test_activating_dingtalk_is_its_own_event() -> None:
    sim = Simulator(World.default(), clock=FakeClock())
    assert not sim.world.user("u4").activated  # type: ignore[union-attr]
    sim.directory.modify_user("u4", activated=True)
    assert (sim.events[-1].event_type, sim.events[-1].data) == (
        "user_active_org",
        {"userId": ["u4"]},
    )


def test_departed_people_can_no_longer_start_approvals() -> None:
    sim = Simulator(World.default(), clock=FakeClock())
    sim.directory.remove_user("u1")
    with pytest.raises(DirectoryError):
        sim.directory.remove_user("u1")
    assert not sim.world.user("u1").active  # type: ignore[union-attr]
    sim.directory.add_user(User(user_id="u1", name="回来了", dept_ids=[2]))
    assert sim.world.user("u1").active  # type: ignore[union-attr]


def test_the_organisation_refuses_what_dingtalk_refuses() -> None:
    directory = Simulator(World.default(), clock=FakeClock()).directory
    directory.modify_user("u1", mobile="13900000001")
    refused = [
        lambda: directory.add_user(User(user_id="u2", name="x")),  # present already
        lambda: directory.add_user(User(user_id="z", name="z", mobile="13900000001")),
        lambda: directory.add_user(User(user_id="z", name="z", dept_ids=[99])),
        lambda: directory.modify_user("u1", user_id="other"),
        lambda: directory.remove_department(1),
        lambda: directory.remove_department(2),  # has members
        lambda: directory.modify_department(2, parent_id=2),  # a loop
        lambda: directory.modify_department(1, parent_id=2),  # the root moved: a loop too
        lambda: directory.add_department(Department(dept_id=9, name="x", parent_id=77)),
    ]
    for change in refused:
        with pytest.raises(DirectoryError):
            change()


async def test_admin_api_changes_the_organisation(client: httpx.AsyncClient, sim) -> None:
    r = await client.post(
        "/_sim/directory/users",
        json={"user_id": "n1", "name": "新", "dept_ids": [3], "mobile": "13700000000"},
    )
    assert r.status_code == 200, r.text
    assert (await client.patch("/_sim/directory/users/n1", json={"dept_ids": [2]})).is_success
    assert (await client.delete("/_sim/directory/users/n1")).is_success
    r = await client.post("/_sim/directory/departments", json={"dept_id": 5, "name": "法务部"})
    assert r.status_code == 400 and "no path to root" in r.json()["error"]
    r = await client.post(
        "/_sim/directory/departments", json={"dept_id": 5, "name": "法务部", "parent_id": 1}
    )
    assert r.status_code == 200
    assert (await client.patch("/_sim/directory/departments/5", json={"name": "法"})).is_success
    assert (await client.delete("/_sim/directory/departments/5")).is_success
    kinds = [e.event_type for e in sim.events]
    assert kinds == [
        "user_add_org",
        "user_modify_org",
        "user_leave_org",
        "org_dept_create",
        "org_dept_modify",
        "org_dept_remove",
    ]
    shown = (await client.get("/_sim/directory")).json()
    assert "n1" in [u["user_id"] for u in shown["users"]]
    assert json.dumps(shown, ensure_ascii=False)
