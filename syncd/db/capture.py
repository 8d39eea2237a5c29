"""Capture triggers: business-table changes become outbox rows in the same transaction.

``syncd capture add`` installs, on a business table, an AFTER INSERT OR UPDATE trigger
that inserts an outbox row (payload = the row as jsonb) when the ``when`` condition
*becomes* true: on INSERT if it holds for the new row, on UPDATE if it holds for the new
row and did not for the old one. So syncd's own write-back into the same row, or any
other update, never submits twice. An optional ``cancel_when`` condition emits
``action = 'cancel'`` rows the same way.

Conditions are SQL boolean expressions over ``NEW`` (the row), e.g.
``NEW.status = 'submitted'``. Each becomes a SQL function of the row, which PostgreSQL
checks when it is created, so a wrong column or a syntax error is reported before
anything changes. Everything runs in one transaction: all or nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from syncd.db.queries import QUERIES
from syncd.errors import CaptureError

_DOLLAR_TAG = "$syncd_cond$"
_BOOLEAN_OID = 16


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


def trigger_name(kind: str) -> str:
    return f"syncd_capture_{kind}"


def function_name(kind: str, target: Target, suffix: str = "") -> str:
    """A readable, unique function name within PostgreSQL's 63-byte identifier limit."""
    base = f"capture_{target.schema}_{target.table}_{kind}"
    digest = hashlib.sha1(f"{target.schema}.{target.table}.{kind}".encode()).hexdigest()[:8]
    limit = 63 - len(suffix) - 9
    short = base if len(base.encode()) <= limit else base.encode()[:limit].decode(errors="ignore")
    return f"{short}_{digest}{suffix}"


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
        async with conn.transaction():
            cursor = await conn.execute(query, prepare=True)
    except psycopg.Error as exc:
        detail = (exc.diag.message_primary or str(exc)).strip()
        raise CaptureError(f"{option} {condition!r} is not a valid condition: {detail}") from exc
    description = cursor.description or []
    if len(description) != 1 or description[0].type_code != _BOOLEAN_OID:
        raise CaptureError(f"{option} {condition!r} is not a valid condition: it is not boolean")


def _condition_function(name: str, target: Target, condition: str | None) -> sql.Composed:
    body = f"SELECT ({condition or 'true'})"
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION syncd.{name}(new {table}) RETURNS boolean\n"
        "    LANGUAGE sql STABLE AS {tag}{body}{tag};"
    ).format(
        name=sql.Identifier(name),
        table=target.qualified,
        tag=sql.SQL(_DOLLAR_TAG),
        body=sql.SQL(body),
    )


_TRIGGER_BODY = """
DECLARE
    submit boolean;
    cancel boolean;
BEGIN
    submit := syncd.{when_fn}(NEW) IS TRUE;
    cancel := {has_cancel} AND syncd.{cancel_fn}(NEW) IS TRUE;
    IF TG_OP = 'UPDATE' THEN
        submit := submit AND syncd.{when_fn}(OLD) IS NOT TRUE;
        cancel := cancel AND syncd.{cancel_fn}(OLD) IS NOT TRUE;
    END IF;
    IF submit THEN
        INSERT INTO syncd.outbox (kind, business_key, action, payload)
        VALUES ({kind}, coalesce(NEW.{key}::text, ''), 'submit', to_jsonb(NEW));
    END IF;
    IF cancel THEN
        INSERT INTO syncd.outbox (kind, business_key, action, payload)
        VALUES ({kind}, coalesce(NEW.{key}::text, ''), 'cancel', to_jsonb(NEW));
    END IF;
    RETURN NULL;
END;
"""


