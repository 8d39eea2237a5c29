"""The demo's business side on MariaDB (``syncd demo --business-db mariadb``).

The legacy application keeps its tables in a MariaDB (or MySQL) server that the demo
starts from this machine's binaries in a temporary directory
(:class:`syncd.embedded_mysql.LocalMySQL`), or in a fresh database on a server of one's
own (``SYNCD_DEMO_MYSQL_DSN``, a ``mysql://`` URL of a user who may create databases).
syncd's footprint is made there by its MySQL migrations (what ``syncd migrate --database``
runs), and a capture trigger per kind by what ``syncd capture add --database`` runs;
syncd's own state stays in the demo's PostgreSQL. At the end the server is stopped and
its directory removed (or, on a server of one's own, the database dropped).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import cache
from importlib import resources
from typing import Any

from syncd.db.queries import parse_queries
from syncd.demo.config import CAPTURES
from syncd.demo.legacy_app import LegacyApp, Request
from syncd.errors import ConfigError, SyncdError

#: Where a server of one's own is named (a URL of a user who may create databases).
DSN_VARIABLE = "SYNCD_DEMO_MYSQL_DSN"
DATABASE = "syncd_demo"
HOW_TO_INSTALL = (
    "syncd demo --business-db mariadb needs a MariaDB or MySQL server binary (mariadbd or "
    "mysqld) on this machine; the demo starts its own server in a temporary directory. "
    "Install one: Debian/Ubuntu: sudo apt-get install mariadb-server (its service need "
    "not run); macOS: brew install mariadb. Or use a server of your own: "
    f"{DSN_VARIABLE}=mysql://user:password@host:3306/ (a user who may create databases)"
)

Run = Callable[[str, dict[str, Any] | None], Awaitable[list[dict[str, Any]]]]


@cache
def _queries() -> dict[str, str]:
    text = resources.files("syncd.demo").joinpath("app_mysql.sql").read_text(encoding="utf-8")
    return dict(parse_queries(text))


def _url(dsn: str, database: str, *, hide: bool = False) -> str:
    import sqlalchemy as sa

    url = sa.make_url(dsn).set(database=database)
    return url.render_as_string(hide_password=hide)


@asynccontextmanager
async def _session(url: str) -> AsyncIterator[Run]:
    """A plain autocommit session on ``url`` (as the application: not syncd's session
    setup, so capture triggers see its writes)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from syncd.db.mysql.engine import driver_url

    engine = create_async_engine(driver_url(url), isolation_level="AUTOCOMMIT", pool_size=1)
    try:
        async with engine.connect() as conn:

            async def run(
                statement: str, params: dict[str, Any] | None = None
            ) -> list[dict[str, Any]]:
                result = await conn.exec_driver_sql(statement, params or ())
                if result.returns_rows:
                    return [dict(row) for row in result.mappings()]
                return [{"id": result.lastrowid}] if result.lastrowid else []

            yield run
    finally:
        await engine.dispose()


