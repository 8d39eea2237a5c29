"""``syncd capture … --database NAME``: capture triggers in a MySQL/MariaDB business
database (the statements are in :mod:`syncd.db.mysql.capture_ddl`; docs/mysql.md).

Before anything changes, the table and its key column are looked up, each condition is
checked by preparing ``SELECT (condition) FROM table AS NEW`` (and the same over
``OLD``) — MySQL checks a trigger's columns only when it fires, so an unchecked typo
would fail the application's writes —, and a trigger of the same name that is not this
capture's is refused. ``install`` then creates the definer account and its grants and
swaps the triggers while holding the table (and the outbox) under ``LOCK TABLES …
WRITE``: no write of the application's falls between the old triggers and the new. MySQL
commits each DDL statement on its own; if creating the second trigger fails, the first
is dropped again, so a table is never half captured (it then has no capture: the error
says so).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from syncd.db.mysql.capture_ddl import (
    EVENTS,
    CaptureTable,
    Column,
    MySQLCaptureSpec,
    build_ddl,
    check_shape,
    definer_ddl,
    drop_ddl,
    events,
    over_old,
    parse_metadata,
    quote,
    script,
    trigger_name,
)
from syncd.db.mysql.engine import describe, query
from syncd.db.writeback import split_name
from syncd.errors import CaptureError

_CHECK = "syncd_capture_check"


async def _ddl(conn: AsyncConnection, statement: str) -> None:
    # The driver formats with %: a condition's LIKE 'a%' must reach the server as is.
    await conn.exec_driver_sql(statement.replace("%", "%%"))


async def resolve(conn: AsyncConnection, table: str, key: str) -> CaptureTable:
    schema, name = split_name(table)
    found = (await conn.execute(query("capture_table"), {"schema": schema, "name": name})).first()
    if found is None:
        raise CaptureError(
            f"table {table!r} does not exist in the business database (or the current user "
            "may not see it)"
        )
    if found.table_type != "BASE TABLE":
        raise CaptureError(f"{table!r} is a {found.table_type.lower()}; capture needs a table")
    if found.table_name.startswith("syncd_"):
        raise CaptureError("syncd's own tables (syncd_*) cannot be captured")
    params = {"schema": found.table_schema, "name": found.table_name}
    rows = (await conn.execute(query("capture_columns"), params)).all()
    columns = tuple(Column(str(r.name), str(r.data_type)) for r in rows)
    names = [c.name for c in columns]
    if key not in names:
        raise CaptureError(
            f"column {key!r} does not exist in {found.table_schema}.{found.table_name}; its "
            f"columns are: {', '.join(names)}"
        )
    return CaptureTable(found.table_schema, found.table_name, columns, found.outbox_schema)


async def check_condition(
    conn: AsyncConnection, table: CaptureTable, option: str, condition: str
) -> None:
    """Refuse a condition MySQL would not run: prepared over the table as ``NEW`` and,
    rewritten, as ``OLD`` (nothing is executed)."""
    check_shape(option, condition)
    for alias, text in (("NEW", condition), ("OLD", over_old(condition))):
        select = f"SELECT ({text}) FROM {table.qualified} AS {alias} WHERE FALSE"
        try:
            await conn.execute(sa.text(f"SET @{_CHECK} = :q"), {"q": select})
            await conn.exec_driver_sql(f"PREPARE {_CHECK} FROM @{_CHECK}")
            await conn.exec_driver_sql(f"DEALLOCATE PREPARE {_CHECK}")
        except sa.exc.DBAPIError as exc:
            raise CaptureError(
                f"{option} {condition!r} is not a valid condition: {describe(exc)}"
            ) from exc


async def _triggers(conn: AsyncConnection) -> list[Any]:
    return list((await conn.execute(query("capture_triggers"))).all())


async def check_conflicts(
    conn: AsyncConnection, spec: MySQLCaptureSpec, table: CaptureTable
) -> None:
    """A trigger with one of this capture's names must be this capture's, on this table."""
    names = {trigger_name(spec.kind, e) for e in EVENTS}
    for row in await _triggers(conn):
        if row.trigger_schema != table.schema or row.trigger_name not in names:
            continue
        if parse_metadata(row.body) is None:
            raise CaptureError(
                f"{table.schema}.{table.table}: database {table.schema} already has a trigger "
                f"{row.trigger_name} that is not a syncd capture; rename or drop it first"
            )
        if row.table_name != table.table:
            raise CaptureError(
                f"kind {spec.kind!r} is already captured on {table.schema}.{row.table_name} "
                f"(trigger {row.trigger_name}); trigger names are per database: remove that "
                "capture first or capture this table under another kind"
            )


async def plan(
    conn: AsyncConnection, spec: MySQLCaptureSpec, zone: str
) -> tuple[CaptureTable, list[str]]:
    """Validate everything and return the statements that install the capture."""
    table = await resolve(conn, spec.table, spec.key)
    for option, condition in (("--when", spec.when), ("--cancel-when", spec.cancel_when)):
        if condition is not None:
            await check_condition(conn, table, option, condition)
    await check_conflicts(conn, spec, table)
    return table, build_ddl(spec, table, spec.key, zone)


async def review(engine: AsyncEngine, spec: MySQLCaptureSpec, zone: str) -> str:
    """The script ``capture add`` would run, for the DBA (changes nothing)."""
    async with engine.connect() as conn:
        _, statements = await plan(conn, spec, zone)
    return script(statements)


async def install(engine: AsyncEngine, spec: MySQLCaptureSpec, zone: str) -> str:
    """Install (or replace) the capture; returns the script that ran."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        table, statements = await plan(conn, spec, zone)
        creates = [s for s in statements if s.startswith("CREATE DEFINER")]
        try:
            for statement in definer_ddl(table):
                await _ddl(conn, statement)
        except sa.exc.DBAPIError as exc:
            raise CaptureError(f"preparing the capture's definer failed: {describe(exc)}") from exc
        await _swap(conn, spec, table, creates)
    return script(statements)


