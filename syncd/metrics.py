"""Every Prometheus metric syncd exports, declared once, on a registry the daemon owns.

``Metrics`` is built on a ``CollectorRegistry`` the daemon creates (never the global
one), so each test reads its own values. It is the pipeline's ``Observer`` (counters and
histograms fed as work happens), it instruments the DingTalk ``httpx`` client through
event hooks, and it holds the gauges computed at scrape time: ``refresh()`` runs a few
named queries (backlogs, ages, quota use, pauses, periodic-job turns) and reads the
Stream, LISTEN and pool state; the ``/metrics`` handler awaits it, then renders.

Every label value comes from a closed set: stage names, configured kinds (anything else
is ``unknown``), approval states, channels, endpoints, outcomes, syncd's exception
classes and its own parking reasons (anything else is ``other``). Never an id, a user,
a process code or a raw DingTalk code. The names are listed in the operations guide.
"""

from __future__ import annotations

import asyncio
import platform
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from syncd import __version__, errors
from syncd.dingtalk.callback import REASONS as CALLBACK_REASONS
from syncd.dingtalk.client import ObservedClient
from syncd.dingtalk.mapping import error_from_response
from syncd.domain import ApprovalState, month_start, next_month_start

CHANNELS = ("stream", "callback", "failed_list", "poll")
OUTCOMES = (
    "ok",
    "throttled",
    "quota_exhausted",
    "auth_error",
    "rejected",
    "transient",
    "error",
)
#: (method or "*", path) → endpoint label; anything else is "other".
ENDPOINTS: dict[tuple[str, str], str] = {
    ("POST", "/v1.0/workflow/processInstances"): "create",
    ("GET", "/v1.0/workflow/processInstances"): "get",
    ("*", "/v1.0/workflow/processes/instanceIds/query"): "list",
    ("*", "/v1.0/workflow/processInstances/terminate"): "terminate",
    ("*", "/v1.0/workflow/processInstances/comments"): "comment",
    ("*", "/v1.0/workflow/forms/schemas/processCodes"): "schema",
    ("*", "/v1.0/oauth2/accessToken"): "token",
    ("*", "/v1.0/gateway/connections/open"): "stream_open",
    ("*", "/call_back/get_call_back_failed_result"): "failed_list",
}
#: syncd's own reasons for parking a row (ingest and submit), beside exception classes.
PARK_REASONS = frozenset(
    {
        "unknown_kind",
        "empty_key",
        "unknown_action",
        "still_running",
        "bad_payload",
        "nothing_to_cancel",
        "not_created",
        "invalid",
        "key_too_long",
        "internal_error",
    }
)
#: Why the database refused an outbox row, by SQLSTATE class (quarantine reasons).
QUARANTINE_REASONS = {
    "22": "data_exception",
    "23": "integrity_violation",
    "54": "program_limit",
    "XX": "internal_error",
}
PAUSE_REASONS = frozenset({"quota", "auth"})
OPEN_STATES = ("pending", "submitting", "unknown", "running", "invalid", "dead")

_SECONDS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
_REQUEST = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_STAGE = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60)
_CALLS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50)
SCRAPE_TIMEOUT = 5.0


