"""Rules that decide instances without a person: the first matching rule wins."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from typing import Any

from syncd.simulator.state import Instance
from syncd.simulator.world import Rule


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}


def _compare(op: str, actual: str, expected: str) -> bool:
    """Compare as numbers when both sides are numbers, else as text."""
    if op == "any":
        return True
    if op == "contains":
        return expected in actual
    left, right = _as_number(actual), _as_number(expected)
    if left is not None and right is not None:
        return _OPS[op](left, right)
    return _OPS[op](actual, expected)


def _field_value(instance: Instance, label: str) -> str | None:
    for item in instance.form:
        if item["name"] == label:
            return item["value"]
        if item["name"].startswith("["):
            try:
                if label in json.loads(item["name"]):
                    return item["value"]
            except ValueError:
                continue
    return None


def matches(rule: Rule, instance: Instance) -> bool:
    if rule.process_code is not None and rule.process_code != instance.process_code:
        return False
    if rule.field is None:
        return True
    value = _field_value(instance, rule.field)
    return value is not None and _compare(rule.op, value, rule.value)


def decide(rules: list[Rule], instance: Instance) -> Rule | None:
    """The rule that decides this instance, or None to leave it for a person."""
    rule = next((r for r in rules if matches(r, instance)), None)
    if rule is None or rule.decision == "manual":
        return None
    return rule
