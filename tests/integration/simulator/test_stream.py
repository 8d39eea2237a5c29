"""The Stream gateway over a real socket (contract §11), driven by a fake clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from syncd.simulator import RunningServer, Simulator, World, serve
from syncd.testing import FakeClock

CREDS = {"clientId": "dingsimappkey0001", "clientSecret": "sim-app-secret-0001"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Simulator:
    return Simulator(World.default(), clock=clock)


@pytest.fixture
async def server(sim: Simulator) -> AsyncIterator[RunningServer]:
    async with serve(sim) as running:
        yield running


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        yield client


async def _open(http: httpx.AsyncClient) -> dict[str, Any]:
    r = await http.post(
        "/v1.0/gateway/connections/open",
        json=CREDS
        | {
            "subscriptions": [{"type": "EVENT", "topic": "*"}],
            "ua": "test",
            "localIp": "10.0.0.5",
        },
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.fixture
async def ws(http: httpx.AsyncClient, sim: Simulator) -> AsyncIterator[ClientConnection]:
    opened = await _open(http)
    async with connect(f"{opened['endpoint']}?ticket={quote_plus(opened['ticket'])}") as conn:
        async with asyncio.timeout(5):
            await sim.wait_for(lambda: bool(sim.stream.live()))
        yield conn


async def _frame(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(5):
        return dict(json.loads(await ws.recv()))


async def _ack(
    ws: ClientConnection, frame: dict[str, Any], status: str = "SUCCESS", code: int = 200
) -> None:
    await ws.send(
        json.dumps(
            {
                "code": code,
                "message": "OK",
                "headers": {
                    "messageId": frame["headers"]["messageId"],
                    "contentType": "application/json",
                },
                "data": json.dumps({"status": status, "message": "ok"}),
            }
        )
    )


def _emit(sim: Simulator, kind: str = "start") -> None:
    sim._emit("bpms_instance_change", {"processInstanceId": "pi-1", "type": kind})


async def test_open_returns_loopback_endpoint(http, server) -> None:
    opened = await _open(http)
    assert opened["endpoint"] == server.ws_url
    assert opened["ticket"]
    r = await http.post("/v1.0/gateway/connections/open", json=CREDS | {"clientSecret": "x"})
    assert r.status_code == 401
    assert r.json()["code"] == "authFailed"


async def test_event_frame_and_ack(ws, sim) -> None:
    _emit(sim)
    await sim.advance(0)
    frame = await _frame(ws)
    assert frame["type"] == "EVENT" and frame["specVersion"] == "1.0"
    headers = frame["headers"]
    assert all(isinstance(v, str) for v in headers.values())
    assert headers["topic"] == "*" and headers["eventType"] == "bpms_instance_change"
    assert headers["eventCorpId"] == "dingsimcorp0001"
    assert int(headers["eventBornTime"]) > 0 and int(headers["time"]) > 0
    assert isinstance(frame["data"], str)
    assert json.loads(frame["data"]) == {
        "processInstanceId": "pi-1",
        "type": "start",
        "eventId": headers["eventId"],
        "resource": "/v1.0/event/bpms_instance_change/processCode//type/start",
    }
    await _ack(ws, frame)
    async with asyncio.timeout(5):
        await sim.wait_for(lambda: len(sim.events_acknowledged) == 1)
    await sim.advance(30)  # no redelivery after a good ACK
    assert len([p for p in sim.events_pushed if p["transport"] == "stream"]) == 1


async def test_redelivery_without_ack_and_on_later(ws, sim) -> None:
    _emit(sim)
    await sim.advance(0)
    first = await _frame(ws)
    await sim.advance(10)
    second = await _frame(ws)
    assert second["headers"]["eventId"] == first["headers"]["eventId"]
    assert second["headers"]["messageId"] != first["headers"]["messageId"]
    await _ack(ws, second, status="LATER")
    async with asyncio.timeout(5):
        await sim.wait_for(lambda: any(f.get("reason") == "LATER" for f in sim.events_failed))
    await sim.advance(5)
    third = await _frame(ws)
    assert third["headers"]["eventId"] == first["headers"]["eventId"]
    await _ack(ws, third, code=500)
    async with asyncio.timeout(5):
        await sim.wait_for(lambda: len(sim.events_failed) == 2)
    await sim.advance(5)
    fourth = await _frame(ws)
    await _ack(ws, fourth)
    async with asyncio.timeout(5):
        await sim.wait_for(lambda: len(sim.events_acknowledged) == 1)


async def test_ping_frames(ws, sim) -> None:
    await sim.advance(30)
    frame = await _frame(ws)
    assert frame["type"] == "SYSTEM" and frame["headers"]["topic"] == "ping"
    assert "opaque" in json.loads(frame["data"])


async def test_disconnect_then_close_and_reconnect(ws, sim, http) -> None:
    r = await http.post("/_sim/stream/disconnect")
    assert r.json() == {"connections": 1}
    frame = await _frame(ws)
    assert frame["headers"]["topic"] == "disconnect"
    assert json.loads(frame["data"]) == {"reason": "connection is expired"}
    await sim.advance(10)
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(5):
            await ws.recv()
    _emit(sim)
    await sim.advance(0)  # kept until a new connection opens
    opened = await _open(http)
    async with connect(f"{opened['endpoint']}?ticket={quote_plus(opened['ticket'])}") as again:
        frame = await _frame(again)
        assert frame["type"] == "EVENT"


async def test_drop(ws, http) -> None:
    await http.post("/_sim/stream/drop")
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(5):
            await ws.recv()


async def test_tickets_are_single_use_and_expire(http, clock) -> None:
    opened = await _open(http)
    url = f"{opened['endpoint']}?ticket={quote_plus(opened['ticket'])}"
    async with connect(url):
        pass
    with pytest.raises(InvalidStatus):
        async with connect(url):
            pass
    stale = await _open(http)
    clock.advance(91)
    with pytest.raises(InvalidStatus):
        async with connect(f"{stale['endpoint']}?ticket={quote_plus(stale['ticket'])}"):
            pass


async def test_silent_connection(ws, sim) -> None:
    sim.faults.update(stream_silent=True)
    _emit(sim)
    await sim.advance(30)
    assert sim.events_pushed[0]["sent"] is False
    sim.faults.update(stream_silent=False)
    await sim.advance(10)
    frame = await _frame(ws)
    assert frame["type"] == "EVENT"


async def test_periodic_disconnects(sim, http) -> None:
    sim.faults.update(stream_disconnect_every=60)
    opened = await _open(http)
    async with connect(f"{opened['endpoint']}?ticket={quote_plus(opened['ticket'])}") as conn:
        async with asyncio.timeout(5):
            await sim.wait_for(lambda: bool(sim.stream.live()))
        await sim.advance(60)
        frames = [await _frame(conn), await _frame(conn)]
        assert [f["headers"]["topic"] for f in frames] == ["ping", "disconnect"]


async def test_create_response_lost_over_tcp(sim, http) -> None:
    token = (
        await http.post(
            "/v1.0/oauth2/accessToken",
            json={"appKey": CREDS["clientId"], "appSecret": CREDS["clientSecret"]},
        )
    ).json()["accessToken"]
    sim.faults.update(create_response_lost_rate=1.0)
    with pytest.raises(httpx.TransportError):
        await http.post(
            "/v1.0/workflow/processInstances",
            headers={"x-acs-dingtalk-access-token": token},
            json={
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
    assert len(sim.instances()) == 1


async def test_contact_changes_arrive_as_event_frames(ws, sim) -> None:
    """Contact-change events (contract §16.3) ride the same frames: ids only in ``data``."""
    sim.directory.modify_user("u1", job_number="E001")
    sim.directory.remove_user("u1")
    await sim.advance(0)
    frames = [await _frame(ws), await _frame(ws)]
    assert [f["headers"]["eventType"] for f in frames] == ["user_modify_org", "user_leave_org"]
    left = json.loads(frames[1]["data"])
    assert left["userId"] == ["u1"] and left["timeStamp"].isdigit()
    assert json.loads(frames[0]["data"])["diffInfo"]["curr"] == {"jobNumber": "E001"}
    for frame in frames:
        await _ack(ws, frame)
    async with asyncio.timeout(5):
        await sim.wait_for(lambda: len(sim.events_acknowledged) == 2)


START_FIELDS = {
    "processInstanceId",
    "processCode",
    "type",
    "staffId",
    "createTime",
    "title",
    "businessId",
    "bizCategoryId",
    "businessType",
    "url",
    "eventId",
    "resource",
}


async def test_a_start_in_dingtalk_arrives_over_stream(ws, sim, http) -> None:
    """An instance a person starts in DingTalk (the admin API, as the page does) sends the
    ``start`` event with the fields of contract §20.1, and shows in the id listing."""
    r = await http.post(
        "/_sim/instances",
        json={
            "processCode": "PROC-SIM-LEAVE",
            "userId": "u2",
            "formComponentValues": [
                {"name": "请假类型", "value": "事假"},
                {"name": '["开始时间","结束时间"]', "value": '["2026-02-02","2026-02-03"]'},
                {"name": "天数", "value": "2"},
            ],
        },
    )
    assert r.status_code == 201, r.text
    summary = r.json()
    assert summary["startedIn"] == "client"
    await sim.advance(0)
    frame = await _frame(ws)
    data = json.loads(frame["data"])
    assert frame["headers"]["eventType"] == "bpms_instance_change"
    assert set(data) == START_FIELDS  # no result, no finishTime on start
    assert data["type"] == "start" and data["staffId"] == "u2"
    assert data["processInstanceId"] == summary["instanceId"]
    assert data["processCode"] == "PROC-SIM-LEAVE" and data["title"] == "李四提交的请假"
    assert data["eventId"] == frame["headers"]["eventId"]
    assert (
        data["resource"] == "/v1.0/event/bpms_instance_change/processCode/PROC-SIM-LEAVE/type/start"
    )
    assert len(data["businessId"]) == 21 and data["businessId"].isdigit()
    assert f"procInstId={summary['instanceId']}" in data["url"]
    assert (data["bizCategoryId"], data["businessType"]) == ("", "")
    assert data["createTime"] == summary["createTime"]
