"""What a capture is and the DDL that installs it: pure, no I/O.

A capture of ``kind`` on a table is up to four AFTER ROW triggers (submit and cancel, on
INSERT and UPDATE) that call ``syncd.capture_row(kind, key column, action)``, and one
condition function per action that has a condition, next to the table. This module names
those objects (within PostgreSQL's 63-byte identifiers, so they can be found again) and
renders the statements that create and drop them; ``syncd.db.capture`` runs them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from psycopg import sql

CAPTURE_ROLE = "syncd_capture"
CAPTURE_FUNCTION = "syncd.capture_row()"
SEARCH_PATH = "pg_catalog, pg_temp"
# Quotes a condition's body; a condition containing it is refused.
DOLLAR_TAG = "$syncd_cond$"

_MAX_IDENTIFIER = 63


@dataclass(frozen=True)
class CaptureSpec:
    """What ``capture add`` was asked: the outbox kind, the table as given (the caller's
    search_path applies), its key column and the optional SQL conditions on ``NEW``."""

    kind: str
    table: str
    key: str
    when: str | None = None
    cancel_when: str | None = None


@dataclass(frozen=True)
class Target:
    """The captured table as found in the catalog, with its key column."""

    schema: str
    table: str
    key: str

    @property
    def qualified(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.table)


@dataclass(frozen=True)
class _Trigger:
    action: str  # submit | cancel
    event: str  # INSERT | UPDATE
    suffix: str


# Triggers of one event fire in name order: submit before cancel, as one change may do both.
_TRIGGERS = (
    _Trigger("submit", "INSERT", ""),
    _Trigger("submit", "UPDATE", "_update"),
    _Trigger("cancel", "INSERT", "_cancel"),
    _Trigger("cancel", "UPDATE", "_update_cancel"),
)


def _truncate(name: str) -> str:
    """The name PostgreSQL keeps (63 bytes), so we can find the object again by it."""
    return name.encode()[:_MAX_IDENTIFIER].decode(errors="ignore")


def trigger_name(kind: str, suffix: str = "") -> str:
    """The INSERT trigger that submits is the registered one; the others share its prefix."""
    return _truncate(f"syncd_capture_{kind}{suffix}")


def _short_name(base: str, kind: str, target: Target, suffix: str) -> str:
    """A readable, unique function name within PostgreSQL's 63-byte identifier limit."""
    digest = hashlib.sha1(f"{target.schema}.{target.table}.{kind}".encode()).hexdigest()[:8]
    limit = _MAX_IDENTIFIER - len(suffix) - 9
    short = base if len(base.encode()) <= limit else base.encode()[:limit].decode(errors="ignore")
    return f"{short}_{digest}{suffix}"


def condition_function(kind: str, target: Target, action: str) -> str:
    """The condition function of one action, in the table's own schema."""
    suffix = "_when" if action == "submit" else "_cancel"
    return _short_name(f"syncd_capture_{target.table}_{kind}", kind, target, suffix)


def legacy_function_name(kind: str, target: Target, suffix: str = "") -> str:
    """Functions of captures installed before migration 0006, in the syncd schema."""
    return _short_name(f"capture_{target.schema}_{target.table}_{kind}", kind, target, suffix)


def _condition_ddl(name: str, target: Target, condition: str) -> sql.Composed:
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION {schema}.{name}(new {table}) RETURNS boolean\n"
        "    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp\n"
        "    AS {tag}SELECT ({body}){tag};"
    ).format(
        schema=sql.Identifier(target.schema),
        name=sql.Identifier(name),
        table=target.qualified,
        tag=sql.SQL(DOLLAR_TAG),
        body=sql.SQL(condition),
    )


def _condition_call(name: str, target: Target, row: str) -> sql.Composed:
    return sql.SQL("{}.{}({})").format(
        sql.Identifier(target.schema), sql.Identifier(name), sql.SQL(row)
    )


def drop_function(schema: str, name: str, target: Target | None) -> sql.Composed:
    """Drop ``schema.name(target's row)``, or ``schema.name()`` without a target."""
    signature = sql.SQL("()") if target is None else sql.SQL("({})").format(target.qualified)
    return sql.SQL("DROP FUNCTION IF EXISTS {}.{}{};").format(
        sql.Identifier(schema), sql.Identifier(name), signature
    )


def cleanup_ddl(kind: str, target: Target, legacy: list[tuple[str, bool]]) -> list[sql.Composed]:
    """Drop the triggers of this kind on this table, and functions of earlier versions."""
    statements = [
        sql.SQL("DROP TRIGGER IF EXISTS {} ON {};").format(
            sql.Identifier(trigger_name(kind, t.suffix)), target.qualified
        )
        for t in _TRIGGERS
    ]
    for name, takes_row in legacy:
        statements.append(drop_function("syncd", name, target if takes_row else None))
    return statements


def build_ddl(
    spec: CaptureSpec, target: Target, legacy: list[tuple[str, bool]] | None = None
) -> list[sql.Composed]:
    """The statements that install (or replace) the capture triggers."""
    statements = cleanup_ddl(spec.kind, target, legacy or [])
    conditions = {"submit": spec.when, "cancel": spec.cancel_when}
    for action, condition in conditions.items():
        name = condition_function(spec.kind, target, action)
        if condition is None:
            statements.append(drop_function(target.schema, name, target))
        else:
            statements.append(_condition_ddl(name, target, condition))
            # Writers call it (WHEN clause): keep it theirs whatever the default privileges.
            statements.append(
                sql.SQL("GRANT EXECUTE ON FUNCTION {}.{}({}) TO PUBLIC;").format(
                    sql.Identifier(target.schema), sql.Identifier(name), target.qualified
                )
            )
    for trigger in _TRIGGERS:
        condition = conditions[trigger.action]
        if condition is None and (trigger.action == "cancel" or trigger.event == "UPDATE"):
            continue  # no --when: every INSERT is captured and no UPDATE; no cancel at all
        statements.append(_trigger_ddl(spec, target, trigger, condition is not None))
    return statements


def removal_ddl(kind: str, target: Target, legacy: list[tuple[str, bool]]) -> list[sql.Composed]:
    """The statements that drop every trigger and function of this kind on this table."""
    statements = cleanup_ddl(kind, target, legacy)
    for action in ("submit", "cancel"):
        name = condition_function(kind, target, action)
        statements.append(drop_function(target.schema, name, target))
    return statements


def _trigger_ddl(
    spec: CaptureSpec, target: Target, trigger: _Trigger, conditional: bool
) -> sql.Composed:
    when: sql.Composable = sql.SQL("")
    if conditional:
        function = condition_function(spec.kind, target, trigger.action)
        becomes = sql.SQL("{} IS TRUE").format(_condition_call(function, target, "NEW"))
        if trigger.event == "UPDATE":
            becomes = sql.SQL("{} AND {} IS NOT TRUE").format(
                becomes, _condition_call(function, target, "OLD")
            )
        when = sql.SQL("\n    WHEN ({})").format(becomes)
    return sql.SQL(
        "CREATE TRIGGER {trigger}\n    AFTER {event} ON {table}\n    FOR EACH ROW{when}\n"
        "    EXECUTE FUNCTION syncd.capture_row({kind}, {key}, {action});"
    ).format(
        trigger=sql.Identifier(trigger_name(spec.kind, trigger.suffix)),
        event=sql.SQL(trigger.event),
        table=target.qualified,
        when=when,
        kind=sql.Literal(spec.kind),
        key=sql.Literal(target.key),
        action=sql.Literal(trigger.action),
    )
