"""The PostgreSQL business targets: an approval's outcome in the application's own table.

Per kind, either a table mapping (business columns set from outcome fields, the row
found by its key column: ``PostgresTableTarget``) or a stored procedure
``CALL proc(business_key, outcome)`` (``PostgresProcedureTarget``). Both implement
``syncd.ports.BusinessTarget`` on syncd's connection, inside the transaction that makes
the approval final, so the outcome is written exactly once; a round's progress goes the
same way (the same statement, every mapped column set from the round's state as it is).
Table mappings are checked at start through SQLAlchemy reflection (table, key column and
each mapped column exist; the types can take the values), and the UPDATE is built and
quoted by SQLAlchemy, then run through psycopg.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy.dialects.postgresql import psycopg as pg_dialect

from syncd.db.queries import QUERIES
from syncd.domain import Outcome
from syncd.errors import ConfigError, StoreError, WriteBackError
from syncd.settings_kinds import WriteBackSettings

_TIME_SOURCES = {"finished_at", "state_changed_at"}
_NUMBER_SOURCES = {"approval_id", "round", "seq"}
#: Written as a list into an array column, else as the ids joined by commas.
_LIST_SOURCES = {"pending_approvers"}
#: Written as JSON into a json or jsonb column, else as JSON text.
_JSON_SOURCES = {"comments"}


@dataclass(frozen=True)
class PostgresTableTarget:
    """A table mapping: ``UPDATE table SET mapped columns WHERE key_column = key``, which
    must match exactly one row."""

    kind: str
    name: str
    key_column: str
    statement: str
    sources: dict[str, str]
    key_is_number: bool
    status_map: Mapping[str, str]
    #: Parameters bound to array columns (a list source written as an array).
    arrays: frozenset[str] = field(default_factory=frozenset)
    #: Parameters bound to json or jsonb columns (a JSON source written as JSON).
    jsons: frozenset[str] = field(default_factory=frozenset)

    async def write(
        self, conn: psycopg.AsyncConnection[Any], outcome: Outcome, *, again: bool = False
    ) -> None:
        """Set the mapped columns (an UPDATE to the same values when ``again``)."""
        await self._update(conn, outcome)

    async def write_progress(self, conn: psycopg.AsyncConnection[Any], progress: Outcome) -> None:
        """Set the mapped columns from the round's state (``NULL`` what it has not yet)."""
        await self._update(conn, progress)

    async def _update(self, conn: psycopg.AsyncConnection[Any], outcome: Outcome) -> None:
        params = {
            param: self._value(param, source, outcome) for param, source in self.sources.items()
        }
        params["syncd_key"] = self._key(outcome.business_key)
        try:
            cursor = await conn.execute(self.statement, params)
        except psycopg.Error as exc:
            detail = (exc.diag.message_primary or str(exc)).strip()
            raise WriteBackError(f"writing to {self.name} failed: {detail}") from exc
        one_row(self.name, self.key_column, outcome.business_key, cursor.rowcount)

    def _value(self, param: str, source: str, outcome: Outcome) -> Any:
        if source == "status":
            return self.status_map.get(outcome.status, outcome.status)
        value = getattr(outcome, source)
        if source in _JSON_SOURCES:
            return Jsonb(list(value)) if param in self.jsons else json_text(value)
        if source in _LIST_SOURCES:
            if not value:
                return None
            return list(value) if param in self.arrays else ",".join(value)
        return value

    def _key(self, business_key: str) -> Any:
        return key_value(self.name, self.key_column, self.key_is_number, business_key)


def key_value(table: str, key_column: str, is_number: bool, business_key: str) -> Any:
    """The business key as the key column takes it (a number column, a number)."""
    if not is_number:
        return business_key
    try:
        return int(business_key)
    except ValueError:
        raise WriteBackError(
            f"business_key {business_key!r} is not a number, but {table}.{key_column} is"
        ) from None


def one_row(table: str, key_column: str, business_key: str, rowcount: int) -> None:
    """Raise ``WriteBackError`` unless an UPDATE by key matched exactly one row."""
    if rowcount != 1:
        raise WriteBackError(
            f"no row in {table} where {key_column} = {business_key!r}"
            if rowcount == 0
            else f"{rowcount} rows in {table} match {key_column} = {business_key!r}; "
            "the key must be unique"
        )


@dataclass(frozen=True)
class PostgresProcedureTarget:
    """A stored procedure ``(business_key text, outcome jsonb)`` of the application's,
    which finds its row and raises when it cannot write."""

    kind: str
    name: str
    statement: sql.Composed

    async def write(
        self, conn: psycopg.AsyncConnection[Any], outcome: Outcome, *, again: bool = False
    ) -> None:
        """Call the procedure with the outcome (:meth:`Outcome.as_json`), again or not."""
        await self._call(conn, outcome)

    async def write_progress(self, conn: psycopg.AsyncConnection[Any], progress: Outcome) -> None:
        """Call the procedure with the round's state (``final`` false)."""
        await self._call(conn, progress)

    async def _call(self, conn: psycopg.AsyncConnection[Any], outcome: Outcome) -> None:
        params = {"business_key": outcome.business_key, "outcome": Jsonb(outcome.as_json())}
        try:
            await conn.execute(self.statement, params)
        except psycopg.Error as exc:
            detail = (exc.diag.message_primary or str(exc)).strip()
            raise WriteBackError(f"CALL {self.name} failed: {detail}") from exc


PostgresTarget = PostgresTableTarget | PostgresProcedureTarget


