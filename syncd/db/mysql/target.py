"""The MySQL/MariaDB business target: an approval's outcome in a table of a business
database, exactly once, though that database cannot join syncd's transaction.

``MySQLTarget`` implements ``syncd.ports.BusinessTarget[object]`` as its docstring
describes for such a database. Each write is one transaction of the business database,
committed before ``write`` returns, that

1. locks the key's row in ``syncd_writeback_key`` (made if missing): every write-back of
   one business key, final or progress, from any replica, takes its turn;
2. for a final outcome, looks the approval up in the ledger ``syncd_writeback``: when it
   is there the outcome was written (and only syncd's own commit was lost), so nothing
   is written again unless forced (``again``);
3. writes the business row (an UPDATE of mapped columns by key, or ``CALL proc(key,
   outcome)``) unless the key shows a newer version: a newer round, or for progress the
   same round at a later or equal ``seq`` or finished;
4. records the version in ``syncd_writeback_key`` and a final outcome in the ledger.

A refusal (no row or several, a failed statement, the procedure raising, a lock wait
timeout, a server out of reach, the whole write outlasting ``statement_timeout``) rolls
all of it back and raises ``WriteBackError`` with MySQL's message. Times are written in
the session's zone (``[databases.<name>] time_zone``, UTC by default), text as utf8mb4.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from syncd.db.mysql import migrations
from syncd.db.mysql.engine import create_engine, describe, query
from syncd.db.mysql.url import MySQLDatabase
from syncd.db.writeback import (
    json_params,
    json_text,
    key_value,
    mapped_update,
    one_row,
    python_type,
    split_name,
)
from syncd.domain import Outcome
from syncd.errors import ConfigError, StoreError, WriteBackError
from syncd.settings_kinds import WriteBackSettings

_TIMES = ("finished_at", "state_changed_at")


def zone_of(offset: str) -> timezone:
    """``+08:00`` as a ``timezone``."""
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = offset[1:].split(":")
    return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))


def utc_iso(at: datetime | None) -> str | None:
    """A time as a procedure receives it: ISO 8601 in UTC with microseconds, so that
    ``CAST(LEFT(value, 26) AS DATETIME(6))`` reads it on MySQL and MariaDB alike."""
    return at.astimezone(UTC).isoformat(timespec="microseconds") if at else None


@dataclass(frozen=True)
class TableWrite:
    """``UPDATE table SET mapped columns WHERE key_column = key``, which must match one row."""

    name: str
    key_column: str
    statement: sa.Update
    sources: dict[str, str]
    key_is_number: bool
    status_map: Mapping[str, str]
    zone: timezone
    #: Parameters bound to JSON columns (SQLAlchemy serialises what they are given).
    jsons: frozenset[str] = frozenset()

    async def __call__(self, conn: AsyncConnection, outcome: Outcome) -> None:
        params = {p: self._value(p, source, outcome) for p, source in self.sources.items()}
        key = outcome.business_key
        params["syncd_key"] = key_value(self.name, self.key_column, self.key_is_number, key)
        result = await conn.execute(self.statement, params)
        one_row(self.name, self.key_column, outcome.business_key, result.rowcount)

    def _value(self, param: str, source: str, outcome: Outcome) -> Any:
        if source == "status":
            return self.status_map.get(outcome.status, outcome.status)
        value = getattr(outcome, source)
        if source == "comments":
            return list(value) if param in self.jsons else json_text(value)
        if source == "pending_approvers":
            return ",".join(value) or None
        if isinstance(value, datetime):
            return value.astimezone(self.zone).replace(tzinfo=None)
        return value


@dataclass(frozen=True)
class ProcedureWrite:
    """``CALL proc(business_key, outcome)`` of the application's, which finds its row and
    raises (SIGNAL) when it cannot write; it must not COMMIT."""

    name: str
    statement: sa.TextClause

    async def __call__(self, conn: AsyncConnection, outcome: Outcome) -> None:
        data = outcome.as_json()
        data.update({name: utc_iso(getattr(outcome, name)) for name in _TIMES})
        params = {
            "business_key": outcome.business_key,
            "outcome": json.dumps(data, ensure_ascii=False),
        }
        await conn.execute(self.statement, params)


@dataclass(frozen=True)
class MySQLTarget:
    """One kind's ``BusinessTarget[object]`` in the business database ``database``."""

    kind: str
    name: str
    database: str
    engine: AsyncEngine = field(repr=False)
    write_row: TableWrite | ProcedureWrite = field(repr=False)
    timeout: float = 30.0

    async def write(self, tx: object, outcome: Outcome, *, again: bool = False) -> None:
        """Write a final outcome once (again, with ``again``), with its ledger row."""
        await self._transaction(outcome, again=again)

    async def write_progress(self, tx: object, progress: Outcome) -> None:
        """Write an unfinished round's state unless the key shows a newer version."""
        await self._transaction(progress, again=False)

    async def _transaction(self, outcome: Outcome, *, again: bool) -> None:
        try:
            async with asyncio.timeout(self.timeout), self.engine.connect() as conn:
                async with conn.begin():
                    await self._write(conn, outcome, again=again)
        except WriteBackError:
            raise
        except TimeoutError as exc:
            raise WriteBackError(
                f"writing to {self.name} in business database {self.database} took longer "
                f"than {self.timeout:g} s; nothing of it stays"
            ) from exc
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise WriteBackError(f"writing to {self.name} failed: {describe(exc)}") from exc

    async def _write(self, conn: AsyncConnection, outcome: Outcome, *, again: bool) -> None:
        key = {"kind": self.kind, "business_key": outcome.business_key}
        await conn.execute(query("lock_business_key"), key)
        latest = (await conn.execute(query("select_business_key"), key)).one()
        if outcome.final:
            if await self._in_ledger(conn, outcome) and not again:
                return  # written; only syncd's own commit was lost
            write = outcome.round >= latest.round
        else:
            newer = (latest.round, latest.seq) >= (outcome.round, outcome.seq)
            write = not newer and not (latest.round == outcome.round and latest.final)
        if write:
            await self.write_row(conn, outcome)
            version = {
                **key,
                "round": outcome.round,
                "seq": outcome.seq,
                "final": outcome.final,
                "approval_id": outcome.approval_id,
                "status": outcome.status,
            }
            await conn.execute(query("record_key_version"), version)
        if outcome.final:
            ledger = {
                **key,
                "approval_id": outcome.approval_id,
                "round": outcome.round,
                "status": outcome.status,
                "seq": outcome.seq,
                "target": self.name[:200],
                "written": write,
            }
            await conn.execute(query("record_written"), ledger)

    async def _in_ledger(self, conn: AsyncConnection, outcome: Outcome) -> bool:
        params = {"approval_id": outcome.approval_id}
        rows = (await conn.execute(query("select_ledger"), params)).all()
        for row in rows:
            if (row.round, row.kind, row.business_key) != (
                outcome.round,
                self.kind,
                outcome.business_key,
            ):
                raise WriteBackError(
                    f"the ledger syncd_writeback of business database {self.database} holds "
                    f"approval {outcome.approval_id} as {row.kind} {row.business_key!r} round "
                    f"{row.round}, not {self.kind} {outcome.business_key!r} round "
                    f"{outcome.round}: was syncd's PostgreSQL replaced? See docs/mysql.md"
                )
        return bool(rows)


