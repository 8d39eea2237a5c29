"""HTTP callback push (contract §9): crypto, both signature names, retries, failed list."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from syncd.dingtalk.crypto import CallbackCrypto
from syncd.simulator import Simulator, World
from syncd.simulator.callbacks import CallbackCheckError
from syncd.simulator.world import Department

APP_KEY = "dingsimappkey0001"


class Receiver:
    """A callback endpoint like the daemon's: checks, decrypts, answers ``success``."""

    def __init__(self) -> None:
        self.crypto = CallbackCrypto(
            "simtoken123", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", APP_KEY
        )
        self.received: list[dict[str, Any]] = []
        self.params: list[dict[str, str]] = []
        self.mode = "ok"
        self.app = Starlette(routes=[Route("/cb", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> JSONResponse:
        q = dict(request.query_params)
        self.params.append(q)
        encrypted = (await request.json())["encrypt"]
        msg = self.crypto.decrypt_verified(
            q["msg_signature"], q["timestamp"], q["nonce"], encrypted
        )
        if self.mode == "500":
            return JSONResponse({}, status_code=500)
        self.received.append(json.loads(msg))
        reply = "fail" if self.mode == "wrong" else "success"
        return JSONResponse(self.crypto.reply(reply, timestamp=q["timestamp"]))


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def sim(world: World, clock, receiver: Receiver) -> Simulator:
    world.apps[0].stream = False
    world.apps[0].callback_url = "http://daemon/cb"
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app))
    return Simulator(world, clock=clock, callback_client=client)


async def test_events_are_pushed_encrypted_and_acknowledged(api, sim, receiver) -> None:
    instance_id = await api.create_id()
    await sim.advance(0)
    assert [m["EventType"] for m in receiver.received] == [
        "bpms_instance_change",
        "bpms_task_change",
        "bpms_task_change",
    ]
    first = receiver.received[0]
    assert first["CorpId"] == "dingsimcorp0001" and first["eventId"]
    assert first["processInstanceId"] == instance_id and first["type"] == "start"
    assert isinstance(first["EventTime"], int) and isinstance(first["createTime"], int)
    params = receiver.params[0]
    assert params["signature"] == params["msg_signature"]
    assert {"timestamp", "nonce"} <= set(params)
    assert len(sim.events_acknowledged) == 3


@pytest.mark.parametrize("mode", ["500", "wrong"])
async def test_retries_then_failed_list(api, sim, receiver, client, token, mode) -> None:
    receiver.mode = mode
    await api.create_id(formComponentValues=api.expense_form("5000"))
    await sim.advance(0)
    assert len(sim.events_pushed) == 3 and not sim.events_acknowledged
    await sim.advance(9.9)
    assert len(sim.events_pushed) == 3
    await sim.advance(0.1)
    assert len(sim.events_pushed) == 6
    await sim.advance(29.9)
    assert len(sim.events_pushed) == 6
    await sim.advance(0.1)
    assert len(sim.events_pushed) == 9
    assert len(sim.events_failed) == 3
    r = await client.get(
        "https://oapi.dingtalk.com/call_back/get_call_back_failed_result",
        params={"access_token": token},
    )
    body = r.json()
    assert r.status_code == 200 and body["errcode"] == 0 and body["has_more"] is False
    item = body["failed_list"][0]
    assert item["call_back_tag"] == "bpms_instance_change"
    assert item["bpms_instance_change"]["corpid"] == "dingsimcorp0001"
    assert item["bpms_instance_change"]["bpmsCallBackData"]["type"] == "start"
    again = (
        await client.get("/call_back/get_call_back_failed_result", params={"access_token": token})
    ).json()
    assert again["failed_list"] == []


async def test_retry_that_succeeds_stops(api, sim, receiver) -> None:
    receiver.mode = "500"
    await api.create_id(formComponentValues=api.expense_form("5000"))
    await sim.advance(0)
    receiver.mode = "ok"
    await sim.advance(10)
    assert len(receiver.received) == 3 and len(sim.events_acknowledged) == 3
    await sim.advance(100)
    assert not sim.events_failed


async def test_time_scale_shortens_retries(world, clock, receiver) -> None:
    world.apps[0].callback_url = "http://daemon/cb"
    world.apps[0].stream = False
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app))
    sim = Simulator(world, clock=clock, time_scale=0.01, callback_client=client)
    receiver.mode = "500"
    sim.workflow.create(
        APP_KEY,
        {
            "processCode": "PROC-SIM-EXPENSE",
            "originatorUserId": "u1",
            "deptId": -1,
            "formComponentValues": [
                {"name": "金额（元）", "value": "5000"},
                {"name": "费用类型", "value": "差旅"},
                {"name": "发生日期", "value": "2026-01-02"},
            ],
        },
    )
    await sim.advance(0.4)
    assert len(sim.events_failed) == 3
    await client.aclose()


