"""Validation of ``formComponentValues`` against a template (contract §3.1 and §7.3)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.simulator.world import Component, Template

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_NOT_CREATABLE = {"TextNote"}


class FormError(Exception):
    """A form value failed validation; ``code`` is the DingTalk error code."""

    def __init__(self, code: str, label: str, reason: str = "", *, say: bool = False) -> None:
        # ``say``: the message names the reason too (attachments: "附件不存在…")
        super().__init__(f"表单数据校验失败，失败控件：{label}" + (f"（{reason}）" if say else ""))
        self.code = code
        self.label = label
        self.reason = reason


@dataclass(frozen=True)
class Lookups:
    """What form values may refer to."""

    users: Container[str]
    departments: Container[int]
    instances: Container[str]
    #: Checks a DDAttachment value (raises ValueError saying why); none: any JSON array.
    attachment: Callable[[str], object] | None = None


def _json(value: str, label: str) -> Any:
    try:
        return json.loads(value)
    except ValueError as exc:
        raise FormError("formConverterError", label, "not JSON") from exc


def _string_list(value: str, label: str) -> list[str]:
    parsed = _json(value, label)
    if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
        raise FormError("formConverterError", label, "expected a JSON array of strings")
    return parsed


def _check_date(text: str, unit: str, label: str) -> None:
    formats = ["%Y-%m-%d"] if unit == "day" else ["%Y-%m-%d %H:%M", "%Y-%m-%d"]
    for fmt in formats:
        try:
            datetime.strptime(text, fmt)
            return
        except ValueError:
            continue
    raise FormError("formConverterError", label, f"bad date {text!r}")


def _number(c: Component, value: str, _: Lookups) -> None:
    if not _NUMBER.match(value.strip()):
        raise FormError("formConverterError", c.label_text, "not a number")


def _select(c: Component, value: str, _: Lookups) -> None:
    if value not in c.options:
        raise FormError("formConverterError", c.label_text, "not an option")


def _multi_select(c: Component, value: str, _: Lookups) -> None:
    items = _string_list(value, c.label_text)
    if not items or any(item not in c.options for item in items):
        raise FormError("formConverterError", c.label_text, "not an option")


def _date(c: Component, value: str, _: Lookups) -> None:
    _check_date(value, c.unit, c.label_text)


def _date_range(c: Component, value: str, _: Lookups) -> None:
    items = _string_list(value, c.label_text)
    if len(items) != 2:
        raise FormError("formConverterError", c.label_text, "expected two dates")
    for item in items:
        _check_date(item, c.unit, c.label_text)
    if items[0] > items[1]:
        raise FormError("formConverterError", c.label_text, "range ends before it starts")


def _json_list(c: Component, value: str, _: Lookups) -> None:
    if not isinstance(_json(value, c.label_text), list):
        raise FormError("formConverterError", c.label_text, "expected a JSON array")


def _attachment(c: Component, value: str, lookups: Lookups) -> None:
    if lookups.attachment is None:
        _json_list(c, value, lookups)
        return
    try:
        lookups.attachment(value)
    except ValueError as exc:
        raise FormError("formConverterError", c.label_text, str(exc), say=True) from exc


def _contacts(c: Component, value: str, lookups: Lookups) -> None:
    for user_id in _string_list(value, c.label_text):
        if user_id not in lookups.users:
            raise FormError("processInstanceInvalidParameter", c.label_text, "unknown user")


def _departments(c: Component, value: str, lookups: Lookups) -> None:
    for part in value.split(","):
        if not part.strip().lstrip("-").isdigit() or int(part) not in lookups.departments:
            raise FormError("processInstanceInvalidParameter", c.label_text, "unknown department")


def _related(c: Component, value: str, lookups: Lookups) -> None:
    for instance_id in _string_list(value, c.label_text):
        if instance_id not in lookups.instances:
            raise FormError("formConverterError", c.label_text, "unknown instance")


def _table(c: Component, value: str, lookups: Lookups) -> None:
    rows = _json(value, c.label_text)
    if not isinstance(rows, list):
        raise FormError("formConverterError", c.label_text, "expected a 2-D array")
    for row in rows:
        if not isinstance(row, list):
            raise FormError("formConverterError", c.label_text, "expected a 2-D array")
        cells = [cell for cell in row if isinstance(cell, dict)]
        if len(cells) != len(row):
            raise FormError("formConverterError", c.label_text, "cells need name and value")
        _validate_values(c.children, cells, lookups)


def _free(c: Component, value: str, _: Lookups) -> None:
    return None


_CHECKS: dict[str, Callable[[Component, str, Lookups], None]] = {
    "NumberField": _number,
    "MoneyField": _number,
    "StarRatingField": _number,
    "DDSelectField": _select,
    "DDMultiSelectField": _multi_select,
    "DDDateField": _date,
    "DDDateRangeField": _date_range,
    "DDPhotoField": _json_list,
    "DDAttachment": _attachment,
    "TimeAndLocationField": _json_list,
    "InnerContactField": _contacts,
    "DepartmentField": _departments,
    "RelateField": _related,
    "TableField": _table,
}


def _find(components: list[Component], name: str) -> Component | None:
    for component in components:
        if component.label_text == name:
            return component
        if isinstance(component.label, list):
            try:
                if json.loads(name) == component.label:
                    return component
            except ValueError:
                continue
    return None


def _validate_values(
    components: list[Component], values: list[dict[str, Any]], lookups: Lookups
) -> list[tuple[Component, dict[str, Any]]]:
    matched: list[tuple[Component, dict[str, Any]]] = []
    for item in values:
        name, value = item.get("name"), item.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            raise FormError("formConverterError", str(name), "name and value must be strings")
        component = _find(components, name)
        if component is None or component.type in _NOT_CREATABLE:
            raise FormError("illegalComponent", name, "no such component")
        if len(value) > 65535:
            raise FormError("formConverterError", name, "value too long")
        if value.strip():
            _CHECKS.get(component.type, _free)(component, value, lookups)
        matched.append((component, item))
    present = {c.label_text for c, item in matched if str(item["value"]).strip()}
    for component in components:
        if component.required and component.label_text not in present:
            raise FormError("formConverterError", component.label_text, "required")
    return matched


def validate_form(
    template: Template, values: list[dict[str, Any]], lookups: Lookups
) -> list[dict[str, str]]:
    """Check the values; return them as GET shows them (id, name, value, componentType...)."""
    if len(values) > 150:
        raise FormError("formConverterError", "formComponentValues", "more than 150 values")
    matched = _validate_values(template.components, values, lookups)
    return [
        {
            "id": component.component_id,
            "name": component.label_text,
            "value": str(item["value"]),
            "extValue": str(item.get("extValue") or ""),
            "componentType": component.type,
            "bizAlias": component.biz_alias,
        }
        for component, item in matched
    ]
