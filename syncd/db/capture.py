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

The parts: ``capture_ddl`` (names and statements, pure), ``capture_checks`` (validation
before anything changes); this module runs them (plan, install, remove, list, rebuild) and
is where callers import every public name from.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql

from syncd.db.capture_checks import (
    check_capture_role,
    check_condition,
    check_installer,
    resolve,
)
from syncd.db.capture_ddl import (
    CAPTURE_FUNCTION,
    CAPTURE_ROLE,
    SEARCH_PATH,
    CaptureSpec,
    Target,
    build_ddl,
    condition_function,
    legacy_function_name,
    removal_ddl,
    trigger_name,
)
from syncd.db.queries import QUERIES
from syncd.errors import CaptureError

__all__ = [
    "CAPTURE_FUNCTION",
    "CAPTURE_ROLE",
    "SEARCH_PATH",
    "CaptureSpec",
    "Target",
    "build_ddl",
    "check_capture_role",
    "condition_function",
    "install",
    "legacy_function_name",
    "list_captures",
    "plan",
    "rebuild_legacy",
    "remove",
    "resolve",
    "trigger_name",
]

logger = logging.getLogger(__name__)


async def _pin_search_path(conn: psycopg.AsyncConnection[Any]) -> None:
    """The rest of this transaction looks names up as the conditions will at run time."""
    await conn.execute(QUERIES["pin_search_path"], {"search_path": SEARCH_PATH})


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
    await check_installer(conn, spec, target)
    for option, condition in (("--when", spec.when), ("--cancel-when", spec.cancel_when)):
        if condition is not None:
            await check_condition(conn, target, option, condition)
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
        statements = removal_ddl(kind, target, await _legacy_functions(conn, kind, target))
        try:
            for statement in statements:
                await conn.execute(statement)
        except psycopg.Error as exc:
            raise _ddl_failure("removing the capture trigger", exc) from exc
        await conn.execute(QUERIES["delete_capture"], params)


async def list_captures(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
    """The registered captures (syncd.capture), with whether each is a legacy install."""
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