class MariaDBBusiness:
    """The business database of a demo run: ``await start()``, ``await prepare()``,
    ``url`` for syncd and the application, ``close()`` at the end."""

    def __init__(self, *, keep: bool = False) -> None:
        from syncd.db.mysql.url import require_driver

        require_driver()
        self.keep = keep
        self.own = os.environ.get(DSN_VARIABLE) or None
        self.server: Any = None
        self.database = DATABASE
        if self.own is None:
            from syncd.embedded_mysql import find_binary

            # only looked up here: the server and its directory come with start()
            if find_binary("mariadbd", "mysqld") is None:
                raise ConfigError(HOW_TO_INSTALL)
        else:
            self.database = f"syncd_demo_{secrets.token_hex(4)}"
        self.url = ""

    @property
    def label(self) -> str:
        """Which server holds the business side, for the views."""
        if self.own is not None:
            return "your server"
        return "MySQL" if self.server is not None and not self.server.mariadb else "MariaDB"

    @property
    def started(self) -> str:
        """The line saying where the application's tables are."""
        if self.own is not None:
            return f"The application's tables are in a new database on your server: {self.shown}"
        return f"{self.label} started, the application's tables in {self.shown}"

    @property
    def shown(self) -> str:
        """The business database's URL without its password."""
        return _url(self.url, self.database, hide=True)

    async def start(self) -> None:
        if self.own is None:
            from syncd.embedded import EmbeddedServerError
            from syncd.embedded_mysql import LocalMySQL

            try:
                self.server = LocalMySQL()
                await asyncio.to_thread(self.server.start)
            except EmbeddedServerError as exc:
                raise SyncdError(f"cannot start the demo's MariaDB server: {exc}") from exc
            admin = self.server.url()
        else:
            admin = self.own
        async with _session(_url(admin, "")) as run:
            await run(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4", None)
        self.url = _url(admin, self.database)

    async def prepare(self) -> None:
        """The application's tables, syncd's footprint (its MySQL migrations) and a
        capture trigger per kind."""
        from syncd.db.mysql import capture
        from syncd.db.mysql import migrations as mysql_migrations
        from syncd.db.mysql.capture_ddl import MySQLCaptureSpec
        from syncd.db.mysql.url import MySQLDatabase

        async with _session(self.url) as run:
            for name in ("create_leave_request", "create_expense_claim"):
                await run(_queries()[name], None)
        async with mysql_migrations.opened(MySQLDatabase("legacy", self.url)) as engine:
            await mysql_migrations.apply(engine, "legacy")
            # the server's notes on the DROP … IF EXISTS and CREATE USER IF NOT EXISTS a
            # first install runs ("Trigger does not exist"), which the driver logs as
            # warnings, are no news in the demo's view
            driver = logging.getLogger("asyncmy")
            level = driver.level
            driver.setLevel(logging.ERROR)
            try:
                for kind, (table, key, when) in CAPTURES.items():
                    spec = MySQLCaptureSpec(kind, table.removeprefix("app."), key, when)
                    await capture.install(engine, spec, "+00:00")
            finally:
                driver.setLevel(level)

    async def unrelayed(self) -> int:
        """Outbox rows not yet relayed into syncd's PostgreSQL."""
        async with _session(self.url) as run:
            rows = await run(_queries()["count_unrelayed"], None)
        return int(rows[0]["n"])

    async def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of one of the application's tables (``leave_request``,
        ``expense_claim``)."""
        assert table in ("leave_request", "expense_claim")
        async with _session(self.url) as run:
            return await run(f"SELECT * FROM {table} ORDER BY id", None)

    def legacy_app(self, *, count: int, rate: float) -> MariaDBLegacyApp:
        return MariaDBLegacyApp(self.url, count=count, rate=rate)

    async def close(self) -> list[str]:
        """Stop and remove everything (unless ``keep``); lines saying what was kept."""
        if not self.url and self.server is None:
            return []  # nothing was made
        if self.server is None:
            if not self.keep:
                async with _session(_url(self.url, "")) as run:
                    await run(f"DROP DATABASE IF EXISTS `{self.database}`", None)
            return [f"The business database {self.shown} is kept."] if self.keep else []
        if not self.keep:
            await asyncio.to_thread(self.server.close)
            return []
        await asyncio.to_thread(self.server.stop)
        start = [*self.server._server_args()]
        client = ["mariadb" if self.server.mariadb else "mysql", "--no-defaults"]
        return [
            f"The business database is kept in {self.server.root} (the server is stopped):",
            f"  {shlex.join(start)} &",
            f"  {shlex.join([*client, f'--socket={self.server.socket}', '-uroot', DATABASE])}",
            "  then e.g.: SELECT * FROM leave_request; SELECT * FROM syncd_writeback;",
        ]


class MariaDBLegacyApp(LegacyApp):
    """The legacy app inserting into the MariaDB tables."""

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Callable[[Request], Awaitable[Any]]]:
        async with _session(self.dsn) as run:

            async def insert(request: Request) -> Any:
                params = dict(request.params)
                # no receipt: a MySQL/MariaDB kind takes no files from its table here
                params.pop("receipt", None)
                params.pop("receipt_name", None)
                if "items" in params:
                    params["items"] = json.dumps(params["items"].obj, ensure_ascii=False)
                rows = await run(_queries()[request.query], params)
                return rows[0]["id"] if rows else None

            yield insert