async def test_failed_list_pages_of_200(sim, client, token) -> None:
    from syncd.simulator.events import Event, failed_item

    event = Event("e", "bpms_task_change", "c", sim.clock.now(), {"type": "start"})
    sim.callbacks.failed[APP_KEY] = [failed_item(event)] * 250
    path = "/call_back/get_call_back_failed_result"
    first = (await client.get(path, params={"access_token": token})).json()
    assert len(first["failed_list"]) == 200 and first["has_more"] is True
    second = (await client.get(path, params={"access_token": token})).json()
    assert len(second["failed_list"]) == 50 and second["has_more"] is False


async def test_failed_list_token_errors(client) -> None:
    path = "/call_back/get_call_back_failed_result"
    assert (await client.get(path)).json()["errcode"] == 41001
    r = await client.get(path, params={"access_token": "bad"})
    assert r.status_code == 200 and r.json()["errcode"] == 40014


async def test_unreachable_url_counts_as_failure(world, clock) -> None:
    world.apps[0].callback_url = "http://127.0.0.1:9/cb"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    sim = Simulator(world, clock=clock, callback_client=client)
    sim.callbacks.set_url(APP_KEY, "http://127.0.0.1:9/cb")
    sim._emit("bpms_instance_change", {"type": "start", "processInstanceId": "p"})
    await sim.advance(40)
    assert len(sim.events_failed) == 1
    await client.aclose()


# --- registering a URL: the check_url push (§9.5) ------------------------------------------

REGISTER = f"/_sim/apps/{APP_KEY}/callback"


async def test_registering_a_url_checks_it_first(sim, client, receiver) -> None:
    sim.callbacks.set_url(APP_KEY, None)
    r = await client.put(REGISTER, json={"url": "http://daemon/cb"})
    assert r.status_code == 200 and r.json() == {"appKey": APP_KEY, "url": "http://daemon/cb"}
    assert receiver.received == [{"EventType": "check_url"}]
    params = receiver.params[0]
    assert params["signature"] == params["msg_signature"] and params["nonce"]
    assert sim.events_pushed == [] and sim.events == []  # a check is not an event
    r = await client.put(REGISTER, json={"url": None})
    assert r.json()["url"] is None and len(receiver.received) == 1  # stopping needs no check


@pytest.mark.parametrize(
    ("mode", "url", "says"),
    [
        ("wrong", "http://daemon/cb", "a reply that decrypts to 'fail', not 'success'"),
        ("500", "http://daemon/cb", "HTTP 500, not 200"),
        ("ok", "http://daemon/elsewhere", "HTTP 404: nothing is served at this path"),
    ],
)
async def test_a_url_that_does_not_answer_success_is_not_registered(
    sim, client, receiver, mode, url, says
) -> None:
    receiver.mode = mode
    r = await client.put(REGISTER, json={"url": url})
    assert r.status_code == 400 and r.json()["reason"] == "reply"
    assert r.json()["error"].startswith(
        f"callback URL not registered: {url} answered the check_url push with {says}"
    )
    assert sim.callbacks.url(APP_KEY) == "http://daemon/cb"  # the URL in use stays


