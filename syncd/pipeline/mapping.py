"""From an outbox payload to DingTalk form values (contract §7.3), with precise errors.

Two steps. ``resolve`` (``syncd.pipeline.sources``; at ingest, no DingTalk call, and
again at submit) reads every configured source from the payload, so a missing field parks
the row at once. ``encode`` (here; at submit, with the template's form schema) turns each
value into the string DingTalk expects for the component's type and checks it: required
components, select options, numbers, dates, table children. Every problem is a
:class:`MappingError` naming the form field, the payload path and what to fix. Both steps
are importable from here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from syncd.dingtalk.models import FormComponent, FormComponentValue, FormSchema
from syncd.pipeline.sources import (
    MISSING,
    Absent,
    MappedRow,
    MappingError,
    Resolved,
    lookup,
    resolve,
    resolve_row,
)
from syncd.settings_kinds import KindSettings, ValueSource

__all__ = [
    "MISSING",
    "Absent",
    "MappedRow",
    "MappingError",
    "Resolved",
    "check_form",
    "components_by_label",
    "encode",
    "encode_value",
    "lookup",
    "resolve",
    "resolve_row",
]

_TEXT_LIMIT = 65535
_NOT_CREATABLE = frozenset({"TextNote"})


# --- encoding against the template's schema ----------------------------------------------


def _labels(component: FormComponent) -> set[str]:
    label = component.props.label or ""
    found = {label}
    try:
        parsed = json.loads(label)
    except ValueError:
        return found
    if isinstance(parsed, list):
        found.add(json.dumps(parsed, ensure_ascii=False, separators=(",", ":")))
    return found


def _key(label: str) -> str:
    try:
        parsed = json.loads(label)
    except ValueError:
        return label
    return (
        json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))
        if isinstance(parsed, list)
        else label
    )


def components_by_label(schema: FormSchema) -> dict[str, FormComponent]:
    found: dict[str, FormComponent] = {}
    for component in schema.schema_content.items:
        for label in _labels(component):
            found[label] = component
    return found


def encode(
    form: Mapping[str, Any],
    schema: FormSchema,
    *,
    columns: Mapping[str, Mapping[str, str]] | None = None,
    process_code: str = "",
) -> list[FormComponentValue]:
    """Encode resolved values for the template; refuse anything DingTalk would refuse."""
    by_label = components_by_label(schema)
    values: list[FormComponentValue] = []
    seen: set[str] = set()
    for label, raw in form.items():
        component = by_label.get(_key(label)) or by_label.get(label)
        if isinstance(raw, Absent) and component is not None:
            if component.props.required:
                raise MappingError(
                    f"form {label!r}: payload has no value at {raw.paths[0]!r}, and template "
                    f"{process_code} requires it",
                    field=label,
                )
            continue  # an optional component the payload has nothing for is left out
        if component is None:
            known = ", ".join(sorted(c.props.label or "" for c in schema.schema_content.items))
            raise MappingError(
                f"form {label!r}: template {process_code} has no such component; "
                f"its components are: {known}",
                field=label,
            )
        seen.add(component.props.id or component.props.label or label)
        table_columns = (columns or {}).get(label)
        text = encode_value(component, raw, f"form {label!r}", table_columns)
        values.append(FormComponentValue(name=component.props.label or label, value=text))
    _check_required(schema, seen)
    return values


def _check_required(schema: FormSchema, seen: set[str]) -> None:
    for component in schema.schema_content.items:
        key = component.props.id or component.props.label or ""
        if component.props.required and key not in seen:
            if component.component_name in _NOT_CREATABLE:
                continue
            label = component.props.label
            raise MappingError(
                f"form {label!r}: required by the template but not mapped in [kinds.<name>.form]",
                field=label or "",
            )


def encode_value(
    component: FormComponent, raw: Any, what: str, table_columns: Mapping[str, str] | None = None
) -> str:
    """One value as the string DingTalk expects for this component type (contract §7.3)."""
    kind = component.component_name
    if kind in _NOT_CREATABLE:
        raise MappingError(f"{what}: a {kind} cannot be set when creating an instance")
    if component.props.required and isinstance(raw, str) and not raw.strip():
        # DingTalk takes a blank value for no value, and refuses the create.
        raise MappingError(f"{what}: required by the template, but empty")
    encoder = _ENCODERS.get(kind, _text)
    text = encoder(component, raw, what, table_columns)
    if len(text) > _TEXT_LIMIT:
        raise MappingError(f"{what}: {len(text)} characters; DingTalk accepts at most 65535")
    return text


def _text(component: FormComponent, raw: Any, what: str, _: Any = None) -> str:
    if isinstance(raw, dict | list):
        raise MappingError(f"{what}: expected text, got a JSON {type(raw).__name__}")
    if raw is None:
        raise MappingError(f"{what}: expected text, got null")
    return raw if isinstance(raw, str) else json.dumps(raw)


def _number(component: FormComponent, raw: Any, what: str, _: Any = None) -> str:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str | Decimal):
        raise MappingError(f"{what}: expected a number, got {raw!r}")
    try:
        number = Decimal(str(raw).strip())
    except InvalidOperation:
        raise MappingError(f"{what}: expected a number, got {raw!r}") from None
    if not number.is_finite():
        raise MappingError(f"{what}: expected a finite number, got {raw!r}")
    return format(number, "f")


def _options(component: FormComponent) -> list[str]:
    return list(component.props.options)


def _select(component: FormComponent, raw: Any, what: str, _: Any = None) -> str:
    value = _text(component, raw, what)
    options = _options(component)
    if options and value not in options:
        raise MappingError(f"{what}: {value!r} is not an option; options are: {', '.join(options)}")
    return value


def _multi_select(component: FormComponent, raw: Any, what: str, _: Any = None) -> str:
    items = raw if isinstance(raw, list) else [raw]
    chosen = [_select(component, item, what) for item in items]
    return json.dumps(chosen, ensure_ascii=False)


def _date_text(component: FormComponent, raw: Any, what: str) -> str:
    if isinstance(raw, datetime | date):
        moment: date = raw
    elif isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw.strip().replace(" ", "T", 1))
        except ValueError:
            raise MappingError(f"{what}: expected a date like 2026-01-31, got {raw!r}") from None
    else:
        raise MappingError(f"{what}: expected a date like 2026-01-31, got {raw!r}")
    with_time = "HH" in (component.props.format or "") or component.props.unit in {"小时", "hour"}
    if with_time:
        if not isinstance(moment, datetime):
            moment = datetime(moment.year, moment.month, moment.day)
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.strftime("%Y-%m-%d")


def _date(component: FormComponent, raw: Any, what: str, _: Any = None) -> str:
    return _date_text(component, raw, what)


def _date_range(component: FormComponent, raw: Any, what: str, _: Any = None) -> str:
    if not isinstance(raw, list) or len(raw) != 2:
        raise MappingError(f"{what}: expected two dates (use fields = [start, end]), got {raw!r}")
    start, end = (_date_text(component, item, what) for item in raw)
    if end < start:
        raise MappingError(f"{what}: the range ends ({end}) before it starts ({start})")
    return json.dumps([start, end], ensure_ascii=False)


def _json_list(component: FormComponent, raw: Any, what: str, _: Any = None) -> str:
    items = raw if isinstance(raw, list) else [raw]
    if any(item in (None, "") for item in items):
        raise MappingError(f"{what}: expected a list without empty items, got {raw!r}")
    return json.dumps(items, ensure_ascii=False)


def _comma_list(component: FormComponent, raw: Any, what: str, _: Any = None) -> str:
    items = raw if isinstance(raw, list) else [raw]
    if any(isinstance(item, dict | list) or item in (None, "") for item in items):
        raise MappingError(f"{what}: expected a list of plain values, got {raw!r}")
    return ",".join(str(item) for item in items)


def _table(
    component: FormComponent, raw: Any, what: str, columns: Mapping[str, str] | None = None
) -> str:
    if not isinstance(raw, list) or not all(isinstance(row, Mapping) for row in raw):
        raise MappingError(f"{what}: expected a list of rows (JSON objects), got {raw!r}")
    rows = []
    for number, row in enumerate(raw, start=1):
        cells = []
        for child in component.children:
            label = child.props.label or ""
            key = (columns or {}).get(label, label)
            value = lookup(row, key)
            cell = f"{what} row {number} {label!r}"
            if value is MISSING or value is None:
                if child.props.required:
                    raise MappingError(f"{cell}: required, but row has no {key!r}")
                continue
            cells.append({"name": label, "value": encode_value(child, value, cell)})
        rows.append(cells)
    return json.dumps(rows, ensure_ascii=False)


Encoder = Callable[[FormComponent, Any, str, Any], str]

_ENCODERS: dict[str, Encoder] = {
    "TextField": _text,
    "TextareaField": _text,
    "PhoneField": _text,
    "NumberField": _number,
    "MoneyField": _number,
    "StarRatingField": _number,
    "DDSelectField": _select,
    "DDMultiSelectField": _multi_select,
    "DDDateField": _date,
    "DDDateRangeField": _date_range,
    "DDPhotoField": _json_list,
    "InnerContactField": _json_list,
    "RelateField": _json_list,
    "DDAttachment": _json_list,
    "DepartmentField": _comma_list,
    "AddressField": _comma_list,
    "TableField": _table,
}


def check_form(name: str, kind: KindSettings, schema: FormSchema) -> list[str]:
    """Problems with a kind's form mapping against its template, before any row arrives."""
    where = f"[kinds.{name}]"
    by_label = components_by_label(schema)
    problems: list[str] = []
    mapped: set[str] = set()
    for label, source in kind.form.items():
        component = by_label.get(_key(label)) or by_label.get(label)
        if component is None:
            problems.append(f"{where} form {label!r}: no such component in {kind.process_code}")
            continue
        mapped.add(component.props.id or component.props.label or label)
        problems += _check_source(where, label, source, component)
    if kind.correlation_field:
        component = by_label.get(kind.correlation_field)
        if component is None or component.component_name not in ("TextField", "TextareaField"):
            problems.append(
                f"{where} correlation_field {kind.correlation_field!r}: needs a text component "
                f"of that label in {kind.process_code}"
            )
        else:
            mapped.add(component.props.id or kind.correlation_field)
    for component in schema.schema_content.items:
        key = component.props.id or component.props.label or ""
        required = component.props.required and component.component_name not in _NOT_CREATABLE
        if required and key not in mapped:
            problems.append(
                f"{where} form: {component.props.label!r} is required by {kind.process_code} "
                "but not mapped"
            )
    return problems


def _check_source(
    where: str, label: str, source: ValueSource, component: FormComponent
) -> list[str]:
    if source.columns is not None:
        children = {c.props.label for c in component.children}
        return [
            f"{where} form {label!r}: table has no column {child!r}"
            for child in source.columns
            if child not in children
        ]
    if source.value is not None:
        try:
            encode_value(component, source.value, f"{where} form {label!r}")
        except MappingError as exc:
            return [exc.message]
    return []
