"""The App's relays: one per business database that holds a kind's outbox.

Built by :meth:`syncd.app.App.open` after the stages; each relay is a stage of its own,
named ``relay_<database>``, run first in every cycle of ``drain`` and in a loop of its own
by ``Runner.run`` (adaptive poll interval, docs/mysql.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from syncd.db.mysql.url import require_driver
from syncd.db.relay_store import PostgresRelayStore
from syncd.metrics.relay import RelayMetrics
from syncd.pipeline.relay import PollInterval, Relay
from syncd.ports import Clock
from syncd.settings import Settings


def relay_databases(settings: Settings) -> list[str]:
    """The business databases some kind names: their outboxes are relayed."""
    named = {kind.database for kind in settings.kinds.values() if kind.database}
    return sorted(name for name in settings.databases if name in named)


def metric_sets(settings: Settings) -> dict[str, Any]:
    """The closed sets of the metrics' ``kind`` and ``database`` labels (``Metrics``'s
    keywords): the configured kinds and databases, and each kind's database."""
    return {
        "kinds": list(settings.kinds),
        "databases": list(settings.databases),
        "kind_databases": {name: kind.database for name, kind in settings.kinds.items()},
    }


def build_relays(
    settings: Settings,
    pool: AsyncConnectionPool[Any],
    clock: Clock,
    registry: CollectorRegistry,
    *,
    owner: str,
    closers: list[Callable[[], Awaitable[None]]],
) -> dict[str, Relay]:
    names = relay_databases(settings)
    if not names:
        return {}
    require_driver()
    from syncd.db.mysql.engine import create_engine
    from syncd.db.mysql.outbox import MySQLOutboxSource

    metrics = RelayMetrics(registry, names)
    store = PostgresRelayStore(pool, actor=owner)
    retention = timedelta(days=settings.pipeline.retention_days)
    relays: dict[str, Relay] = {}
    for name in names:
        config = settings.databases[name]
        engine = create_engine(config.plain(name))
        closers.append(engine.dispose)
        source = MySQLOutboxSource(name, engine, config.statement_timeout)
        relays[f"relay_{name}"] = Relay(
            name,
            source,
            store,
            clock,
            batch_size=config.relay_batch_size,
            poll=PollInterval(config.poll_min, config.poll_max),
            retention=retention,
            observer=metrics,
        )
    return relays