def _error_classes() -> frozenset[str]:
    found: set[str] = set()
    todo: list[type[BaseException]] = [errors.SyncdError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return frozenset(found)


def endpoint_of(method: str, path: str) -> str:
    """The endpoint label of a DingTalk request (a closed set)."""
    return ENDPOINTS.get((method, path)) or ENDPOINTS.get(("*", path)) or "other"


def outcome_of(response: httpx.Response) -> str:
    """The outcome label of a DingTalk answer, from syncd's error mapping."""
    error = error_from_response(response.status_code, response.headers, response.content)
    if error is None:
        return "ok"
    for cls, name in (
        (errors.DingTalkThrottled, "throttled"),
        (errors.DingTalkQuotaExhausted, "quota_exhausted"),
        (errors.DingTalkAuthError, "auth_error"),
        (errors.DingTalkRejected, "rejected"),
        (errors.DingTalkTransient, "transient"),
    ):
        if isinstance(error, cls):
            return name
    return "error"


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

    def __init__(self, kind: Callable[[object], str], *, monthly_quota: int) -> None:
        self._kind = kind
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
        return [
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
        """Rows summed per label tuple (kinds mapped to the closed set): [items, oldest]."""
        out: dict[tuple[str, ...], list[float]] = {}
        for row in rows:
            labels = tuple(self._kind(row[k]) if k == "kind" else str(row[k]) for k in keys)
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
        total = 0.0
        for row in usage:
            used.add_metric([str(row["purpose"])], float(row["calls"]))
            total += float(row["calls"])
        start, end = month_start(now), next_month_start(now)
        elapsed = max((now - start).total_seconds(), 3600.0)  # no wild guesses on day one
        projected = GaugeMetricFamily(
            "syncd_dingtalk_quota_projected_calls",
            "Calls this month projected to the month's end at the month's rate so far",
        )
        projected.add_metric([], total * (end - start).total_seconds() / elapsed)
        families: list[Metric] = [used, projected]
        if self._monthly_quota:
            limit = GaugeMetricFamily(
                "syncd_dingtalk_quota_limit_calls", "The configured monthly call quota"
            )
            limit.add_metric([], float(self._monthly_quota))
            families.append(limit)
        return families

    def _control(self, rows: list[dict[str, Any]], actor: str) -> list[Metric]:
        paused = GaugeMetricFamily(
            "syncd_dingtalk_paused",
            "1 while DingTalk calls are paused cluster-wide, per reason",
            labels=["reason"],
        )
        leader = GaugeMetricFamily(
            "syncd_leader",
            "1 while this replica holds the current turn of a periodic job, else 0",
            labels=["job"],
        )
        reasons = dict.fromkeys(sorted(PAUSE_REASONS), 0.0)
        for row in rows:
            name = str(row["name"])
            if name == "dingtalk_pause":
                reason = str(row["reason"])
                reasons[reason if reason in PAUSE_REASONS else "other"] = 1.0
            elif name.startswith("turn:"):
                leader.add_metric([name.removeprefix("turn:")], float(row["set_by"] == actor))
        for reason, value in reasons.items():
            paused.add_metric([reason], value)
        return [paused, leader]


class Metrics:
    """The metric objects, the Prometheus ``Observer`` and the client instrumentation."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        kinds: Iterable[str] = (),
        monthly_quota: int = 0,
    ) -> None:
        self.registry = registry
        self.kinds = frozenset(kinds)
        self.error_classes = _error_classes()
        self._started: weakref.WeakKeyDictionary[httpx.Request, float] = weakref.WeakKeyDictionary()
        r = registry
        self.stage_runs = Counter("syncd_stage_runs", "Stage batches run", ["stage"], registry=r)
        self.stage_items = Counter(
            "syncd_stage_items", "Items handled by a stage", ["stage"], registry=r
        )
        self.stage_errors = Counter(
            "syncd_stage_errors",
            "Stage batches that failed, by error class",
            ["stage", "error_class"],
            registry=r,
        )
        self.stage_seconds = Histogram(
            "syncd_stage_duration_seconds",
            "Time for one stage batch",
            ["stage"],
            buckets=_STAGE,
            registry=r,
        )
        self.created = Counter(
            "syncd_approvals_created", "DingTalk instances created", ["kind"], registry=r
        )
        self.parked = Counter(
            "syncd_approvals_parked",
            "Approvals parked as invalid or dead",
            ["kind", "state", "reason"],
            registry=r,
        )
        self.quarantined = Counter(
            "syncd_outbox_quarantined",
            "Outbox rows the database refused to store, set aside in syncd.outbox_quarantine",
            ["kind", "reason"],
            registry=r,
        )
        self.finished = Counter(
            "syncd_approvals_finished",
            "Approvals that reached a final state, by the channel the outcome came from",
            ["kind", "state", "channel"],
            registry=r,
        )
        self.writeback_failed = Counter(
            "syncd_writeback_failures",
            "Final outcomes whose business-row write failed (retried later)",
            ["kind"],
            registry=r,
        )
        self.create_latency = Histogram(
            "syncd_create_latency_seconds",
            "Outbox commit to DingTalk instance created",
            ["kind"],
            buckets=_SECONDS,
            registry=r,
        )
        self.writeback_latency = Histogram(
            "syncd_writeback_latency_seconds",
            "DingTalk decision to business row written",
            ["kind"],
            buckets=_SECONDS,
            registry=r,
        )
        self.calls_per_approval = Histogram(
            "syncd_dingtalk_calls_per_approval",
            "DingTalk calls spent on one approval, counted when it finishes",
            ["kind"],
            buckets=_CALLS,
            registry=r,
        )
        self.events = Counter(
            "syncd_events_received",
            "Events received per channel (poll: an outcome learned by a GET)",
            ["channel"],
            registry=r,
        )
        self.duplicates = Counter(
            "syncd_events_duplicate",
            "Events dropped because the inbox already had them",
            ["channel"],
            registry=r,
        )
        self.requests = Counter(
            "syncd_dingtalk_requests",
            "Requests sent to DingTalk, by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "syncd_dingtalk_request_duration_seconds",
            "DingTalk request time until the answer was read",
            ["endpoint", "outcome"],
            buckets=_REQUEST,
            registry=r,
        )
        self.throttled = Counter(
            "syncd_dingtalk_throttled",
            "Requests DingTalk refused for the rate limit or an address ban",
            ["endpoint"],
            registry=r,
        )
        self.callbacks_rejected = Counter(
            "syncd_callbacks_rejected",
            "HTTP callback pushes refused, by reason (forged, stale, replayed, malformed, big)",
            ["reason"],
            registry=r,
        )
        self.build = Info("syncd_build", "Version of syncd and Python", registry=r)
        self.build.info({"version": __version__, "python": platform.python_version()})
        for channel in CHANNELS:
            self.events.labels(channel)
            self.duplicates.labels(channel)
        for reason in CALLBACK_REASONS:
            self.callbacks_rejected.labels(reason)
        self.scrape = ScrapeCollector(self.kind, monthly_quota=monthly_quota)
        registry.register(self.scrape)

    # --- closed label sets --------------------------------------------------------------

    def kind(self, value: object) -> str:
        return value if isinstance(value, str) and value in self.kinds else "unknown"

    def error_class(self, value: str) -> str:
        return value if value in self.error_classes else "other"

    def reason(self, value: str) -> str:
        return value if value in PARK_REASONS or value in self.error_classes else "other"

    @staticmethod
    def channel(value: str) -> str:
        return value if value in CHANNELS else "other"

    @staticmethod
    def state(value: str) -> str:
        return value if value in ApprovalState._value2member_map_ else "other"

    # --- Observer -----------------------------------------------------------------------

    def stage_run(self, stage: str, handled: int, seconds: float) -> None:
        self.stage_runs.labels(stage).inc()
        self.stage_items.labels(stage).inc(handled)
        self.stage_seconds.labels(stage).observe(seconds)

    def stage_failed(self, stage: str, error_class: str) -> None:
        self.stage_errors.labels(stage, self.error_class(error_class)).inc()

    def approval_created(self, kind: str, seconds_since_capture: float) -> None:
        self.created.labels(self.kind(kind)).inc()
        self.create_latency.labels(self.kind(kind)).observe(max(0.0, seconds_since_capture))

    def approval_parked(self, kind: str, state: str, reason: str) -> None:
        self.parked.labels(self.kind(kind), self.state(state), self.reason(reason)).inc()

    def outbox_quarantined(self, kind: str, sqlstate: str) -> None:
        reason = QUARANTINE_REASONS.get(sqlstate[:2], "other")
        self.quarantined.labels(self.kind(kind), reason).inc()

    def approval_finished(
        self,
        kind: str,
        state: str,
        channel: str,
        *,
        written: bool,
        seconds_since_decision: float | None,
        calls_spent: int | None,
    ) -> None:
        k = self.kind(kind)
        self.finished.labels(k, self.state(state), self.channel(channel)).inc()
        if channel == "poll":
            self.events.labels("poll").inc()
        if not written:
            self.writeback_failed.labels(k).inc()
        elif seconds_since_decision is not None:
            self.writeback_latency.labels(k).observe(seconds_since_decision)
        if calls_spent is not None:
            self.calls_per_approval.labels(k).observe(calls_spent)

    def event_stored(self, channel: str, new: bool) -> None:
        self.events.labels(self.channel(channel)).inc()
        if not new:
            self.duplicates.labels(self.channel(channel)).inc()

    def callback_rejected(self, reason: str) -> None:
        self.callbacks_rejected.labels(reason if reason in CALLBACK_REASONS else "other").inc()

    # --- DingTalk client hooks ----------------------------------------------------------

    def instrument(self, client: httpx.AsyncClient) -> httpx.AsyncClient:
        """Count and time every request ``client`` sends (token fetches included); with an
        :class:`~syncd.dingtalk.client.ObservedClient`, those that got no answer too."""
        client.event_hooks["request"].append(self._request_sent)
        client.event_hooks["response"].append(self._response_read)
        if isinstance(client, ObservedClient):
            client.failure_hooks.append(self._request_failed)
        return client

    def _request_failed(self, request: httpx.Request, exc: httpx.TransportError) -> None:
        self._request_ended(
            request, "timeout" if isinstance(exc, httpx.TimeoutException) else "unreachable"
        )

    async def _request_sent(self, request: httpx.Request) -> None:
        self._started[request] = time.perf_counter()

    async def _response_read(self, response: httpx.Response) -> None:
        await response.aread()
        outcome = outcome_of(response)
        endpoint = self._request_ended(response.request, outcome)
        if outcome == "throttled":
            self.throttled.labels(endpoint).inc()

    def _request_ended(self, request: httpx.Request, outcome: str) -> str:
        """Count and time a request with its outcome; returns its endpoint label."""
        started = self._started.pop(request, None)
        endpoint = endpoint_of(request.method, request.url.path)
        self.requests.labels(endpoint, outcome).inc()
        if started is not None:
            self.request_seconds.labels(endpoint, outcome).observe(time.perf_counter() - started)
        return endpoint

    # --- scraping -----------------------------------------------------------------------

    async def refresh(self, sources: Sources) -> None:
        """Compute the scrape-time gauges (call before ``render``)."""
        await self.scrape.refresh(sources)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
