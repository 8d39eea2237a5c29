"""Business databases besides syncd's own PostgreSQL: their write-back targets.

Only MySQL and MariaDB for now (docs/mysql.md); their adapter needs the ``mysql`` extra
and is imported only when a configuration names such a database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from syncd.db.mysql.url import MySQLDatabase, require_driver
from syncd.errors import StoreError
from syncd.ports import BusinessTarget
from syncd.settings import Settings
from syncd.settings_kinds import WriteBackSettings


async def open_targets(
    database: MySQLDatabase, configs: Mapping[str, WriteBackSettings]
) -> tuple[dict[str, BusinessTarget[object]], Callable[[], Awaitable[None]]]:
    """The kinds' targets in ``database`` (checked against it), and what closes them."""
    require_driver()
    from syncd.db.mysql import target

    targets, engine = await target.build(database, configs)
    return dict(targets), engine.dispose


async def open_all(settings: Settings, closers: list[Any]) -> dict[str, BusinessTarget[object]]:
    """The targets of every kind whose table is in a business database (MySQL/MariaDB);
    what closes them is appended to ``closers``."""
    found: dict[str, BusinessTarget[object]] = {}
    for name, database in settings.databases.items():
        configs = {
            kind: config.write_back
            for kind, config in settings.kinds.items()
            if config.database == name and config.write_back
        }
        if configs:
            targets, close = await open_targets(database.plain(name), configs)
            closers.append(close)
            found.update(targets)
    return found


async def check_all(settings: Settings) -> list[Any]:
    """``syncd check`` on every business database a kind names: a
    :class:`syncd.db.mysql.verify.DatabaseCheck` each (reachable, footprint current,
    grants), never raising for what it finds."""
    named = {kind.database for kind in settings.kinds.values() if kind.database}
    names = sorted(name for name in settings.databases if name in named)
    if not names:
        return []
    require_driver()
    from syncd.db.mysql.engine import create_engine
    from syncd.db.mysql.verify import verify

    found = []
    for name in names:
        database = settings.databases[name].plain(name)
        configs = {
            kind: config.write_back
            for kind, config in settings.kinds.items()
            if config.database == name and config.write_back
        }
        engine = create_engine(database)
        try:
            found.append(await verify(engine, database, configs))
        finally:
            await engine.dispose()
    return found


async def outbox_backlogs(settings: Settings, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per business database in ``names``: rows of its ``syncd_outbox`` not relayed yet
    (``waiting``, ``oldest_at``), or the ``error`` that kept syncd from counting them."""
    require_driver()
    from syncd.db.mysql.engine import create_engine
    from syncd.db.mysql.outbox import MySQLOutboxSource

    found: dict[str, dict[str, Any]] = {}
    for name in names:
        config = settings.databases[name]
        engine = create_engine(config.plain(name))
        try:
            source = MySQLOutboxSource(name, engine, config.statement_timeout)
            backlog = await source.backlog()
            found[name] = {"waiting": backlog.waiting, "oldest_at": backlog.oldest_at}
        except StoreError as exc:
            found[name] = {"error": exc.message}
        finally:
            await engine.dispose()
    return found
