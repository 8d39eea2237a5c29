"""Step one of the mapping: a kind's value sources read from one outbox row.

``resolve_row`` (at ingest, and again at submit, where the payload is the approval
round's copy) reads every configured source — a payload field or fields, a template over
the payload, an outbox column, a constant — so a missing field parks the row before any
DingTalk call. It checks only what needs no template: the originator, the department, the
approvers and cc, and that each person's value can be what the kind's ``by`` says (an
email with an ``@``, a mobile number; :mod:`syncd.pipeline.naming`). Typing the form
values against the template is step two (``syncd.pipeline.mapping.encode``); translating
people named by job number, mobile or email into userIds is done at submit
(:mod:`syncd.pipeline.lookup`). Every problem is a :class:`MappingError` naming the field,
the payload path and what to fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from syncd.errors import SyncdError
from syncd.pipeline.naming import Named, Slot, check_named
from syncd.settings_kinds import KindSettings, ValueSource

MISSING: Any = object()
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_INT64 = (-(2**63), 2**63 - 1)


class MappingError(SyncdError):
    """The outbox row does not fit the kind's form."""

    def __init__(self, message: str, *, field: str = "", code: str = "bad_payload") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


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
    #: Every person (and a department named by name) as the row names them.
    named: tuple[Named, ...] = ()

    def translated(self, answers: Mapping[Slot, str | int]) -> Resolved:
        """These values with the people (and department) in ``answers`` replaced."""
        approvers = [
            (action, [str(answers.get(("approvers", i, j), u)) for j, u in enumerate(users)])
            for i, (action, users) in enumerate(self.approvers)
        ]
        dept = answers.get(("dept_id", 0, 0), self.dept_id)
        return replace(
            self,
            originator=str(answers.get(("originator", 0, 0), self.originator)),
            dept_id=int(dept) if dept is not None else None,
            approvers=approvers,
            cc=[str(answers.get(("cc", 0, j), u)) for j, u in enumerate(self.cc)],
        )


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
    by = kind.originator_by
    originator = _read(kind.originator, payload, columns, "originator")
    empty = originator == "" and by == "userid"  # else the look-up's check names the fix
    if not isinstance(originator, str | int) or isinstance(originator, bool) or empty:
        what = "a DingTalk userId" if by == "userid" else f"a {by.replace('_', ' ')}"
        raise MappingError(
            f"originator: expected {what}, got {_shown(originator)}", field="originator"
        )
    origin = _source(kind.originator)
    named = [Named("originator", by, str(originator), origin, ("originator", 0, 0))]
    dept_id, dept_named = _department(kind, payload, columns)
    named += dept_named
    form = {label: _read_form(src, payload, columns, label) for label, src in kind.form.items()}
    approvers = []
    for i, step in enumerate(kind.approvers):
        users = _user_list(step.users, step.field, payload, "approvers", step.by)
        role, where = f"approvers step {i + 1}", _list_source(step.field)
        named += [Named(role, step.by, u, where, ("approvers", i, j)) for j, u in enumerate(users)]
        approvers.append((step.action, users))
    cc = _user_list(kind.cc.users, kind.cc.field, payload, "cc", kind.cc.by) if kind.cc else []
    if kind.cc:
        where = _list_source(kind.cc.field)
        named += [Named("cc", kind.cc.by, u, where, ("cc", 0, j)) for j, u in enumerate(cc)]
    for person in named:
        if (problem := check_named(person)) is not None:
            raise MappingError(problem, field=person.role, code="bad_identifier")
    return Resolved(str(originator), dept_id, form, approvers, cc, tuple(named))


def _source(source: ValueSource) -> str:
    """Where a value source reads, as a message names it."""
    if source.field is not None:
        return f"payload path {source.field!r}"
    if source.column is not None:
        return f"outbox column {source.column!r}"
    if source.template is not None:
        return f"template {source.template!r}"
    if source.fields is not None:
        return f"payload paths {', '.join(source.fields)}"
    return "the kind's value"


def _list_source(path: str | None) -> str:
    return f"payload path {path!r}" if path is not None else "the kind's users"


def _department(
    kind: KindSettings, payload: Any, columns: Mapping[str, Any]
) -> tuple[int | None, list[Named]]:
    """The department id, or (for ``by = "name"``) none yet and the name to look up."""
    dept = _read(kind.dept_id, payload, columns, "dept_id")
    if kind.dept_by == "dept_id":
        return _dept_id(dept), []
    if not isinstance(dept, str) or not dept.strip():
        raise MappingError(
            f"dept_id: expected a department name such as '研发部/后端组', got {_shown(dept)} "
            f"({_source(kind.dept_id)})",
            field="dept_id",
        )
    return None, [Named("dept_id", "name", dept, _source(kind.dept_id), ("dept_id", 0, 0))]


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


def _user_list(
    users: list[str] | None, path: str | None, payload: Any, what: str, by: str
) -> list[str]:
    if path is None:
        return list(users or [])
    value = _required(payload, path, what)
    values = value if isinstance(value, list) else [value]
    empty_ok = by != "userid"  # an empty job number, mobile or email: the check names the fix
    if not values or not all(isinstance(v, str | int) and (str(v) or empty_ok) for v in values):
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
