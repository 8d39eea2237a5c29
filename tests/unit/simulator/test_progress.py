"""Instances move node by node; rules, the Python API and events (contract §10)."""

from __future__ import annotations

import pytest

from syncd.simulator import Simulator, World
from syncd.simulator.progress import DecisionError


def _kinds(sim: Simulator) -> list[tuple[str, str, str | None, str]]:
    return [
        (e.event_type.split("_")[1], e.data["type"], e.data.get("result"), e.data["staffId"])
        for e in sim.events
    ]


async def test_or_then_and_sign_by_hand(api, sim) -> None:
    sim.world.rules.clear()
    instance_id = await api.create_id(formComponentValues=api.expense_form("5000"))
    sim.approve(instance_id, "manager2", "ok")
    instance = sim.instance(instance_id)
    assert [t.status for t in instance.tasks[:2]] == ["CANCELED", "COMPLETED"]
    sim.approve(instance_id, "finance1")
    assert instance.status == "RUNNING"
    with pytest.raises(DecisionError):
        sim.approve(instance_id, "finance1")
    sim.approve(instance_id, "finance2")
    assert (instance.status, instance.result) == ("COMPLETED", "agree")
    assert _kinds(sim) == [
        ("instance", "start", None, "u1"),
        ("task", "start", None, "manager1"),
        ("task", "start", None, "manager2"),
        ("task", "finish", "agree", "manager2"),
        ("task", "cancel", None, "manager1"),
        ("task", "start", None, "finance1"),
        ("task", "start", None, "finance2"),
        ("task", "finish", "agree", "finance1"),
        ("task", "finish", "agree", "finance2"),
        ("instance", "finish", "agree", "u1"),
    ]
    result = (await api.get(instance_id)).json()["result"]
    assert result["status"] == "COMPLETED" and result["result"] == "agree"
    assert [r["type"] for r in result["operationRecords"]].count("EXECUTE_TASK_NORMAL") == 3
    assert len({e.event_id for e in sim.events}) == len(sim.events)


async def test_refuse_ends_the_instance(api, sim) -> None:
    sim.world.rules.clear()
    instance_id = await api.create_id(formComponentValues=api.expense_form("5000"))
    sim.approve(instance_id)
    sim.refuse(instance_id, "finance2", "no")
    instance = sim.instance(instance_id)
    assert (instance.status, instance.result) == ("COMPLETED", "refuse")
    assert sim.events[-1].data["result"] == "refuse"
    assert "finishTime" in sim.events[-1].data
    assert sim.events[-2].data["type"] == "cancel"
    with pytest.raises(DecisionError):
        sim.approve(instance_id)
    with pytest.raises(DecisionError):
        sim.approve("nope")


async def test_rule_agrees_after_delay_on_every_node(api, sim) -> None:
    instance_id = await api.create_id(formComponentValues=api.expense_form("800"))
    await sim.advance(19)
    assert sim.instance(instance_id).status == "RUNNING"
    await sim.advance(1)
    assert sim.instance(instance_id).current_node == 1
    await sim.advance(20)
    instance = sim.instance(instance_id)
    assert (instance.status, instance.result) == ("COMPLETED", "agree")
    assert [r.type for r in instance.records][-2:] == ["EXECUTE_TASK_NORMAL", "PROCESS_CC"]
    assert instance.records[-2].remark == "同意"


async def test_rule_refuses_by_form_value(api, sim) -> None:
    instance_id = await api.create_id(formComponentValues=api.expense_form("20000"))
    await sim.advance(60)
    instance = sim.instance(instance_id)
    assert (instance.status, instance.result) == ("COMPLETED", "refuse")


async def test_no_matching_rule_leaves_it_for_a_person(api, sim) -> None:
    instance_id = await api.create_id(formComponentValues=api.expense_form("5000"))
    await sim.advance(3600)
    assert sim.instance(instance_id).status == "RUNNING"


async def test_time_scale_shrinks_rule_delays(clock) -> None:
    sim = Simulator(World.default(), clock=clock, time_scale=0.01)
    values = [
        {"name": "请假类型", "value": "年假"},
        {"name": '["开始时间","结束时间"]', "value": '["2026-01-06","2026-01-07"]'},
        {"name": "天数", "value": "1"},
    ]
    instance = sim.workflow.create(
        "dingsimappkey0001",
        {
            "processCode": "PROC-SIM-LEAVE",
            "originatorUserId": "u2",
            "deptId": 2,
            "formComponentValues": values,
        },
    )
    await sim.advance(0.6)
    assert (instance.status, instance.result) == ("COMPLETED", "agree")


async def test_terminate_by_hand_cancels_tasks(api, sim) -> None:
    instance_id = await api.create_id(formComponentValues=api.expense_form("5000"))
    sim.terminate(instance_id, remark="withdrawn")
    instance = sim.instance(instance_id)
    assert instance.status == "TERMINATED"
    assert all(t.status == "CANCELED" for t in instance.tasks)
    assert sim.events[-1].data["type"] == "terminate"


async def test_rule_matching() -> None:
    from syncd.simulator.rules import _compare

    assert _compare("gt", "10.5", "10")
    assert not _compare("gt", "9", "10")
    assert _compare("le", "3", "3")
    assert _compare("eq", "年假", "年假")
    assert _compare("contains", "hello world", "world")
    assert _compare("ne", "a", "b")
    assert _compare("any", "", "")


async def test_instance_events_carry_the_aflow_link_and_task_events_none(api, sim) -> None:
    instance_id = await api.create_id(formComponentValues=api.expense_form("5000"))
    sim.terminate(instance_id)
    link = (  # the pattern of real Stream events (contract A6), for this corp and instance
        "https://aflow.dingtalk.com/dingtalk/mobile/homepage.htm?corpid=dingsimcorp0001"
        "&dd_share=false&showmenu=false&dd_progress=false&back=native"
        f"&procInstId={instance_id}&taskId=&swfrom=isv&dinghash=approval&dtaction=os"
        "&dd_from=#approval"
    )
    urls = [(e.event_type, e.data["type"], e.data.get("url")) for e in sim.events]
    assert [u for u in urls if u[0] == "bpms_instance_change"] == [
        ("bpms_instance_change", "start", link),
        ("bpms_instance_change", "terminate", link),
    ]
    assert {u[2] for u in urls if u[0] == "bpms_task_change"} == {None}
