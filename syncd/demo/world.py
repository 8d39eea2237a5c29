"""The demo's simulated tenant: the built-in world with quick, varied decision rules.

People and templates come from the simulator's default world. The rules decide most
requests within seconds, refuse some and leave a few for a person on the simulator's
page. Rules apply at every approval node, so a two-node flow takes twice the delay.
"""

from __future__ import annotations

from typing import Any

from syncd.simulator import World

LEAVE = "PROC-SIM-LEAVE"
EXPENSE = "PROC-SIM-EXPENSE"
AGREE_DELAY = 2.0
REFUSE_DELAY = 3.0

# The first matching rule wins; "manual" leaves the request to a person.
DEMO_RULES: list[dict[str, Any]] = [
    {"process_code": LEAVE, "field": "天数", "op": "ge", "value": "10", "decision": "manual"},
    {
        "process_code": LEAVE,
        "field": "天数",
        "op": "gt",
        "value": "5",
        "decision": "refuse",
        "delay": REFUSE_DELAY,
        "remark": "假期过长，请拆分申请",
    },
    {"process_code": LEAVE, "op": "any", "delay": AGREE_DELAY, "remark": "同意"},
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
    """The default world's people and templates with the demo's rules."""
    data = World.default().dump()
    data["rules"] = DEMO_RULES
    return World.model_validate(data)
