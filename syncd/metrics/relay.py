"""The relay's metrics, labelled by business database (a closed set: the databases of
the configuration whose kinds have their outbox there; every series made at start).

- ``syncd_relay_rows_total{database}``: rows copied into ``syncd.outbox``;
- ``syncd_relay_lag_seconds{database}``: at the last pass, the age of the oldest row not
  relayed yet (0 when none waited);
- ``syncd_relay_poll_interval_seconds{database}``: the wait before the next pass;
- ``syncd_relay_quarantined_total{database}``: rows PostgreSQL refused (quarantined).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge


class RelayMetrics:
    """Implements ``syncd.ports.relay.RelayObserver``."""

    def __init__(self, registry: CollectorRegistry, databases: Iterable[str]) -> None:
        self.databases = frozenset(databases)
        by = ["database"]
        self.rows = Counter(
            "syncd_relay_rows",
            "Rows copied from a business database's syncd_outbox into syncd.outbox",
            by,
            registry=registry,
        )
        self.lag = Gauge(
            "syncd_relay_lag_seconds",
            "Age of the oldest row of a business database's syncd_outbox not relayed yet, "
            "at the last pass (0: none)",
            by,
            registry=registry,
        )
        self.interval = Gauge(
            "syncd_relay_poll_interval_seconds",
            "The relay's wait before its next read of a business database's syncd_outbox",
            by,
            registry=registry,
        )
        self.quarantined = Counter(
            "syncd_relay_quarantined",
            "Rows of a business database's syncd_outbox PostgreSQL refused (quarantined)",
            by,
            registry=registry,
        )
        for name in self.databases:
            for metric in (self.rows, self.lag, self.interval, self.quarantined):
                metric.labels(name)

    def relay_pass(self, database: str, relayed: int, lag: float, interval: float) -> None:
        if database not in self.databases:
            return
        self.rows.labels(database).inc(relayed)
        self.lag.labels(database).set(lag)
        self.interval.labels(database).set(interval)

    def relay_quarantined(self, database: str, sqlstate: str) -> None:
        if database in self.databases:
            self.quarantined.labels(database).inc()
