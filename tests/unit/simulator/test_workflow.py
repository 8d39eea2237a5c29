"""Create, get, list, terminate, comment and schema: bodies and errors (contract §3-§7)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

LIST = "/v1.0/workflow/processes/instanceIds/query"
TERMINATE = "/v1.0/workflow/processInstances/terminate"
COMMENT = "/v1.0/workflow/processInstances/comments"


async def test_create_and_get_shape(api, sim) -> None:
    instance_id = await api.create_id()
    r = await api.get(instance_id)
    assert r.status_code == 200
    body = r.json()
    assert body["success"] == "true"
    result = body["result"]
    assert result["status"] == "RUNNING" and result["result"] == ""
    assert "finishTime" not in result
    assert isinstance(result["createTime"], str) and result["createTime"].endswith("Z")
    assert result["originatorUserId"] == "u1" and result["originatorDeptId"] == "-1"
    assert all(isinstance(v["value"], str) for v in result["formComponentValues"])
    assert {t["userId"] for t in result["tasks"]} == {"manager1", "manager2"}
    assert all(isinstance(t["taskId"], int) for t in result["tasks"])
    assert result["operationRecords"][0]["type"] == "START_PROCESS_INSTANCE"
    assert [i.instance_id for i in sim.instances("PROC-SIM-EXPENSE", "u1")] == [instance_id]


async def test_create_response_has_only_instance_id(api) -> None:
    r = await api.create()
    assert set(r.json()) == {"instanceId"}


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"processCode": "PROC-NOPE"}, "processCodeError"),
        ({"originatorUserId": "ghost"}, "processInstanceInvalidParameter"),
        ({"originatorUserId": "left1"}, "invalidParameter"),
        ({"deptId": None}, "invalidParameter"),
        ({"deptId": 3}, "processInstanceInvalidParameter"),
        ({"deptId": 99}, "processInstanceInvalidParameter"),
        ({"formComponentValues": None}, "invalidParameter"),
        ({"microappAgentId": 1}, "invalidAgentId"),
        ({"bizDetailPageUrl": "https://x"}, "benefitStatusInvalid"),
        (
            {"approvers": [{"actionType": "XOR", "userIds": ["u2"]}]},
            "processInstanceInvalidParameter",
        ),
        (
            {"approvers": [{"actionType": "AND", "userIds": ["ghost"]}]},
            "processInstanceInvalidParameter",
        ),
    ],
)
async def test_create_errors(api, overrides, code) -> None:
    api.error(await api.create(**overrides), 400, code)


async def test_disabled_template(api, sim) -> None:
    template = sim.world.template("PROC-SIM-LEAVE")
    template.status = "INVALID"
    api.error(await api.create(processCode="PROC-SIM-LEAVE"), 400, "processGetFailed")


async def test_create_without_dept_needs_approvers(api) -> None:
    body = {
        "processCode": "PROC-SIM-EXPENSE",
        "originatorUserId": "u1",
        "formComponentValues": api.expense_form(),
    }
    r = await api.post("/v1.0/workflow/processInstances", body)
    api.error(r, 400, "invalidParameter")
    body["approvers"] = [{"actionType": "AND", "userIds": ["u2", "u3"]}]
    body["ccList"] = ["u4"]
    r = await api.post("/v1.0/workflow/processInstances", body)
    assert r.status_code == 200
    result = (await api.get(r.json()["instanceId"])).json()["result"]
    assert result["approverUserIds"] == ["u2", "u3"]
    assert result["ccUserIds"] == ["u4"]


@pytest.mark.parametrize(
    ("values", "code"),
    [
        (
            [{"name": "费用类型", "value": "差旅"}, {"name": "发生日期", "value": "2026-01-02"}],
            "formConverterError",
        ),  # required amount missing
        ("amount:abc", "formConverterError"),
        ("费用类型:旅游", "formConverterError"),
        ("发生日期:2026/01/02", "formConverterError"),
        ("不存在:x", "illegalComponent"),
        ('明细:[[{"name":"项目","value":"机票"}]]', "formConverterError"),  # child required
        ("明细:not json", "formConverterError"),
        ("附件:{}", "formConverterError"),
    ],
)
async def test_form_validation(api, values, code) -> None:
    if isinstance(values, str):
        name, value = values.split(":", 1)
        if name == "amount":
            values = api.expense_form(amount=value)
        else:
            values = api.expense_form(**{name: value})
    r = await api.create(formComponentValues=values)
    api.error(r, 400, code)
    if code == "formConverterError":
        assert r.json()["message"].startswith("表单数据校验失败，失败控件：")


async def test_value_must_be_a_string(api) -> None:
    values = api.expense_form()
    values[0]["value"] = 100
    api.error(await api.create(formComponentValues=values), 400, "formConverterError")


async def test_table_and_date_range_accepted(api) -> None:
    table = [[{"name": "项目", "value": "机票"}, {"name": "金额", "value": "1200.50"}]]
    values = api.expense_form(明细=json.dumps(table, ensure_ascii=False))
    assert (await api.create(formComponentValues=values)).status_code == 200
    r = await api.create(processCode="PROC-SIM-LEAVE", formComponentValues=api.leave_form())
    assert r.status_code == 200
    bad = api.leave_form()
    bad[1]["value"] = json.dumps(["2026-01-07", "2026-01-06"])
    api.error(
        await api.create(processCode="PROC-SIM-LEAVE", formComponentValues=bad),
        400,
        "formConverterError",
    )
    bad[1] = {"name": "开始时间", "value": json.dumps(["2026-01-06", "2026-01-07"])}
    api.error(
        await api.create(processCode="PROC-SIM-LEAVE", formComponentValues=bad),
        400,
        "illegalComponent",
    )


async def test_multi_select_contacts_departments(sim, api) -> None:
    from syncd.simulator.world import Component

    template = sim.world.template("PROC-SIM-EXPENSE")
    template.components += [
        Component(type="DDMultiSelectField", label="多选", options=["a", "b"]),
        Component(type="InnerContactField", label="联系人"),
        Component(type="DepartmentField", label="部门"),
    ]
    ok = api.expense_form(多选='["a","b"]', 联系人='["u2"]', 部门="2,3")
    assert (await api.create(formComponentValues=ok)).status_code == 200
    for change in ({"多选": '["c"]'}, {"多选": "a"}):
        r = await api.create(formComponentValues=api.expense_form(**change))
        api.error(r, 400, "formConverterError")
    for change in ({"联系人": '["ghost"]'}, {"部门": "2,99"}):
        r = await api.create(formComponentValues=api.expense_form(**change))
        api.error(r, 400, "processInstanceInvalidParameter")


async def test_get_unknown_instance(api) -> None:
    api.error(await api.get("nope"), 400, "processInstanceNotExist")


async def test_list_pages_and_types(api, sim, clock) -> None:
    ids = []
    for _ in range(25):
        ids.append(await api.create_id())
        clock.advance(1)
    start = int((clock.now() - timedelta(days=1)).timestamp() * 1000)
    body = {"processCode": "PROC-SIM-EXPENSE", "startTime": start, "nextToken": 0, "maxResults": 20}
    r = await api.post(LIST, body)
    page = r.json()
    assert page["success"] is True
    assert page["result"]["list"] == ids[:20]
    assert page["result"]["nextToken"] == "20"
    page2 = (await api.post(LIST, body | {"nextToken": 20})).json()
    assert page2["result"]["list"] == ids[20:]
    assert "nextToken" not in page2["result"]
    filtered = (await api.post(LIST, body | {"userIds": ["u2"]})).json()
    assert filtered["result"]["list"] == []
    running = (await api.post(LIST, body | {"statuses": ["COMPLETED"]})).json()
    assert running["result"]["list"] == []


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"maxResults": 21}, "invalidMaxResults"),
        ({"maxResults": 0}, "invalidMaxResults"),
        ({"nextToken": -1}, "invalidNextToken"),
        ({"nextToken": "x"}, "invalidNextToken"),
        ({"processCode": "PROC-NOPE"}, "invalidProcessCode"),
        ({"processCode": ""}, "invalidProcessCode"),
        ({"userIds": [f"u{i}" for i in range(11)]}, "invalidUserIds"),
        ({"startDaysAgo": 121}, "invalidInstanceListIdsStartTime"),
        ({"startDaysAgo": 200, "spanDays": 121}, "invalidEndTime"),
        ({"startDaysAgo": 400, "spanDays": 10}, "invalidInstanceListIdsStartTime"),
        ({"startDaysAgo": 10, "spanDays": -1}, "invalidEndTime"),
    ],
)
async def test_list_rules(api, clock, change, code) -> None:
    now_ms = int(clock.now().timestamp() * 1000)
    day = 86_400_000
    start = now_ms - change.pop("startDaysAgo", 1) * day
    body = {"processCode": "PROC-SIM-EXPENSE", "startTime": start, "nextToken": 0, "maxResults": 20}
    if "spanDays" in change:
        body["endTime"] = start + change.pop("spanDays") * day
    body.update(change)
    api.error(await api.post(LIST, body), 400, code)


async def test_terminate_rules(api, sim, clock) -> None:
    instance_id = await api.create_id()
    body = {"processInstanceId": instance_id, "isSystem": False, "operatingUserId": "u1"}
    api.error(await api.post(TERMINATE, body), 400, "aflowProcessInstStatusException")
    clock.advance(15)
    api.error(
        await api.post(TERMINATE, body | {"operatingUserId": "u2"}),
        400,
        "invalidInstanceTerminateOperatingUserId",
    )
    api.error(await api.post(TERMINATE, body | {"operatingUserId": "ghost"}), 400, "userNotExist")
    api.error(
        await api.post(TERMINATE, {"processInstanceId": "nope", "isSystem": True}),
        400,
        "aflowProcessInstNotExist",
    )
    api.error(await api.post(TERMINATE, {"isSystem": True}), 400, "invalidInstanceId")
    r = await api.post(TERMINATE, body | {"remark": "no longer needed"})
    assert r.status_code == 200 and r.json() == {"result": True, "success": True}
    result = (await api.get(instance_id)).json()["result"]
    assert result["status"] == "TERMINATED" and "finishTime" in result
    assert result["operationRecords"][-1]["type"] == "TERMINATE_PROCESS_INSTANCE"
    api.error(await api.post(TERMINATE, body), 400, "aflowProcessInstStatusException")
    kinds = [(e.event_type, e.data["type"]) for e in sim.events]
    assert kinds[-1] == ("bpms_instance_change", "terminate")
    assert "result" not in sim.events[-1].data


async def test_terminate_as_system_and_template_forbidding_revoke(api, sim, clock) -> None:
    sim.world.template("PROC-SIM-EXPENSE").allow_revoke = False
    instance_id = await api.create_id()
    clock.advance(20)
    body = {"processInstanceId": instance_id, "isSystem": False, "operatingUserId": "u1"}
    api.error(await api.post(TERMINATE, body), 400, "internalError")
    r = await api.post(TERMINATE, {"processInstanceId": instance_id, "isSystem": True})
    assert r.json() == {"result": True, "success": True}


async def test_comment(api) -> None:
    instance_id = await api.create_id()
    body = {"processInstanceId": instance_id, "text": "please hurry", "commentUserId": "u1"}
    r = await api.post(COMMENT, body)
    assert r.json() == {"result": True, "success": True}
    records = (await api.get(instance_id)).json()["result"]["operationRecords"]
    assert records[-1]["type"] == "ADD_REMARK" and records[-1]["remark"] == "please hurry"
    api.error(await api.post(COMMENT, body | {"commentUserId": "ghost"}), 400, "userNotExist")
    api.error(await api.post(COMMENT, body | {"text": ""}), 400, "invalidInstanceCommentText")
    api.error(
        await api.post(COMMENT, body | {"processInstanceId": "x"}), 400, "aflowProcessInstNotExist"
    )


async def test_schema(api, client) -> None:
    path = "/v1.0/workflow/forms/schemas/processCodes"
    r = await client.get(path, params={"processCode": "PROC-SIM-EXPENSE"}, headers=api.auth)
    result = r.json()["result"]
    assert "success" not in r.json()
    assert result["formCode"] == "PROC-SIM-EXPENSE" and result["status"] == "PUBLISHED"
    assert isinstance(result["gmtCreate"], str)
    items = result["schemaContent"]["items"]
    table = next(i for i in items if i["componentName"] == "TableField")
    assert [c["props"]["label"] for c in table["children"]] == ["项目", "金额"]
    select = next(i for i in items if i["componentName"] == "DDSelectField")
    assert select["props"]["options"] == ["差旅", "餐饮", "办公用品"]
    r = await client.get(path, params={"processCode": "PROC-NOPE"}, headers=api.auth)
    api.error(r, 400, "aflowProcessCodeIsError")
