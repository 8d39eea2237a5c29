"""The admin API (``/_sim/...``) and the web page."""

from __future__ import annotations


async def test_list_and_show_instances(api, client) -> None:
    first = await api.create_id()
    await api.create_id(originatorUserId="u2", deptId=2)
    r = await client.get("/_sim/instances", params={"originator": "u1"})
    assert [i["instanceId"] for i in r.json()["instances"]] == [first]
    r = await client.get("/_sim/instances", params={"processCode": "PROC-SIM-EXPENSE"})
    assert len(r.json()["instances"]) == 2
    r = await client.get("/_sim/instances", params={"status": "COMPLETED"})
    assert r.json()["instances"] == []
    r = await client.get(f"/_sim/instances/{first}")
    assert r.json()["detail"]["status"] == "RUNNING"
    assert (await client.get("/_sim/instances/nope")).status_code == 404


async def test_decide_by_json(api, client, sim) -> None:
    instance_id = await api.create_id(formComponentValues=api.expense_form("5000"))
    r = await client.post(f"/_sim/instances/{instance_id}/approve", json={"userId": "manager1"})
    assert r.status_code == 200 and r.json()["pendingApprovers"] == ["finance1", "finance2"]
    r = await client.post(f"/_sim/instances/{instance_id}/refuse", json={"remark": "no"})
    assert r.json()["status"] == "COMPLETED" and r.json()["result"] == "refuse"
    r = await client.post(f"/_sim/instances/{instance_id}/approve", json={})
    assert r.status_code == 409
    assert (await client.post("/_sim/instances/nope/approve", json={})).status_code == 404
    assert (await client.post(f"/_sim/instances/{instance_id}/dance")).status_code == 404


async def test_calls_and_events(api, client, sim) -> None:
    await api.create_id()
    await api.get("x")
    calls = (await client.get("/_sim/calls")).json()["calls"]
    assert calls["workflow.create"] == 1 and calls["workflow.get"] == 1
    assert calls["oauth2.accessToken"] == 1
    events = (await client.get("/_sim/events")).json()
    assert events["events"][0]["eventType"] == "bpms_instance_change"
    assert events["pushed"] == [] and events["acknowledged"] == []


async def test_fault_switches(api, client, sim) -> None:
    r = await client.patch("/_sim/faults", json={"error_5xx_rate": 1.0, "monthly_quota": 10})
    assert r.json()["faults"]["error_5xx_rate"] == 1.0
    assert r.json()["limits"]["monthly_quota"] == 10
    api.error(await api.get("x"), 500, "systemError")
    assert (await client.post("/_sim/faults/reset")).json()["faults"]["error_5xx_rate"] == 0
    assert (await client.patch("/_sim/faults", json={"bogus": 1})).status_code == 400
    assert (await client.get("/_sim/faults")).json()["limits"]["qps_per_api"] == 20


async def test_stream_state(client, sim) -> None:
    state = (await client.get("/_sim/stream")).json()
    assert state == {"connections": [], "inflight": 0, "backlog": {}}
    assert (await client.post("/_sim/stream/disconnect")).json() == {"connections": 0}
    assert (await client.post("/_sim/stream/drop")).json() == {"connections": 0}
    assert (await client.post("/_sim/stream/x")).status_code == 404


async def test_world(client) -> None:
    world = (await client.get("/_sim/world")).json()
    assert world["corp"]["corp_id"] == "dingsimcorp0001"
    assert len(world["users"]) == 12
