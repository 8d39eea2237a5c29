"""The demo's simulated tenant: the built-in world with quick, varied decision rules.

People and templates come from the simulator's default world, plus a leave template of
its own for requests people start in DingTalk (the demo's inbound kind). The rules decide most
requests within seconds, refuse some and leave a few for a person on the simulator's
page. Rules apply at every approval node, so a two-node flow takes twice the delay.
"""

from __future__ import annotations

from typing import Any, cast

from syncd.simulator import World

LEAVE = "PROC-SIM-LEAVE"
EXPENSE = "PROC-SIM-EXPENSE"
#: Leave started in DingTalk itself: a template of its own, so that no outbound create's
#: instance can be mistaken for one started in DingTalk (docs/inbound.md).
LEAVE_IN = "PROC-SIM-LEAVE-DT"
AGREE_DELAY = 2.0
REFUSE_DELAY = 3.0


def _leave_rules(process_code: str) -> list[dict[str, Any]]:
    return [
        {
            "process_code": process_code,
            "field": "天数",
            "op": "ge",
            "value": "10",
            "decision": "manual",
        },
        {
            "process_code": process_code,
            "field": "天数",
            "op": "gt",
            "value": "5",
            "decision": "refuse",
            "delay": REFUSE_DELAY,
            "remark": "假期过长，请拆分申请",
        },
        {"process_code": process_code, "op": "any", "delay": AGREE_DELAY, "remark": "同意"},
    ]


# The first matching rule wins; "manual" leaves the request to a person.
DEMO_RULES: list[dict[str, Any]] = [
    *_leave_rules(LEAVE),
    *_leave_rules(LEAVE_IN),
    {
        "process_code": EXPENSE,
        "field": "金额（元）",
        "op": "gt",
        "value": "10000",
        "decision": "refuse",
        "delay": REFUSE_DELAY,
        "remark": "金额超出标准",
    },
    {
        "process_code": EXPENSE,
        "field": "金额（元）",
        "op": "gt",
        "value": "5000",
        "decision": "manual",
    },
    {"process_code": EXPENSE, "op": "any", "delay": AGREE_DELAY, "remark": "同意"},
]


def demo_world() -> World:
    """The default world's people and templates, the leave template for requests started
    in DingTalk, and the demo's rules."""
    data = World.default().dump()
    templates = cast(list[dict[str, Any]], data["templates"])
    leave = next(t for t in templates if t["process_code"] == LEAVE)
    templates.append(
        {
            **leave,
            "process_code": LEAVE_IN,
            "name": "请假（钉钉发起）",
            "form_uuid": "FORM-SIM-LEAVE-DT",
            "components": [c for c in leave["components"] if c["label"] != "业务编号"],
        }
    )
    data["rules"] = DEMO_RULES
    return World.model_validate(data)
