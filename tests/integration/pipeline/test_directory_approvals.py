"""Contact-change events meet approvals: a person who moves departments or leaves while
their request waits, events for a directory that is not enabled, DingTalk failing the
reads. Every change is made through the simulator's admin API, and its event is pushed
over the encrypted HTTP callback into the daemon's own route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from syncd.app import App
from syncd.dingtalk.events import make_event
from syncd.dingtalk.pacing import MemoryPacer
from syncd.dingtalk.stream import StreamState
from syncd.pipeline.directory_events import NOT_ENABLED, NOT_USED
from syncd.runner import Runner
from syncd.simulator import serve
from syncd.simulator.events import failed_item

from .conftest import APP_KEY, Env
from .directory_world import (
    CALLBACK,
    admin,
    callback_client,
    directory_users,
    point_callbacks,
    seed,
    world_users,
)

DEADLINE = 5.0
ORIGINATOR_LEFT = "originator u1 left the organisation; DingTalk goes on with the instance"
APPROVER_LEFT = (
    "approver manager1 left the organisation; DingTalk passes their task on as its settings say"
)


@asynccontextmanager
async def running(env: Env, *, enabled: bool = True) -> AsyncIterator[Any]:
    """The daemon (callbacks only), its directory filled as a full sync would (when
    enabled), and the simulator pushing into its callback route."""
    config = env.settings(
        directory={"enabled": enabled}, events={"stream": False, "callback": CALLBACK}
    )
    async with env.daemon(config) as daemon:
        if enabled:
            await seed(daemon)
        async with callback_client(daemon) as client:
            point_callbacks(env.sim, client)
            yield daemon
            point_callbacks(env.sim, None)


async def _change(env: Env, method: str, path: str, body: Any = None) -> None:
    env.clock.advance(1)
    async with admin(env.sim) as http:
        response = await http.request(method, path, json=body)
    assert response.status_code == 200, response.text
    await env.advance(0)  # the simulator pushes the change's event


def _notes(env: Env) -> list[str]:
    rows = env.sql(
        "SELECT message FROM syncd.approval_event"
        " WHERE event_type = 'note' AND message LIKE '%%left the organisation%%' ORDER BY id"
    )
    return [message for (message,) in rows]


def _approval(env: Env, key: int) -> tuple[Any, ...]:
    [row] = env.sql(
        "SELECT a.state, a.dept_id, a.written_back_at IS NOT NULL, r.approval_status"
        " FROM syncd.approval a JOIN app.leave_request r ON r.id::text = a.business_key"
        " WHERE a.business_key = %s",
        str(key),
    )
    return row


async def test_a_person_moving_departments_between_submission_and_decision(env):
    key = env.submit_leave("u1", days=2)
    async with running(env) as daemon:
        await daemon.drain()
        state, dept, _, _ = _approval(env, key)
        assert state == "running"
        await _change(env, "PATCH", "/_sim/directory/users/u1", {"dept_ids": [3]})
        await daemon.drain()
        assert directory_users(env)["u1"]["depts"] == [3]
        await env.advance(120)  # the leave rule decides each node after 30 s
        await daemon.drain()
    assert _approval(env, key) == ("approved", dept, True, "APPROVED")
    present = {u: row for u, row in directory_users(env).items() if not row["left"]}
    assert present == world_users(env.sim)
    assert _notes(env) == []


async def test_a_person_leaving_after_submission_is_noted_and_the_instance_goes_on(env):
    key = env.submit_leave("u1", days=2)
    async with running(env) as daemon:
        await daemon.drain()  # submitted; its task events come in the batch of the leaves
        [(instance_id,)] = env.sql("SELECT instance_id FROM syncd.approval")
        await _change(env, "DELETE", "/_sim/directory/users/u1")
        await _change(env, "DELETE", "/_sim/directory/users/manager1")
        await daemon.drain()
        assert _notes(env) == [ORIGINATOR_LEFT, APPROVER_LEFT]
        # the same leaves learned again, from the failed-push list: noted once
        env.sim.callbacks.failed[APP_KEY] = [failed_item(e) for e in env.sim.events[-2:]]
        await daemon.app.sweeper.run_once()
        await daemon.drain()
        assert _notes(env) == [ORIGINATOR_LEFT, APPROVER_LEFT]
        # DingTalk (here: the simulator, which does not hand tasks on) goes on
        assert env.sim.instance(instance_id).status == "RUNNING"
        await env.advance(120)
        await daemon.drain()
    assert _approval(env, key)[::2] == ("approved", True)
    departed = {u for u, row in directory_users(env).items() if row["left"]}
    assert departed == {"u1", "manager1"}
    assert _notes(env) == [ORIGINATOR_LEFT, APPROVER_LEFT]


async def test_events_for_a_directory_that_is_not_enabled_are_set_aside(env):
    async with running(env, enabled=False) as daemon:
        await _change(env, "PATCH", "/_sim/directory/users/u2", {"dept_ids": [3]})
        await _change(env, "DELETE", "/_sim/directory/users/u3")
        await daemon.drain()
        counted = daemon.app.registry.get_sample_value(
            "syncd_directory_events_total", {"event_type": "user_leave_org"}
        )
    rows = env.sql("SELECT event_type, processed_at IS NOT NULL, last_error FROM syncd.inbox")
    assert sorted(rows) == [
        ("user_leave_org", True, NOT_ENABLED),
        ("user_modify_org", True, NOT_ENABLED),
    ]
    assert env.sql("SELECT count(*) FROM syncd.dingtalk_user") == [(0,)]
    assert counted == 1


async def test_contact_events_the_directory_has_no_use_for_are_marked_processed(env):
    legacy = {"EventType": "org_admin_add", "UserId": ["u2"], "TimeStamp": "1700000000123"}
    async with running(env) as daemon:
        await daemon.app.inbox.put_many(
            [
                make_event("callback", "org_admin_add", legacy),
                make_event("stream", "label_user_change", {"userIdList": ["u2"]}, "e-1"),
                make_event("stream", "org_change", {}, "e-2"),
            ]
        )
        await daemon.drain()
    rows = env.sql("SELECT processed_at IS NOT NULL, last_error FROM syncd.inbox")
    assert rows == [(True, NOT_USED)] * 3


async def test_a_failed_read_defers_the_event_until_dingtalk_answers(env):
    async with running(env) as daemon:
        env.sim.faults.update(error_5xx_rate=1.0, endpoints=["oapi.user.get"])
        await _change(env, "PATCH", "/_sim/directory/users/u2", {"name": "新名字"})
        await daemon.drain()
        [(processed, attempts, error)] = env.sql(
            "SELECT processed_at IS NOT NULL, attempts, last_error FROM syncd.inbox"
        )
        assert not processed and attempts == 1 and "DingTalk not read" in error
        assert directory_users(env)["u2"]["name"] != "新名字"
        env.clock.advance(10)  # the first retry comes after 2.5 to 5 s
        await daemon.drain()
        assert env.sql("SELECT attempts FROM syncd.inbox") == [(2,)]
        env.sim.faults.reset()
        env.clock.advance(20)
        await daemon.drain()
    assert env.sql("SELECT processed_at IS NOT NULL, last_error FROM syncd.inbox") == [(True, None)]
    assert directory_users(env)["u2"]["name"] == "新名字"


async def test_contact_events_over_stream_reach_the_directory(env):
    """The daemon's own Stream client, connected to the simulator over loopback."""
    async with serve(env.sim) as server:
        urls = {"api_url": server.base_url, "oapi_url": server.base_url}
        config = env.settings(directory={"enabled": True}, dingtalk=urls)
        pacer = MemoryPacer(clock=env.clock, rate=1000)
        async with Runner(App(config, clock=env.clock, pacer=pacer)) as daemon:
            await seed(daemon)
            stream = daemon.app.stream
            assert stream is not None
            task = asyncio.create_task(stream.run())
            try:
                async with asyncio.timeout(DEADLINE):
                    await stream.wait_for(lambda s: s.state == StreamState.CONNECTED)
                await _change(env, "PATCH", "/_sim/directory/users/u2", {"dept_ids": [2, 3]})
                await _change(env, "DELETE", "/_sim/directory/users/u3")
                async with asyncio.timeout(DEADLINE):
                    while len(env.sim.events_acknowledged) < 2:
                        await env.sim.advance(0)
                        await asyncio.sleep(0.005)  # let frames cross the loopback socket
            finally:
                await stream.stop()
                async with asyncio.timeout(DEADLINE):
                    await task
            await daemon.drain()
    users = directory_users(env)
    assert users["u2"]["depts"] == [2, 3] and users["u3"]["left"]
    assert env.sql("SELECT DISTINCT channel, processed_at IS NOT NULL FROM syncd.inbox") == [
        ("stream", True)
    ]


