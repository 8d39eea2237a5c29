"""Helpers for the directory's event tests: the simulator's organisation as the
directory tables should hold it, and the tables as they are."""

from __future__ import annotations

from typing import Any

import httpx

from syncd.people import normal, normal_mobile
from syncd.simulator import Simulator
from syncd.simulator.world import User

from .conftest import APP_KEY, Env

CALLBACK = {
    "enabled": True,
    "token": "simtoken123",
    "aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
}


def expected_user(user: User) -> dict[str, Any]:
    """A present person of the world as ``syncd.dingtalk_user`` (and its memberships)
    should hold them: matching values in their normal forms."""
    return {
        "name": user.name,
        "job_number": normal("job_number", user.job_number) if user.job_number else None,
        "mobile": normal_mobile(user.mobile, user.state_code) if user.mobile else None,
        "email": normal("email", user.email) if user.email else None,
        "org_email": None,
        "activated": user.activated,
        "left": False,
        "depts": sorted(user.dept_ids),
    }


def world_users(sim: Simulator) -> dict[str, dict[str, Any]]:
    return {u.user_id: expected_user(u) for u in sim.world.users if u.active}


def world_departments(sim: Simulator) -> dict[int, tuple[str, int | None]]:
    return {
        d.dept_id: (d.name, None if d.dept_id == 1 else d.parent_id) for d in sim.world.departments
    }


def directory_users(env: Env) -> dict[str, dict[str, Any]]:
    """``syncd.dingtalk_user`` with each user's departments, by userid."""
    rows = env.sql(
        "SELECT u.user_id, u.name, u.job_number, u.mobile, u.email, u.org_email, u.activated,"
        " u.left_at IS NOT NULL, coalesce(array_agg(m.dept_id ORDER BY m.dept_id)"
        " FILTER (WHERE m.dept_id IS NOT NULL), '{}')"
        " FROM syncd.dingtalk_user u LEFT JOIN syncd.dingtalk_membership m USING (user_id)"
        " GROUP BY u.user_id"
    )
    names = ("name", "job_number", "mobile", "email", "org_email", "activated", "left", "depts")
    return {row[0]: dict(zip(names, row[1:], strict=True)) for row in rows}


def directory_departments(env: Env) -> dict[int, tuple[str, int | None, bool]]:
    rows = env.sql(
        "SELECT dept_id, name, parent_id, removed_at IS NOT NULL FROM syncd.dingtalk_department"
    )
    return {int(r[0]): (r[1], r[2], r[3]) for r in rows}


async def seed(daemon: Any) -> None:
    """What a full sync leaves: every department and present person, read through the
    daemon's own contact client and stored by its directory store."""
    app = daemon.app
    now = app.clock.now()
    queue, departments, users = [1], [], {}
    root = await app.contacts.department(1)
    assert root is not None
    departments.append(root)
    while queue:
        dept_id = queue.pop(0)
        children = await app.contacts.subdepartments(dept_id)
        departments += children
        queue += [d.dept_id for d in children]
        cursor: int | None = 0
        while cursor is not None:
            page = await app.contacts.members(dept_id, cursor)
            users.update({u.user_id: u for u in page.users})
            cursor = page.next_cursor
    await app.directory.save_departments(departments, now)
    await app.directory.save_users(list(users.values()), now)


def admin(sim: Simulator) -> httpx.AsyncClient:
    """The simulator's admin API (``/_sim/directory/...``), in process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url="http://sim")


def callback_client(daemon: Any) -> httpx.AsyncClient:
    """A client the simulator pushes through into the daemon's own callback route."""
    transport = httpx.ASGITransport(app=daemon.app.http_app())
    return httpx.AsyncClient(transport=transport, base_url="http://syncd")


def point_callbacks(sim: Simulator, client: httpx.AsyncClient | None) -> None:
    """Make the simulator push HTTP callbacks into ``client`` (None: stop pushing)."""
    if client is None:
        sim.callbacks.set_url(APP_KEY, None)
        return
    sim.callbacks.set_client(client)
    sim.callbacks.set_url(APP_KEY, "http://syncd/dingtalk/callback")
