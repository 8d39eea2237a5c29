"""Business databases besides syncd's own PostgreSQL: their write-back targets.

Only MySQL and MariaDB for now (docs/mysql.md); their adapter needs the ``mysql`` extra
and is imported only when a configuration names such a database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from syncd.db.mysql.url import MySQLDatabase, require_driver
from syncd.ports import BusinessTarget
from syncd.settings_kinds import WriteBackSettings


async def open_targets(
    database: MySQLDatabase, configs: Mapping[str, WriteBackSettings]
) -> tuple[dict[str, BusinessTarget[object]], Callable[[], Awaitable[None]]]:
    """The kinds' targets in ``database`` (checked against it), and what closes them."""
    require_driver()
    from syncd.db.mysql import target

    targets, engine = await target.build(database, configs)
    return dict(targets), engine.dispose
