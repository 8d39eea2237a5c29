"""The metrics counted as work happens, declared once, on a registry the daemon owns.

Names, help texts, label names and buckets live here alone (the operations guide lists
them, and dashboards and alert rules in ``deploy/`` depend on them: never rename one).
The series operators expect to see at zero (each channel, each callback refusal reason)
are created up front. The registry also carries prometheus_client's standard
``process_*`` and ``python_*`` collectors.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from syncd import __version__
from syncd.dingtalk.callback import REASONS as CALLBACK_REASONS
from syncd.dingtalk.events import CONTACT_EVENTS
from syncd.domain import CHANNELS
from syncd.metrics.labels import WRITE_OUTCOMES
from syncd.ports.directory import SYNC_OUTCOMES

_SECONDS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
_REQUEST = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_STAGE = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60)
_CALLS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50)
#: A decision takes minutes to weeks: 1 min, 5 min, 15 min, 30 min, 1 h, 2 h, 4 h, 8 h,
#: 1 d, 2 d, 3 d, 1 w, 2 w, 30 d.
_DECISION = (
    60,
    300,
    900,
    1800,
    3600,
    7200,
    14400,
    28800,
    86400,
    172800,
    259200,
    604800,
    1209600,
    2592000,
)


class Instruments:
    """Every counter and histogram syncd feeds as work happens, and ``syncd_build_info``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
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
        self.decision_time = Histogram(
            "syncd_decision_time_seconds",
            "DingTalk instance created to its final outcome (approved, rejected, canceled)",
            ["kind", "state"],
            buckets=_DECISION,
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
            "Requests sent to DingTalk, by declared call and outcome",
            ["call", "outcome"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "syncd_dingtalk_request_duration_seconds",
            "DingTalk request time until the answer was read",
            ["call", "outcome"],
            buckets=_REQUEST,
            registry=r,
        )
        self.throttled = Counter(
            "syncd_dingtalk_throttled",
            "Requests DingTalk refused for the rate limit or an address ban",
            ["call"],
            registry=r,
        )
        self.callbacks_rejected = Counter(
            "syncd_callbacks_rejected",
            "HTTP callback pushes refused, by reason (forged, stale, replayed, malformed, big)",
            ["reason"],
            registry=r,
        )
        self.directory_syncs = Counter(
            "syncd_directory_syncs",
            "Runs of the directory's full sync, by how they ended (done; error: waits to be "
            "resumed; lost: another replica took it over)",
            ["outcome"],
            registry=r,
        )
        for outcome in SYNC_OUTCOMES:
            self.directory_syncs.labels(outcome)
        self.build = Info("syncd_build", "Version of syncd and Python", registry=r)
        self.build.info({"version": __version__, "python": platform.python_version()})
        for channel in CHANNELS:
            self.events.labels(channel)
            self.duplicates.labels(channel)
        for reason in CALLBACK_REASONS:
            self.callbacks_rejected.labels(reason)
        self._directory_events(r)

    def _directory_events(self, r: CollectorRegistry) -> None:
        """Contact-change events (issue 17), each type at 0 from the start."""
        self.directory_events = Counter(
            "syncd_directory_events",
            "Contact-change events handled: applied to the directory, or set aside",
            ["event_type"],
            registry=r,
        )
        for event_type in (*CONTACT_EVENTS, "other"):
            self.directory_events.labels(event_type)


class BusinessWrites:
    """Writes into business rows per database (the kind's, from the configuration; ``syncd``
    for syncd's own PostgreSQL), each ``done`` or ``failed``: families new with business
    databases, so that the older per-kind ones keep their series."""

    def __init__(self, registry: CollectorRegistry, databases: Iterable[str]) -> None:
        by = ["database", "outcome"]
        self.writebacks = Counter(
            "syncd_writebacks",
            "Final outcomes written into business rows (done) or refused (failed, retried), "
            "per business database",
            by,
            registry=registry,
        )
        self.progress_writes = Counter(
            "syncd_progress_writes",
            "Live status written into business rows (done) or refused (failed), per business "
            "database",
            by,
            registry=registry,
        )
        for database in databases:
            for outcome in WRITE_OUTCOMES:
                self.writebacks.labels(database, outcome)
                self.progress_writes.labels(database, outcome)

    def final(self, database: str, *, written: bool) -> None:
        self.writebacks.labels(database, "done" if written else "failed").inc()

    def progress(self, database: str, *, written: bool) -> None:
        self.progress_writes.labels(database, "done" if written else "failed").inc()
