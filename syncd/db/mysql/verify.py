"""``syncd check`` on a business database: reachable, syncd's footprint current, and
every grant syncd's user needs (docs/mysql.md, "Grants") in place.

Grants are not read from ``SHOW GRANTS`` (roles, wildcards and global privileges make
that a guess) but tried: each privilege syncd uses is exercised by a statement that
touches no row (``… WHERE FALSE``) in a transaction rolled back at once. MySQL checks
privileges before it looks at a row, so a missing one fails the statement with error
1142 (table), 1143 (column) or 1370 (routine). Each missing one is named with the GRANT
statement that gives it, to the account the session runs as.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from syncd.db.migrations import Status
from syncd.db.mysql import migrations
from syncd.db.mysql.engine import describe, query
from syncd.db.mysql.grants import FOOTPRINT
from syncd.db.mysql.url import MySQLDatabase
from syncd.db.writeback import split_name
from syncd.errors import StoreError
from syncd.settings_kinds import WriteBackSettings

#: MySQL's errors for a privilege that is missing (table, column, routine).
DENIED = frozenset({1142, 1143, 1370})
#: A table or column that is not there.
MISSING = frozenset({1146, 1054})
#: The login itself refused (password, account, host, database): waiting will not help.
REFUSED_LOGIN = frozenset({1044, 1045, 1049, 1130, 1698})
_VERSIONS = "syncd_schema_migrations"


@dataclass
class DatabaseCheck:
    """What ``syncd check`` found in one business database. ``unreachable`` (the check
    could not be made) and ``problems`` (each naming its fix) are empty when it is fine."""

    name: str
    unreachable: str | None = None
    problems: list[str] = field(default_factory=list)
    version: str | None = None

    @property
    def fine(self) -> bool:
        return self.unreachable is None and not self.problems


def _code(exc: BaseException) -> int | None:
    args = getattr(getattr(exc, "orig", None) or exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _quote(name: str) -> str:
    return ".".join("`" + part.replace("`", "``") + "`" for part in name.split("."))


def _account(current: str) -> str:
    user, _, host = current.rpartition("@")
    return f"'{user}'@'{host}'"


class _Prober:
    """Tries privileges on one connection, each in a transaction rolled back, and words
    what is missing with its GRANT."""

    def __init__(self, conn: AsyncConnection, check: DatabaseCheck, database: str) -> None:
        self.conn, self.check, self.database = conn, check, database
        self.account = "CURRENT_USER"

    async def tries(self, statement: str) -> int | None:
        """None when the statement ran; else MySQL's error number (denied or missing)."""
        if self.conn.in_transaction():  # a read's autobegun one
            await self.conn.rollback()
        try:
            async with self.conn.begin() as tx:
                await self.conn.exec_driver_sql(statement)
                await tx.rollback()
        except sa.exc.DBAPIError as exc:
            code = _code(exc)
            if code in DENIED or code in MISSING:
                return code
            raise
        return None

    async def columns(self, table: str) -> list[str]:
        schema, name = split_name(table)
        params = {"schema": schema, "name": name}
        rows = (await self.conn.execute(query("select_visible_columns"), params)).all()
        return [str(row.name) for row in rows]

    def qualified(self, table: str) -> str:
        schema, name = split_name(table)
        return f"{_quote(schema or self.database)}.{_quote(name)}"

    def lacks(self, privilege: str, what: str, on: str) -> None:
        why = " (its schema version could not be read)" if what == _VERSIONS else ""
        self.check.problems.append(
            f"business database {self.check.name}: syncd's user {self.account} lacks "
            f"{privilege} on {what}{why}: GRANT {privilege} ON {on} TO {self.account}"
        )


def _probe(privilege: str, table: str, columns: list[str]) -> str | None:
    """A statement that needs ``privilege`` on the whole of ``table`` and touches no row
    (None when no column is visible: then the SELECT probe answers for the table)."""
    t = _quote(table)
    if privilege == "SELECT":
        return f"SELECT * FROM {t} WHERE FALSE"
    if privilege == "DELETE":
        return f"DELETE FROM {t} WHERE FALSE"
    if not columns:
        return None
    names = [_quote(c) for c in columns]
    if privilege == "UPDATE":
        return f"UPDATE {t} SET " + ", ".join(f"{n} = NULL" for n in names) + " WHERE FALSE"
    nulls = ", ".join("NULL" for _ in names)
    return f"INSERT INTO {t} ({', '.join(names)}) SELECT {nulls} FROM DUAL WHERE FALSE"