def split_name(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return (schema or None), table


def _reflect(engine: sa.Engine, kind: str, config: WriteBackSettings) -> PostgresTableTarget:
    assert config.table is not None and config.key_column is not None
    schema, name = split_name(config.table)
    where = f"[kinds.{kind}.write_back]"
    try:
        table = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=engine)
    except sa.exc.NoSuchTableError:
        raise ConfigError(f"{where} table {config.table!r} does not exist") from None
    statement, params = mapped_update(where, config, table)
    compiled = str(statement.compile(dialect=pg_dialect.dialect()))  # type: ignore[no-untyped-call]
    key_type = table.c[config.key_column].type
    columns = list(config.columns)
    return PostgresTableTarget(
        kind=kind,
        name=config.table,
        key_column=config.key_column,
        statement=compiled,
        sources=params,
        key_is_number=python_type(key_type) is int,
        status_map=dict(config.status_map),
        arrays=frozenset(
            param
            for param, column in zip(params, columns, strict=True)
            if python_type(table.c[column].type) is list
        ),
        jsons=json_params(params, config, table),
    )


def mapped_update(
    where: str, config: WriteBackSettings, table: sa.Table, hint: str = ""
) -> tuple[sa.Update, dict[str, str]]:
    """Check a table mapping against the reflected ``table`` (the key column and each
    mapped column exist; the types can take the values); the UPDATE by key, and the
    source of each of its parameters (``v0``, ``v1``, …)."""
    assert config.key_column is not None
    missing = [c for c in (config.key_column, *config.columns) if c not in table.c]
    if missing:
        raise ConfigError(
            f"{where} {config.table} has no column {missing[0]!r}{hint}; "
            f"its columns are: {', '.join(table.c.keys())}"
        )
    for column, source in config.columns.items():
        check_type(where, str(config.table), table.c[column], source)
    statement = (
        sa.update(table)
        .where(table.c[config.key_column] == sa.bindparam("syncd_key"))
        .values({col: sa.bindparam(f"v{i}") for i, col in enumerate(config.columns)})
    )
    return statement, {f"v{i}": source for i, source in enumerate(config.columns.values())}


def python_type(column_type: sa.types.TypeEngine[Any]) -> type | None:
    try:
        return column_type.python_type
    except NotImplementedError:
        return None


def _is_text_array(column_type: sa.types.TypeEngine[Any]) -> bool:
    item = getattr(column_type, "item_type", None)
    return item is not None and python_type(item) is str


def json_params(
    params: Mapping[str, str], config: WriteBackSettings, table: sa.Table
) -> frozenset[str]:
    """The parameters of :func:`mapped_update` bound to JSON columns."""
    columns = zip(params, config.columns, strict=True)
    return frozenset(
        param for param, column in columns if isinstance(table.c[column].type, sa.JSON)
    )


def json_text(value: Any) -> str:
    """A JSON source as text (characters as they are, not escaped)."""
    return json.dumps(list(value), ensure_ascii=False, separators=(",", ":"))


def check_type(where: str, table: str, column: sa.Column[Any], source: str) -> None:
    python = python_type(column.type)
    if python is None or python is str:
        return
    fits = (
        (source in _JSON_SOURCES and isinstance(column.type, sa.JSON))
        or (source in _TIME_SOURCES and python is datetime)
        or (source in _NUMBER_SOURCES and python in (int, float))
        or (source in _LIST_SOURCES and python is list and _is_text_array(column.type))
        or (source not in _TIME_SOURCES | _NUMBER_SOURCES and python is str)
    )
    if not fits:
        raise ConfigError(
            f"{where} column {table}.{column.name} is {column.type}, "
            f"which cannot hold {source!r}; use a text column or another source"
        )


def _procedure(kind: str, name: str) -> PostgresProcedureTarget:
    schema, proc = split_name(name)
    identifier = sql.Identifier(schema, proc) if schema else sql.Identifier(proc)
    statement = sql.SQL("CALL {}(%(business_key)s, %(outcome)s)").format(identifier)
    return PostgresProcedureTarget(kind=kind, name=name, statement=statement)


def _check_procedures(dsn: str, procedures: Mapping[str, str]) -> None:
    if not procedures:
        return
    with psycopg.connect(dsn) as conn:
        for kind, name in procedures.items():
            row = conn.execute(QUERIES["select_procedure_exists"], {"name": name}).fetchone()
            if not row or not row[0]:
                raise ConfigError(
                    f"[kinds.{kind}.write_back] procedure {name!r} does not exist; create "
                    "it as PROCEDURE (business_key text, outcome jsonb)"
                )


def build_sync(dsn: str, configs: Mapping[str, WriteBackSettings]) -> dict[str, PostgresTarget]:
    """Check every kind's write-back against the database and prepare its statement."""
    engine = sa.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn))
    try:
        result: dict[str, PostgresTarget] = {}
        procedures = {}
        for kind, config in configs.items():
            if config.procedure is not None:
                procedures[kind] = config.procedure
                result[kind] = _procedure(kind, config.procedure)
            else:
                result[kind] = _reflect(engine, kind, config)
        _check_procedures(dsn, procedures)
        return result
    except sa.exc.OperationalError as exc:
        raise StoreError(f"cannot inspect the business tables: {exc.orig}") from exc
    finally:
        engine.dispose()


async def build(dsn: str, configs: Mapping[str, WriteBackSettings]) -> dict[str, PostgresTarget]:
    return await asyncio.to_thread(build_sync, dsn, configs)