@pytest.mark.parametrize(
    ("error", "reason", "says"),
    [
        (httpx.ConnectError("connection refused"), "unreachable", "cannot reach"),
        (httpx.ReadTimeout("timed out"), "timeout", "did not answer the check_url push within"),
    ],
)
async def test_unreachable_or_slow_urls_are_not_registered(
    world, clock, error, reason, says
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    async with httpx.AsyncClient(transport=httpx.MockTransport(fail)) as http:
        sim = Simulator(world, clock=clock, callback_client=http)
        url = "http://user:pw-secret@10.9.9.9:8080/dingtalk/callback?key=q-secret"
        with pytest.raises(CallbackCheckError) as caught:
            await sim.callbacks.register(APP_KEY, url)
    assert caught.value.reason == reason and says in str(caught.value)
    assert "http://10.9.9.9:8080/dingtalk/callback" in str(caught.value)
    assert "secret" not in str(caught.value)  # user info and query may hold secrets
    assert sim.callbacks.url(APP_KEY) is None


async def test_only_http_urls_and_known_apps(client) -> None:
    for url in ("ftp://daemon/cb", "daemon/cb", "http://"):
        r = await client.put(REGISTER, json={"url": url})
        assert r.status_code == 400 and r.json()["reason"] == "invalid", url
    assert (await client.put(REGISTER, json={"url": 5})).status_code == 400
    assert (await client.put("/_sim/apps/nope/callback", json={})).status_code == 404


async def test_contact_changes_are_pushed_in_the_current_shape(sim, receiver) -> None:
    """``EventType``, ``EventTime``, ``CorpId``, ``eventId``, then the lower-camel business
    keys (contract §16.2): ``userId`` a list of strings, ``deptId`` a list of numbers."""
    sim.directory.remove_user("u1")
    sim.directory.add_department(Department(dept_id=40, name="法务部", parent_id=1))
    await sim.advance(0)
    left, created = receiver.received
    assert left["EventType"] == "user_leave_org" and left["userId"] == ["u1"]
    assert isinstance(left["timeStamp"], str) and left["CorpId"] == "dingsimcorp0001"
    assert created["EventType"] == "org_dept_create" and created["deptId"] == [40]
    assert all(m["eventId"] and isinstance(m["EventTime"], int) for m in receiver.received)
    assert len(sim.events_acknowledged) == 2


async def test_a_start_in_dingtalk_is_pushed_and_listed(api, sim, receiver, clock) -> None:
    """A person starts an instance in DingTalk itself: the ``start`` event comes over HTTP
    with the business fields of contract §20.1 (no ``result``/``finishTime``), and the
    instance id is in the listing; GET gives the form the event lacks."""
    from .conftest import leave_form

    instance = sim.start("PROC-SIM-LEAVE", "u3", leave_form("1"))
    await sim.advance(0)
    start = receiver.received[0]
    assert start["EventType"] == "bpms_instance_change" and start["type"] == "start"
    business = {
        "processInstanceId": instance.instance_id,
        "processCode": "PROC-SIM-LEAVE",
        "staffId": "u3",
        "title": "王五提交的请假",
        "businessId": instance.business_id,
        "bizCategoryId": "",
        "businessType": "",
    }
    assert {k: start[k] for k in business} == business
    assert isinstance(start["createTime"], int) and "procInstId=" in start["url"]
    assert "result" not in start and "finishTime" not in start
    r = await api.post(
        "/v1.0/workflow/processes/instanceIds/query",
        {"processCode": "PROC-SIM-LEAVE", "startTime": 0, "nextToken": 0, "maxResults": 20}
        | {"startTime": int(clock.now().timestamp() * 1000) - 60_000},
    )
    assert r.json()["result"]["list"] == [instance.instance_id]
    got = (await api.get(instance.instance_id)).json()["result"]
    assert got["originatorUserId"] == "u3"
    assert {"name": "天数", "value": "1"}.items() <= next(
        v for v in got["formComponentValues"] if v["name"] == "天数"
    ).items()


async def test_a_start_in_dingtalk_is_checked_like_a_create(sim) -> None:
    from syncd.simulator.responses import ApiError

    from .conftest import leave_form

    with pytest.raises(ApiError, match="invalidParameter: 用户已离职"):
        sim.start("PROC-SIM-LEAVE", "left1", leave_form())
    with pytest.raises(ApiError, match="formConverterError"):
        sim.start("PROC-SIM-LEAVE", "u1", leave_form("x"))
    assert sim.instances() == []
