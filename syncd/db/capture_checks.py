"""Checks before a capture is installed: each refusal names what is wrong and the fix.

- ``resolve``: the table exists, is a table outside the syncd schema, and has the key column.
- ``check_capture_role``: ``syncd.capture_row()`` runs as a role with nothing worth stealing.
- ``check_installer``: the current role holds every grant installing needs.
- ``check_condition``: a condition is one boolean expression over ``NEW`` that resolves
  with the search_path it will run with.

None of them changes anything; ``syncd.db.capture`` runs them inside its transaction.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from syncd.db.capture_ddl import (
    CAPTURE_FUNCTION,
    CAPTURE_ROLE,
    DOLLAR_TAG,
    SEARCH_PATH,
    CaptureSpec,
    Target,
)
from syncd.db.queries import QUERIES
from syncd.errors import CaptureError

_BOOLEAN_OID = 16
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


async def check_installer(
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


async def check_condition(
    conn: psycopg.AsyncConnection[Any], target: Target, option: str, condition: str
) -> None:
    """Refuse ``condition`` (given as ``option``) unless it is one boolean expression that
    resolves with the current (pinned) search_path; runs it over no rows and rolls back."""
    if DOLLAR_TAG in condition:
        raise CaptureError(f"{option} must not contain {DOLLAR_TAG}")
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