async def _swap(
    conn: AsyncConnection, spec: MySQLCaptureSpec, table: CaptureTable, creates: list[str]
) -> None:
    outbox = f"{quote(table.outbox_schema)}.`syncd_outbox`"
    try:
        await _ddl(conn, f"LOCK TABLES {table.qualified} WRITE, {outbox} WRITE")
    except sa.exc.DBAPIError as exc:
        raise CaptureError(
            f"cannot lock {table.schema}.{table.table} to swap its triggers: {describe(exc)}"
        ) from exc
    done = 0
    try:
        for statement in drop_ddl(table.schema, spec.kind):
            await _ddl(conn, statement)
        for statement in creates:
            await _ddl(conn, statement)
            done += 1
    except sa.exc.DBAPIError as exc:
        for statement in drop_ddl(table.schema, spec.kind)[:done]:
            await _ddl(conn, statement)
        raise CaptureError(
            f"installing the capture trigger failed: {describe(exc)}. "
            f"{table.schema}.{table.table} now has no capture of kind {spec.kind!r} (any "
            "trigger created was dropped again): fix the cause and run capture add again"
        ) from exc
    finally:
        await _ddl(conn, "UNLOCK TABLES")


async def remove(engine: AsyncEngine, kind: str, table_name: str) -> None:
    async with engine.connect() as conn:
        schema, name = split_name(table_name)
        found = (
            await conn.execute(query("capture_table"), {"schema": schema, "name": name})
        ).first()
        if found is None:
            raise CaptureError(f"table {table_name!r} does not exist in the business database")
        mine = [
            r
            for r in await _triggers(conn)
            if r.trigger_schema == found.table_schema
            and r.table_name == found.table_name
            and (parse_metadata(r.body) or {}).get("kind") == kind
        ]
        if not mine:
            raise CaptureError(
                f"no capture of kind {kind!r} on {found.table_schema}.{found.table_name}"
            )
        try:
            for statement in drop_ddl(found.table_schema, kind):
                await _ddl(conn, statement)
        except sa.exc.DBAPIError as exc:
            raise CaptureError(f"removing the capture trigger failed: {describe(exc)}") from exc


async def list_captures(engine: AsyncEngine) -> list[dict[str, Any]]:
    """One entry per captured (kind, table): what was asked, and whether a trigger of the
    pair it needs is missing."""
    async with engine.connect() as conn:
        rows = await _triggers(conn)
    captures: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        data = parse_metadata(row.body)
        if data is None:
            continue
        entry = captures.setdefault(
            (row.trigger_schema, row.table_name, str(data["kind"])),
            {**data, "schema": row.trigger_schema, "table": row.table_name, "events": []},
        )
        entry["events"].append(row.event)
    for entry in captures.values():
        spec = MySQLCaptureSpec(entry["kind"], "", "", entry["when"], entry["cancel_when"])
        entry["missing"] = [e for e in events(spec) if e not in entry["events"]]
    return list(captures.values())
