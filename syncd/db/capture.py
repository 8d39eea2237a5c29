"""Capture triggers: business-table changes become outbox rows in the same transaction.

``syncd capture add`` installs, on a business table, AFTER ROW triggers that call
``syncd.capture_row(kind, key column, action)``, which inserts an outbox row (payload =
the row as jsonb, ``business_key`` = the key column). A row is captured when the ``when``
condition *becomes* true: on INSERT if it holds for the new row, on UPDATE if it holds for
the new row and did not for the old one. So syncd's own write-back into the same row, or
any other update, never submits twice. An optional ``cancel_when`` condition emits
``action = 'cancel'`` rows the same way.

Who runs what (docs/security.md has the reasoning):

- ``syncd.capture_row()`` is ``SECURITY DEFINER``, owned by the NOLOGIN role
  ``syncd_capture`` (migration 0006), which may do nothing but insert into the outbox.
  Nothing runs inside it but ``to_jsonb(NEW)``, and so the casts to json of the row's
  column types — code the table's owner can write, which gets only what that role has.
  ``check_capture_role`` refuses to install while the role or the function has more.
- A condition becomes a SQL function of the row, next to the table, with
  ``search_path = pg_catalog, pg_temp``; the triggers' WHEN clauses call it, so it runs
  as whoever writes the row. It is validated with that same search_path, so a wrong
  column, an unqualified table or a syntax error is reported before anything changes.

Everything runs in one transaction: all or nothing.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from syncd.db.queries import QUERIES
from syncd.errors import CaptureError

logger = logging.getLogger(__name__)

CAPTURE_ROLE = "syncd_capture"
CAPTURE_FUNCTION = "syncd.capture_row()"
SEARCH_PATH = "pg_catalog, pg_temp"

_DOLLAR_TAG = "$syncd_cond$"
_BOOLEAN_OID = 16
_MAX_IDENTIFIER = 63
# What the capture role must have, and all it may have, in the current database.
_ROLE_NEEDS = {
    "table syncd.outbox": ("INSERT",),
    "schema syncd": ("USAGE",),
    "function syncd.capture_row()": ("OWNER",),
}
_ROLE_FIXES = {
    "table syncd.outbox": "GRANT INSERT ON syncd.outbox TO {role}",
    "schema syncd": "GRANT USAGE ON SCHEMA syncd TO {role}",
    "function syncd.capture_row()": "run syncd migrate as the database owner",
}
# Errors that mean a name was not found with the pinned search_path.
_LOOKUP_ERRORS = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedFunction,
    psycopg.errors.UndefinedObject,
    psycopg.errors.InvalidSchemaName,
)


@dataclass(frozen=True)
class CaptureSpec:
    kind: str
    table: str
    key: str
    when: str | None = None
    cancel_when: str | None = None


@dataclass(frozen=True)
class Target:
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


async def resolve(conn: psycopg.AsyncConnection[Any], table: str, key: str) -> Target:
    """Find the table and key column, or explain what is wrong."""
    row = await (await conn.execute(QUERIES["select_table"], {"name": table})).fetchone()
    if row is None:
        raise CaptureError(f"table {table!r} does not exist (or is not on the search_path)")
    if row["relkind"] not in ("r", "p"):
        raise CaptureError(f"{table!r} is not a table; capture needs a plain or partitioned table")
    schema, name = row["table_schema"], row["table_name"]
    if schema == "syncd":
        raise CaptureError("tables in the syncd schema cannot be captured")
    params = {"schema": schema, "table": name}
    columns = await (await conn.execute(QUERIES["select_columns"], params)).fetchall()
    names = [c["column_name"] for c in columns]
    if key not in names:
        raise CaptureError(
            f"column {key!r} does not exist in {schema}.{name}; its columns are: {', '.join(names)}"
        )
    return Target(schema, name, key)


async def _pin_search_path(conn: psycopg.AsyncConnection[Any]) -> None:
    """The rest of this transaction looks names up as the conditions will at run time."""
    await conn.execute(QUERIES["pin_search_path"], {"search_path": SEARCH_PATH})


async def check_capture_role(conn: psycopg.AsyncConnection[Any]) -> None:
    """Refuse unless syncd.capture_row() runs as a role with nothing worth stealing.

    The capture function runs the table owner's casts to json as its owner, so its owner
    must be the capture role, and that role must be unable to log in, hold no role
    attribute, belong to no role, and have (in this database and cluster-wide) only
    INSERT on syncd.outbox, USAGE on the syncd schema and the function itself.
    """
    problems: list[tuple[str, str]] = []
    role = await (
        await conn.execute(QUERIES["select_capture_role"], {"role": CAPTURE_ROLE})
    ).fetchone()
    function = await (await conn.execute(QUERIES["select_capture_function"])).fetchone()
    if role is None or function is None:
        missing = f"role {CAPTURE_ROLE}" if role is None else CAPTURE_FUNCTION
        raise CaptureError(
            f"the capture {missing} does not exist: run 'syncd migrate' as the database owner "
            f"(creating the role needs CREATEROLE; a DBA may run 'CREATE ROLE {CAPTURE_ROLE} "
            "NOLOGIN' first)"
        )
    problems += _function_problems(function)
    problems += _role_problems(role)
    grants = await (
        await conn.execute(QUERIES["select_capture_role_grants"], {"role_oid": role["oid"]})
    ).fetchall()
    problems += _grant_problems({g["object"]: tuple(g["privileges"]) for g in grants})
    if problems:
        raise CaptureError(
            f"refusing to install: capture triggers run the table owner's code (e.g. a cast "
            f"to json of a column's type) as the owner of {CAPTURE_FUNCTION}, so that must be "
            f"the role {CAPTURE_ROLE} with nothing worth stealing, but "
            + "; ".join(p for p, _ in problems)
            + ". Fix, as a superuser: "
            + "; ".join(dict.fromkeys(f for _, f in problems))
        )


def _function_problems(function: dict[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if function["owner"] != CAPTURE_ROLE:
        kind = "a superuser" if function["owner_is_superuser"] else "not the capture role"
        problems.append(
            (
                f"{CAPTURE_FUNCTION} is owned by {function['owner']} ({kind})",
                f"ALTER FUNCTION {CAPTURE_FUNCTION} OWNER TO {CAPTURE_ROLE}",
            )
        )
    if not function["prosecdef"]:
        problems.append(
            (
                f"{CAPTURE_FUNCTION} is not SECURITY DEFINER",
                f"ALTER FUNCTION {CAPTURE_FUNCTION} SECURITY DEFINER",
            )
        )
    if (function["proconfig"] or []) != [f"search_path={SEARCH_PATH}"]:
        problems.append(
            (
                f"{CAPTURE_FUNCTION} does not pin search_path = {SEARCH_PATH} alone",
                f"ALTER FUNCTION {CAPTURE_FUNCTION} RESET ALL; "
                f"ALTER FUNCTION {CAPTURE_FUNCTION} SET search_path = {SEARCH_PATH}",
            )
        )
    if function["public_can_execute"]:
        problems.append(
            (
                f"PUBLIC may attach {CAPTURE_FUNCTION} to any table",
                f"REVOKE EXECUTE ON FUNCTION {CAPTURE_FUNCTION} FROM PUBLIC",
            )
        )
    return problems


def _role_problems(role: dict[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    attributes = {
        "rolsuper": "SUPERUSER",
        "rolcanlogin": "LOGIN",
        "rolcreaterole": "CREATEROLE",
        "rolcreatedb": "CREATEDB",
        "rolreplication": "REPLICATION",
        "rolbypassrls": "BYPASSRLS",
    }
    for column, attribute in attributes.items():
        if role[column]:
            problems.append(
                (f"{CAPTURE_ROLE} has {attribute}", f"ALTER ROLE {CAPTURE_ROLE} NO{attribute}")
            )
    for group in role["member_of"]:
        problems.append(
            (
                f"{CAPTURE_ROLE} is a member of {group}",
                f'REVOKE "{group}" FROM {CAPTURE_ROLE}',
            )
        )
    return problems


def _grant_problems(grants: dict[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for obj, privileges in grants.items():
        extra = [p for p in privileges if p not in _ROLE_NEEDS.get(obj, ())]
        if extra:
            fix = (
                f"give {obj} another owner"
                if extra == ["OWNER"]
                else f"REVOKE {', '.join(extra)} ON {obj} FROM {CAPTURE_ROLE}"
            )
            problems.append((f"{CAPTURE_ROLE} has {', '.join(extra)} on {obj}", fix))
    for obj, needed in _ROLE_NEEDS.items():
        if not set(needed) <= set(grants.get(obj, ())):
            problems.append(
                (
                    f"{CAPTURE_ROLE} lacks {', '.join(needed)} on {obj}",
                    _ROLE_FIXES[obj].format(role=CAPTURE_ROLE),
                )
            )
    return problems


async def _check_installer(
    conn: psycopg.AsyncConnection[Any], spec: CaptureSpec, target: Target
) -> None:
    """Name every grant the current role lacks to install this capture, in one message."""
    params = {"schema": target.schema, "table": target.table}
    row = await (await conn.execute(QUERIES["select_capture_installer"], params)).fetchone()
    assert row is not None
    who = row["role"]
    table = f"{target.schema}.{target.table}"
    lacking: list[tuple[str, str]] = []
    if not row["can_attach"]:
        lacking.append(
            (
                f"EXECUTE on {CAPTURE_FUNCTION}",
                f"GRANT EXECUTE ON FUNCTION {CAPTURE_FUNCTION} TO {who}",
            )
        )
    if not row["can_register"]:
        lacking.append(
            (
                "SELECT, INSERT, UPDATE, DELETE on syncd.capture",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON syncd.capture TO {who}",
            )
        )
    if not row["can_trigger"]:
        lacking.append((f"TRIGGER on {table}", f"GRANT TRIGGER ON {table} TO {who}"))
    if (spec.when or spec.cancel_when) and not row["can_create"]:
        lacking.append(
            (
                f"CREATE on schema {target.schema} (for the condition functions)",
                f"GRANT CREATE ON SCHEMA {target.schema} TO {who}",
            )
        )
    if lacking:
        raise CaptureError(
            f"role {who} cannot install a capture on {table}: it lacks "
            + "; ".join(what for what, _ in lacking)
            + ". A DBA grants: GRANT USAGE ON SCHEMA syncd TO "
            + f"{who}; "
            + "; ".join(fix for _, fix in lacking)
            + " (or run capture add as the database owner)"
        )


async def _check_condition(
    conn: psycopg.AsyncConnection[Any], target: Target, option: str, condition: str
) -> None:
    if _DOLLAR_TAG in condition:
        raise CaptureError(f"{option} must not contain {_DOLLAR_TAG}")
    query = sql.SQL("SELECT ({}) FROM ONLY {} AS new WHERE false").format(
        sql.SQL(condition),  # the operator's SQL, checked right here
        target.qualified,
    )
    try:
        # With the search_path the condition runs with; rolled back, so nothing stays.
        async with conn.transaction(force_rollback=True):
            cursor = await conn.execute(query, prepare=True)
    except psycopg.Error as exc:
        detail = (exc.diag.message_primary or str(exc)).strip()
        hint = ""
        if isinstance(exc, _LOOKUP_ERRORS):
            hint = (
                f"; conditions run with search_path = {SEARCH_PATH}, so name tables, "
                "functions, types and operators with their schema (e.g. app.approvers, "
                "OPERATOR(app.=))"
            )
        raise CaptureError(
            f"{option} {condition!r} is not a valid condition: {detail}{hint}"
        ) from exc
    description = cursor.description or []
    if len(description) != 1 or description[0].type_code != _BOOLEAN_OID:
        raise CaptureError(f"{option} {condition!r} is not a valid condition: it is not boolean")


def _condition_ddl(name: str, target: Target, condition: str) -> sql.Composed:
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION {schema}.{name}(new {table}) RETURNS boolean\n"
        "    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp\n"
        "    AS {tag}SELECT ({body}){tag};"
    ).format(
        schema=sql.Identifier(target.schema),
        name=sql.Identifier(name),
        table=target.qualified,
        tag=sql.SQL(_DOLLAR_TAG),
        body=sql.SQL(condition),
    )


def _condition_call(name: str, target: Target, row: str) -> sql.Composed:
    return sql.SQL("{}.{}({})").format(
        sql.Identifier(target.schema), sql.Identifier(name), sql.SQL(row)
    )


def _drop_function(schema: str, name: str, target: Target | None) -> sql.Composed:
    signature = sql.SQL("()") if target is None else sql.SQL("({})").format(target.qualified)
    return sql.SQL("DROP FUNCTION IF EXISTS {}.{}{};").format(
        sql.Identifier(schema), sql.Identifier(name), signature
    )


def _cleanup_ddl(kind: str, target: Target, legacy: list[tuple[str, bool]]) -> list[sql.Composed]:
    """Drop the triggers of this kind on this table, and functions of earlier versions."""
    statements = [
        sql.SQL("DROP TRIGGER IF EXISTS {} ON {};").format(
            sql.Identifier(trigger_name(kind, t.suffix)), target.qualified
        )
        for t in _TRIGGERS
    ]
    for name, takes_row in legacy:
        statements.append(_drop_function("syncd", name, target if takes_row else None))
    return statements


def build_ddl(
    spec: CaptureSpec, target: Target, legacy: list[tuple[str, bool]] | None = None
) -> list[sql.Composed]:
    """The statements that install (or replace) the capture triggers."""
    statements = _cleanup_ddl(spec.kind, target, legacy or [])
    conditions = {"submit": spec.when, "cancel": spec.cancel_when}
    for action, condition in conditions.items():
        name = condition_function(spec.kind, target, action)
        if condition is None:
            statements.append(_drop_function(target.schema, name, target))
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


async def _legacy_functions(
    conn: psycopg.AsyncConnection[Any], kind: str, target: Target
) -> list[tuple[str, bool]]:
    """Functions that a capture add before migration 0006 left in the syncd schema:
    (name, whether it takes the row) — the trigger function first, then the conditions."""
    names = {legacy_function_name(kind, target, s): bool(s) for s in ("", "_when", "_cancel")}
    params = {"names": list(names)}
    rows = await (await conn.execute(QUERIES["select_syncd_functions"], params)).fetchall()
    found = {r["proname"] for r in rows}
    return [(name, takes_row) for name, takes_row in names.items() if name in found]


async def plan(conn: psycopg.AsyncConnection[Any], spec: CaptureSpec) -> tuple[Target, str]:
    """Validate the spec against the database and render the DDL for review."""
    target, statements = await _plan(conn, spec)
    return target, "\n\n".join(s.as_string(conn) for s in statements) + "\n"


async def _plan(
    conn: psycopg.AsyncConnection[Any], spec: CaptureSpec
) -> tuple[Target, list[sql.Composed]]:
    target = await resolve(conn, spec.table, spec.key)  # the caller's search_path applies
    await _pin_search_path(conn)
    await check_capture_role(conn)
    await _check_installer(conn, spec, target)
    for option, condition in (("--when", spec.when), ("--cancel-when", spec.cancel_when)):
        if condition is not None:
            await _check_condition(conn, target, option, condition)
    legacy = await _legacy_functions(conn, spec.kind, target)
    return target, build_ddl(spec, target, legacy)


def _ddl_failure(what: str, exc: psycopg.Error) -> CaptureError:
    detail = (exc.diag.message_primary or str(exc)).strip()
    hint = ""
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        hint = (
            ": the capture's functions and triggers were installed by another role; run "
            "'syncd capture remove' as that role or a superuser first"
        )
    return CaptureError(f"{what} failed: {detail}{hint}")


async def install(conn: psycopg.AsyncConnection[Any], spec: CaptureSpec) -> str:
    """Install or replace the triggers in one transaction; returns the DDL that ran."""
    async with conn.transaction():
        target, statements = await _plan(conn, spec)
        try:
            for statement in statements:
                await conn.execute(statement)
        except psycopg.Error as exc:
            raise _ddl_failure("installing the capture trigger", exc) from exc
        await conn.execute(
            QUERIES["upsert_capture"],
            {
                "trigger_name": trigger_name(spec.kind),
                "kind": spec.kind,
                "schema": target.schema,
                "table": target.table,
                "key_column": target.key,
                "when_sql": spec.when,
                "cancel_sql": spec.cancel_when,
            },
        )
    return "\n\n".join(s.as_string(conn) for s in statements) + "\n"


async def remove(conn: psycopg.AsyncConnection[Any], kind: str, table: str) -> None:
    """Drop the triggers and functions of this kind on this table."""
    async with conn.transaction():
        row = await (await conn.execute(QUERIES["select_table"], {"name": table})).fetchone()
        if row is None:
            raise CaptureError(f"table {table!r} does not exist")
        await _pin_search_path(conn)
        params = {"kind": kind, "schema": row["table_schema"], "table": row["table_name"]}
        found = await (await conn.execute(QUERIES["select_capture"], params)).fetchone()
        if found is None:
            raise CaptureError(
                f"no capture of kind {kind!r} on {params['schema']}.{params['table']}"
            )
        target = Target(row["table_schema"], row["table_name"], found["key_column"])
        statements = _cleanup_ddl(kind, target, await _legacy_functions(conn, kind, target))
        for action in ("submit", "cancel"):
            name = condition_function(kind, target, action)
            statements.append(_drop_function(target.schema, name, target))
        try:
            for statement in statements:
                await conn.execute(statement)
        except psycopg.Error as exc:
            raise _ddl_failure("removing the capture trigger", exc) from exc
        await conn.execute(QUERIES["delete_capture"], params)


async def list_captures(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
    return await (await conn.execute(QUERIES["select_captures"])).fetchall()


async def rebuild_legacy(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    """Re-install, on syncd.capture_row(), captures that an earlier syncd installed.

    Those ran as whoever installed them. Returns one line per capture: rebuilt, or why
    not (then ``capture list`` keeps flagging it until its owner re-runs ``capture add``).
    """
    report: list[str] = []
    for row in await list_captures(conn):
        if not row["legacy"]:
            continue
        table = sql.Identifier(row["table_schema"], row["table_name"]).as_string(conn)
        spec = CaptureSpec(
            row["kind"], table, row["key_column"], row["when_sql"], row["cancel_sql"]
        )
        label = f"capture {row['kind']} on {row['table_schema']}.{row['table_name']}"
        fields = {"kind": row["kind"], "table": f"{row['table_schema']}.{row['table_name']}"}
        try:
            await install(conn, spec)
        except CaptureError as exc:
            line = f"{label} still runs as its installer: {exc}; re-run 'syncd capture add' for it"
            fields["reason"] = str(exc)
            logger.warning(
                "capture not rebuilt", extra={"action": "capture_rebuild_failed", **fields}
            )
        else:
            line = f"{label} rebuilt on {CAPTURE_FUNCTION}"
            logger.info("capture rebuilt", extra={"action": "capture_rebuilt", **fields})
        report.append(line)
    return report