async def _columns(conn: AsyncConnection, schema: str | None, name: str) -> sa.Table | None:
    """The table as far as syncd's user sees it (the columns it has privileges on, with
    their types), from information_schema; None when it sees none."""
    params = {"schema": schema, "name": name}
    rows = (await conn.execute(query("select_visible_columns"), params)).all()
    if not rows:
        return None
    types = conn.dialect.ischema_names  # type: ignore[attr-defined]
    columns = [
        sa.Column(row.name, types.get(str(row.type).lower(), sa.types.NullType)()) for row in rows
    ]
    return sa.Table(name, sa.MetaData(), *columns, schema=schema)


async def _table(
    conn: AsyncConnection, database: MySQLDatabase, kind: str, config: WriteBackSettings
) -> TableWrite:
    assert config.table is not None and config.key_column is not None
    schema, name = split_name(config.table)
    where = f"[kinds.{kind}.write_back]"

    table = await _columns(conn, schema, name)
    if table is None:
        raise ConfigError(
            f"{where} table {config.table!r} does not exist in business database "
            f"{database.name} (or syncd's user may not see it: see docs/mysql.md for its grants)"
        )
    statement, sources = mapped_update(where, config, table, " that syncd's user can see")
    return TableWrite(
        name=config.table,
        key_column=config.key_column,
        statement=statement,
        sources=sources,
        key_is_number=python_type(table.c[config.key_column].type) is int,
        status_map=dict(config.status_map),
        zone=zone_of(database.time_zone),
        jsons=json_params(sources, config, table),
    )


async def _procedure(
    conn: AsyncConnection, database: MySQLDatabase, kind: str, name: str
) -> ProcedureWrite:
    schema, proc = split_name(name)
    params = {"schema": schema, "name": proc}
    if not (await conn.execute(query("select_procedure"), params)).scalar():
        raise ConfigError(
            f"[kinds.{kind}.write_back] procedure {name!r} does not exist in business "
            f"database {database.name} (or syncd's user may not execute it): create it as "
            "PROCEDURE (business_key VARCHAR(255), outcome JSON)"
        )
    quote = conn.dialect.identifier_preparer.quote
    qualified = ".".join(quote(part) for part in (schema, proc) if part)
    return ProcedureWrite(name, sa.text(f"CALL {qualified}(:business_key, :outcome)"))


async def build(
    database: MySQLDatabase, configs: Mapping[str, WriteBackSettings]
) -> tuple[dict[str, MySQLTarget], AsyncEngine]:
    """Check the footprint's version and every kind's write-back against the business
    database; the targets, and the engine to dispose of when done."""
    engine = create_engine(database)
    try:
        state = await migrations.status(engine, database.name)
        if not state.current:
            pending = ", ".join(m.label for m in state.pending)
            raise ConfigError(
                f"business database {database.name}: syncd's tables there are behind "
                f"({pending}): run `syncd migrate --database {database.name}`"
            )
        targets = {}
        async with engine.connect() as conn:
            for kind, config in configs.items():
                write: TableWrite | ProcedureWrite
                if config.procedure is not None:
                    write = await _procedure(conn, database, kind, config.procedure)
                    name = config.procedure
                else:
                    write = await _table(conn, database, kind, config)
                    name = write.name
                targets[kind] = MySQLTarget(
                    kind, name, database.name, engine, write, database.statement_timeout
                )
        return targets, engine
    except sa.exc.SQLAlchemyError as exc:
        await engine.dispose()
        raise StoreError(
            f"cannot inspect business database {database.name}: {describe(exc)}"
        ) from exc
    except BaseException:
        await engine.dispose()
        raise