async def _footprint(p: _Prober) -> dict[str, int | None]:
    """Every privilege on syncd's own tables; the SELECT probes' answers by table."""
    selects: dict[str, int | None] = {}
    for table, privileges in FOOTPRINT.items():
        columns = await p.columns(table)
        for privilege in privileges.split(", "):
            statement = _probe(privilege, table, columns)
            code = await p.tries(statement) if statement else selects[table]
            if privilege == "SELECT":
                selects[table] = code
            if code in DENIED:
                p.lacks(privilege, table, p.qualified(table))
    return selects


async def _table(p: _Prober, kind: str, config: WriteBackSettings) -> None:
    assert config.table is not None and config.key_column is not None
    where, t = f"[kinds.{kind}.write_back]", _quote(config.table)
    probes = [
        ("SELECT", config.key_column, f"SELECT {_quote(config.key_column)} FROM {t} WHERE FALSE")
    ]
    probes += [
        ("UPDATE", c, f"UPDATE {t} SET {_quote(c)} = NULL WHERE FALSE") for c in config.columns
    ]
    for privilege, column, statement in probes:
        code = await p.tries(statement)
        if code == 1146:
            p.check.problems.append(
                f"{where} table {config.table!r} does not exist in business database {p.check.name}"
            )
            return
        if code == 1054:
            p.check.problems.append(
                f"{where} column {column!r} does not exist in table {config.table!r} of "
                f"business database {p.check.name}"
            )
        elif code in DENIED:
            p.lacks(f"{privilege} ({_quote(column)})", config.table, p.qualified(config.table))


async def _procedure(p: _Prober, kind: str, name: str) -> None:
    schema, proc = split_name(name)
    params = {"schema": schema, "name": proc}
    if (await p.conn.execute(query("select_procedure"), params)).scalar():
        return
    p.check.problems.append(
        f"[kinds.{kind}.write_back] procedure {name!r} does not exist in business database "
        f"{p.check.name}, or syncd's user {p.account} may not execute it: GRANT EXECUTE ON "
        f"PROCEDURE {p.qualified(name)} TO {p.account}"
    )


async def verify(
    engine: AsyncEngine, database: MySQLDatabase, configs: Mapping[str, WriteBackSettings]
) -> DatabaseCheck:
    """Check one business database for ``syncd check``; never raises for what it finds."""
    check = DatabaseCheck(database.name)
    try:
        async with engine.connect() as conn:
            p = _Prober(conn, check, str((await conn.execute(query("current_database"))).scalar()))
            p.account = _account(str((await conn.execute(query("current_account"))).scalar()))
            selects = await _footprint(p)
            for kind, config in configs.items():
                if config.procedure is not None:
                    await _procedure(p, kind, config.procedure)
                else:
                    await _table(p, kind, config)
    except (sa.exc.SQLAlchemyError, OSError, TimeoutError) as exc:
        if _code(exc) in REFUSED_LOGIN:
            check.problems.append(
                f"business database {database.name} refused syncd's login: {describe(exc)}; "
                f"check the user, password and database in [databases.{database.name}] dsn"
            )
        else:
            check.unreachable = f"cannot reach business database {database.name}: {describe(exc)}"
        return check
    await _version(engine, check, selects)
    return check


async def _version(
    engine: AsyncEngine, check: DatabaseCheck, selects: Mapping[str, int | None]
) -> None:
    migrate = f"run `syncd migrate --database {check.name}`"
    if selects.get(_VERSIONS) in DENIED:
        return  # named with its grant; the version is read once that is given
    try:
        state: Status = await migrations.status(engine, check.name)
    except StoreError as exc:
        check.unreachable = exc.message
        return
    if state.current:
        check.version = f"{max(state.applied):04d}" if state.applied else None
        return
    pending = ", ".join(m.label for m in state.pending)
    check.problems.insert(
        0, f"business database {check.name}: syncd's tables there are behind ({pending}): {migrate}"
    )