async def test_one_event_may_name_several_ids_and_a_batch_reads_each_once(env):
    async with running(env) as daemon:
        env.clock.advance(1)  # after the full sync's reads
        env.sim.directory.modify_user("u2", name="二号")
        env.sim.directory.modify_user("u3", dept_ids=[3])
        env.sim.directory.remove_user("u4")
        env.sim.directory.modify_department(2, name="研发中心")
        stamp = str(int(env.clock.now().timestamp() * 1000))
        legacy: list[dict[str, Any]] = [
            {"EventType": "user_modify_org", "UserId": ["u3", "u2"], "TimeStamp": stamp},
            {"EventType": "user_modify_org", "UserId": ["u2"], "TimeStamp": int(stamp) + 1},
            {"EventType": "user_leave_org", "UserId": ["u4"], "TimeStamp": stamp},
            {"EventType": "org_dept_modify", "DeptId": [2, 3], "TimeStamp": stamp},
        ]
        before = env.sim.calls["oapi.user.get"]
        events = [make_event("callback", e["EventType"], e) for e in legacy]
        await daemon.app.inbox.put_many(events)
        await daemon.drain()
        assert env.sim.calls["oapi.user.get"] - before == 2  # u2 and u3, once each
    users = directory_users(env)
    assert users["u2"]["name"] == "二号" and users["u3"]["depts"] == [3] and users["u4"]["left"]
    [(name,)] = env.sql("SELECT name FROM syncd.dingtalk_department WHERE dept_id = 2")
    assert name == "研发中心"
    assert env.sql("SELECT count(*) FROM syncd.inbox WHERE processed_at IS NULL") == [(0,)]
