"""Gauges computed when Prometheus scrapes, from a few named queries and process state.

``ScrapeCollector.refresh()`` runs the named queries (backlogs, ages, quota use, pauses,
periodic-job turns) within :data:`SCRAPE_TIMEOUT` and reads the Stream, LISTEN and pool
state; ``collect()`` then hands the families to the registry. When the database does
not answer, only ``syncd_database_up 0`` and the process gauges are shown.

Every series of a closed set is shown, at 0 when nothing is there (each configured kind
and open state, each channel, purpose, pause reason and periodic job), so a rule or a
panel never has to tell "none" from "not scraped"; rows of kinds no longer configured
show as ``unknown``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from syncd import errors
from syncd.domain import CHANNELS, month_start
from syncd.metrics.labels import (
    DIRECTORY_USER_STATES,
    DUTIES,
    EXEMPT_PURPOSES,
    OPEN_STATES,
    PAUSE_REASONS,
    PURPOSES,
    Labels,
)
from syncd.quota import projected

SCRAPE_TIMEOUT = 5.0


class RowSource(Protocol):
    """Runs a named query (``syncd.db.store.BaseStore`` does)."""

    async def fetch_all(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...


class StreamView(Protocol):
    @property
    def state(self) -> str: ...

    @property
    def reconnects(self) -> int: ...


class ListenerView(Protocol):
    @property
    def reconnects(self) -> int: ...


@dataclass
class Sources:
    """What the scrape-time gauges are computed from; ``None`` parts are left out."""

    now: datetime
    actor: str
    store: RowSource | None = None
    stream: StreamView | None = None
    listener: ListenerView | None = None
    pool_stats: Mapping[str, int] = field(default_factory=dict)


class ScrapeCollector(Collector):
    """Gauges computed when Prometheus scrapes: ``refresh()`` first, then ``collect()``."""

    def __init__(self, labels: Labels, *, monthly_quota: int) -> None:
        self._labels = labels
        self._monthly_quota = monthly_quota
        self._families: list[Metric] = []
        self._lock = asyncio.Lock()

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        return list(self._families)

    async def refresh(self, sources: Sources) -> None:
        async with self._lock:
            families = self._process(sources)
            if sources.store is not None:
                families += await self._database(sources.store, sources)
            self._families = families

    def _process(self, s: Sources) -> list[Metric]:
        families: list[Metric] = []
        if s.stream is not None:
            connected = GaugeMetricFamily(
                "syncd_stream_connected", "1 while the Stream connection is open, else 0"
            )
            connected.add_metric([], 1.0 if str(s.stream.state) == "connected" else 0.0)
            reconnects = CounterMetricFamily(
                "syncd_stream_reconnects", "Stream connections opened after the first"
            )
            reconnects.add_metric([], s.stream.reconnects)
            families += [connected, reconnects]
        if s.listener is not None:
            listen = CounterMetricFamily(
                "syncd_listen_reconnects", "LISTEN connections opened after the first"
            )
            listen.add_metric([], s.listener.reconnects)
            families.append(listen)
        if s.pool_stats:
            pool = GaugeMetricFamily(
                "syncd_db_pool_connections", "Connections in the pool", labels=["state"]
            )
            pool.add_metric(["open"], s.pool_stats.get("pool_size", 0))
            pool.add_metric(["idle"], s.pool_stats.get("pool_available", 0))
            waiting = GaugeMetricFamily(
                "syncd_db_pool_waiting_requests", "Requests waiting for a pool connection"
            )
            waiting.add_metric([], s.pool_stats.get("requests_waiting", 0))
            families += [pool, waiting]
        return families

    async def _database(self, store: RowSource, s: Sources) -> list[Metric]:
        up = GaugeMetricFamily(
            "syncd_database_up", "1 if the scrape-time queries succeeded, else 0"
        )
        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT):
                families = await self._queries(store, s)
        except (errors.SyncdError, TimeoutError):
            up.add_metric([], 0.0)
            return [up]
        up.add_metric([], 1.0)
        return [up, *families]

    async def _queries(self, store: RowSource, s: Sources) -> list[Metric]:
        now = {"now": s.now}
        outbox = await store.fetch_all("metrics_outbox_backlog", now)
        quarantine = await store.fetch_all("metrics_outbox_quarantine", now)
        approvals = await store.fetch_all("metrics_open_approvals", now)
        unwritten = await store.fetch_all("metrics_unwritten", now)
        inbox = await store.fetch_all("metrics_inbox_backlog", now)
        usage = await store.fetch_all("select_usage", {"month": month_start(s.now).date()})
        control = await store.fetch_all("metrics_control", now)
        directory = await store.fetch_all("directory_counts", {})
        return [
            *self._directory(directory),
            *self._backlog(outbox, approvals, unwritten, inbox),
            *self._pair(
                ("syncd_outbox_quarantine", "syncd_outbox_quarantine_oldest_age_seconds"),
                "Outbox rows in quarantine (the database refused to store them)",
                ["kind"],
                self._by(quarantine, "kind"),
            ),
            *self._quota(usage, s.now),
            *self._control(control, s.actor),
        ]

    def _by(self, rows: Iterable[dict[str, Any]], *keys: str) -> dict[tuple[str, ...], list[float]]:
        """Rows summed per label tuple (values mapped to their closed sets): [items,
        oldest], with every tuple of the closed sets at [0, 0] to begin with."""
        lb = self._labels
        maps = {"kind": lb.kind, "state": lb.state, "channel": lb.channel, "database": lb.database}
        seeds = {"kind": lb.kinds, "state": OPEN_STATES, "channel": CHANNELS}
        seeds["database"] = lb.databases
        out = {key: [0.0, 0.0] for key in itertools.product(*(seeds[k] for k in keys))}
        for row in rows:
            labels = tuple(maps[k](str(row[k])) for k in keys)
            seen = out.setdefault(labels, [0.0, 0.0])
            seen[0] += float(row["items"])
            seen[1] = max(seen[1], float(row["oldest_seconds"] or 0.0))
        return out

    @staticmethod
    def _pair(
        names: tuple[str, str],
        what: str,
        labels: Sequence[str],
        values: dict[tuple[str, ...], list[float]],
    ) -> list[Metric]:
        """A count gauge and an oldest-age gauge over the same rows."""
        count = GaugeMetricFamily(names[0], f"{what} (now)", labels=list(labels))
        age = GaugeMetricFamily(names[1], f"Age of the oldest of: {what}", labels=list(labels))
        for key, (items, oldest) in sorted(values.items()):
            count.add_metric(list(key), items)
            age.add_metric(list(key), oldest)
        return [count, age]

    def _backlog(self, outbox: Any, approvals: Any, unwritten: Any, inbox: Any) -> list[Metric]:
        return [
            *self._pair(
                ("syncd_outbox_backlog", "syncd_outbox_backlog_oldest_age_seconds"),
                "Outbox rows not yet ingested",
                ["kind"],
                self._by(outbox, "kind"),
            ),
            *self._pair(
                ("syncd_outbox_waiting", "syncd_outbox_waiting_oldest_age_seconds"),
                "Outbox rows not yet ingested, per database they came from (syncd: written "
                "into syncd.outbox)",
                ["database"],
                self._by(outbox, "database"),
            ),
            *self._pair(
                ("syncd_approvals", "syncd_approvals_oldest_age_seconds"),
                "Approvals in an open or parked state, age since capture",
                ["kind", "state"],
                self._by(approvals, "kind", "state"),
            ),
            *self._pair(
                ("syncd_writeback_backlog", "syncd_writeback_backlog_oldest_age_seconds"),
                "Finished approvals not yet written back, age since the decision",
                ["kind"],
                self._by(unwritten, "kind"),
            ),
            *self._pair(
                ("syncd_inbox_backlog", "syncd_inbox_backlog_oldest_age_seconds"),
                "Events received, not yet applied (inbox lag)",
                ["channel"],
                self._by(inbox, "channel"),
            ),
        ]

    def _quota(self, usage: list[dict[str, Any]], now: datetime) -> list[Metric]:
        used = GaugeMetricFamily(
            "syncd_dingtalk_quota_used_calls",
            "DingTalk calls spent this month (China time), all replicas, per purpose",
            labels=["purpose"],
        )
        calls = dict.fromkeys(PURPOSES, 0.0)
        for row in usage:
            if str(row["purpose"]) in EXEMPT_PURPOSES:
                continue  # calls the quota does not count (the directory's contact calls)
            purpose = self._labels.purpose(str(row["purpose"]))
            calls[purpose] = calls.get(purpose, 0.0) + float(row["calls"])
        for purpose, count in calls.items():
            used.add_metric([purpose], count)
        projection = GaugeMetricFamily(
            "syncd_dingtalk_quota_projected_calls",
            "Calls this month projected to the month's end at the month's rate so far",
        )
        projection.add_metric([], projected(sum(calls.values()), now))  # as `syncd status`
        families: list[Metric] = [used, projection]
        if self._monthly_quota:
            limit = GaugeMetricFamily(
                "syncd_dingtalk_quota_limit_calls", "The configured monthly call quota"
            )
            limit.add_metric([], float(self._monthly_quota))
            families.append(limit)
        return families

    @staticmethod
    def _directory(rows: list[dict[str, Any]]) -> list[Metric]:
        """The synced directory's size and its last full sync (0: never)."""
        row = rows[0] if rows else {}
        users = GaugeMetricFamily(
            "syncd_directory_users", "Users in the synced directory", labels=["state"]
        )
        for state in DIRECTORY_USER_STATES:
            users.add_metric([state], float(row.get(state) or 0))
        departments = GaugeMetricFamily(
            "syncd_directory_departments", "Departments in the synced directory (not removed)"
        )
        departments.add_metric([], float(row.get("departments") or 0))
        last = GaugeMetricFamily(
            "syncd_directory_last_sync_timestamp_seconds",
            "When the directory's last full sync finished (Unix time; 0: never)",
        )
        finished = row.get("last_sync_at")
        last.add_metric([], finished.timestamp() if finished is not None else 0.0)
        return [users, departments, last]

    def _control(self, rows: list[dict[str, Any]], actor: str) -> list[Metric]:
        paused = GaugeMetricFamily(
            "syncd_dingtalk_paused",
            "1 while DingTalk calls are paused cluster-wide, per reason",
            labels=["reason"],
        )
        leader = GaugeMetricFamily(
            "syncd_leader",
            "1 while this replica holds the current turn of a periodic job (duty), else 0",
            labels=["duty"],
        )
        reasons = dict.fromkeys(sorted(PAUSE_REASONS), 0.0)
        held = dict.fromkeys(DUTIES, 0.0)
        for row in rows:
            name = str(row["name"])
            if name == "dingtalk_pause":
                reasons[self._labels.pause_reason(str(row["reason"]))] = 1.0
            elif name.startswith("turn:"):
                duty = self._labels.duty(name.removeprefix("turn:"))
                held[duty] = max(held.get(duty, 0.0), float(row["set_by"] == actor))
        for reason, value in reasons.items():
            paused.add_metric([reason], value)
        for duty, value in held.items():
            leader.add_metric([duty], value)
        return [paused, leader]
