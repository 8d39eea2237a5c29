"""Step one of the mapping: a kind's value sources read from one outbox row.

``resolve_row`` (at ingest, and again at submit, where the payload is the approval
round's copy) reads every configured source — a payload field or fields, a template over
the payload, an outbox column, a constant — so a missing field parks the row before any
DingTalk call. It checks only what needs no template: the originator, the department, the
approvers and cc. Typing the form values against the template is step two
(``syncd.pipeline.mapping.encode``). Every problem is a :class:`MappingError` naming the
field, the payload path and what to fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from syncd.errors import SyncdError
from syncd.settings_kinds import KindSettings, ValueSource

MISSING: Any = object()
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_INT64 = (-(2**63), 2**63 - 1)


class MappingError(SyncdError):
    """The outbox row does not fit the kind's form."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Absent:
    """A form value the payload does not have: left out, unless the template requires it."""

    paths: tuple[str, ...]


@dataclass(frozen=True)
class Resolved:
    """The values of one request, read from the payload, before type encoding."""

    originator: str
    dept_id: int | None
    form: dict[str, Any] = field(default_factory=dict)
    approvers: Sequence[tuple[str, list[str]]] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)


def lookup(payload: Any, path: str) -> Any:
    """The value at a dotted path (``items.0.name``), or ``MISSING``."""
    current = payload
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
    return current


def _read(source: ValueSource, payload: Any, columns: Mapping[str, Any], what: str) -> Any:
    if source.value is not None:
        return source.value
    if source.column is not None:
        value = columns.get(source.column)
        if value in (None, ""):
            raise MappingError(f"{what}: the outbox column {source.column!r} is empty", field=what)
        return value
    if source.template is not None:
        return _render(source.template, payload, what)
    if source.fields is not None:
        return [_required(payload, path, what) for path in source.fields]
    assert source.field is not None
    return _required(payload, source.field, what)


def _read_form(source: ValueSource, payload: Any, columns: Mapping[str, Any], label: str) -> Any:
    """A form value, or ``Absent`` when the payload lacks what it is made from."""
    missing = tuple(p for p in source.paths() if lookup(payload, p) in (MISSING, None))
    if missing:
        return Absent(missing)
    return _read(source, payload, columns, f"form {label!r}")


def _required(payload: Any, path: str, what: str) -> Any:
    value = lookup(payload, path)
    if value is MISSING or value is None:
        raise MappingError(f"{what}: payload has no value at {path!r}", field=what)
    return value


def _render(template: str, payload: Any, what: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        value = _required(payload, match[1], what)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return _PLACEHOLDER.sub(substitute, template)


def resolve(kind: KindSettings, payload: Any, columns: Mapping[str, Any]) -> Resolved:
    """Read originator, department, form values, approvers and cc from one outbox row."""
    if not isinstance(payload, Mapping):
        raise MappingError("payload: expected a JSON object", field="payload")
    originator = _read(kind.originator, payload, columns, "originator")
    if not isinstance(originator, str | int) or isinstance(originator, bool) or not originator:
        raise MappingError(
            f"originator: expected a DingTalk userId, got {_shown(originator)}", field="originator"
        )
    dept_id = _dept_id(_read(kind.dept_id, payload, columns, "dept_id"))
    form = {label: _read_form(src, payload, columns, label) for label, src in kind.form.items()}
    approvers = [
        (step.action, _user_list(step.users, step.field, payload, "approvers"))
        for step in kind.approvers
    ]
    cc = _user_list(kind.cc.users, kind.cc.field, payload, "cc") if kind.cc else []
    return Resolved(str(originator), dept_id, form, approvers, cc)


def _shown(value: Any) -> str:
    """A value as an error message quotes it: its start when long."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:80]}… ({len(text)} characters)"


def _dept_id(dept: Any) -> int:
    """A DingTalk department id (an int64), from a number or a text of digits."""
    try:
        dept_id = int(dept)
    except (TypeError, ValueError, OverflowError):
        dept_id = None
    if dept_id is None or isinstance(dept, bool) or not _INT64[0] <= dept_id <= _INT64[1]:
        raise MappingError(
            f"dept_id: expected a department number, got {_shown(dept)}", field="dept_id"
        )
    return dept_id


def _user_list(users: list[str] | None, path: str | None, payload: Any, what: str) -> list[str]:
    if path is None:
        return list(users or [])
    value = _required(payload, path, what)
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str | int) and str(v) for v in values):
        raise MappingError(f"{what}: {path!r} must be a user id or a list of user ids")
    return [str(v) for v in values]


class MappedRow(Protocol):
    """What a mapping reads: the payload, and the columns a ``column`` source names. At
    ingest an outbox row; at submit the approval round, whose payload is the row's and
    whose ``originator`` is the one ingest resolved."""

    @property
    def kind(self) -> str: ...

    @property
    def business_key(self) -> str: ...

    @property
    def originator(self) -> str | None: ...

    @property
    def payload(self) -> Any: ...


def resolve_row(kind: KindSettings, row: MappedRow) -> Resolved:
    """:func:`resolve` over one row's payload and columns: what ingest and submit call."""
    columns = {"originator": row.originator, "business_key": row.business_key, "kind": row.kind}
    return resolve(kind, row.payload, columns)