def build_ddl(spec: CaptureSpec, target: Target) -> list[sql.Composed]:
    """The statements that install (or replace) the capture trigger."""
    when_fn = function_name(spec.kind, target, "_when")
    cancel_fn = function_name(spec.kind, target, "_cancel")
    trigger_fn = function_name(spec.kind, target)
    body = sql.SQL(_TRIGGER_BODY).format(
        when_fn=sql.Identifier(when_fn),
        cancel_fn=sql.Identifier(cancel_fn),
        has_cancel=sql.SQL("true" if spec.cancel_when else "false"),
        kind=sql.Literal(spec.kind),
        key=sql.Identifier(target.key),
    )
    return [
        _condition_function(when_fn, target, spec.when),
        _condition_function(cancel_fn, target, spec.cancel_when or "false"),
        sql.SQL(
            "CREATE OR REPLACE FUNCTION syncd.{fn}() RETURNS trigger\n"
            "    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp\n"
            "    AS {tag}{body}{tag};"
        ).format(
            fn=sql.Identifier(trigger_fn),
            tag=sql.SQL(_DOLLAR_TAG),
            body=body,
        ),
        sql.SQL("DROP TRIGGER IF EXISTS {trigger} ON {table};").format(
            trigger=sql.Identifier(trigger_name(spec.kind)), table=target.qualified
        ),
        sql.SQL(
            "CREATE TRIGGER {trigger}\n    AFTER INSERT OR UPDATE ON {table}\n"
            "    FOR EACH ROW EXECUTE FUNCTION syncd.{fn}();"
        ).format(
            trigger=sql.Identifier(trigger_name(spec.kind)),
            table=target.qualified,
            fn=sql.Identifier(trigger_fn),
        ),
    ]


async def plan(conn: psycopg.AsyncConnection[Any], spec: CaptureSpec) -> tuple[Target, str]:
    """Validate the spec against the database and render the DDL for review."""
    target = await resolve(conn, spec.table, spec.key)
    for option, condition in (("--when", spec.when), ("--cancel-when", spec.cancel_when)):
        if condition is not None:
            await _check_condition(conn, target, option, condition)
    statements = [s.as_string(conn) for s in build_ddl(spec, target)]
    return target, "\n\n".join(statements) + "\n"


async def install(conn: psycopg.AsyncConnection[Any], spec: CaptureSpec) -> str:
    """Install or replace the trigger in one transaction; returns the DDL that ran."""
    async with conn.transaction():
        target, ddl = await plan(conn, spec)
        try:
            for statement in build_ddl(spec, target):
                await conn.execute(statement)
        except psycopg.Error as exc:
            detail = (exc.diag.message_primary or str(exc)).strip()
            raise CaptureError(f"installing the capture trigger failed: {detail}") from exc
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
    return ddl


async def remove(conn: psycopg.AsyncConnection[Any], kind: str, table: str) -> None:
    """Drop the trigger and its functions for this kind on this table."""
    async with conn.transaction():
        row = await (await conn.execute(QUERIES["select_table"], {"name": table})).fetchone()
        if row is None:
            raise CaptureError(f"table {table!r} does not exist")
        params = {"kind": kind, "schema": row["table_schema"], "table": row["table_name"]}
        found = await (await conn.execute(QUERIES["select_capture"], params)).fetchone()
        if found is None:
            raise CaptureError(
                f"no capture of kind {kind!r} on {params['schema']}.{params['table']}"
            )
        target = Target(row["table_schema"], row["table_name"], found["key_column"])
        await conn.execute(
            sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                sql.Identifier(trigger_name(kind)), target.qualified
            )
        )
        for suffix in ("", "_when", "_cancel"):
            name = function_name(kind, target, suffix)
            signature = sql.SQL("()") if not suffix else sql.SQL("({})").format(target.qualified)
            await conn.execute(
                sql.SQL("DROP FUNCTION IF EXISTS syncd.{}{}").format(
                    sql.Identifier(name), signature
                )
            )
        await conn.execute(QUERIES["delete_capture"], params)


async def list_captures(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
    return await (await conn.execute(QUERIES["select_captures"])).fetchall()
