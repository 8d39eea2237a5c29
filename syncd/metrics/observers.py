"""``Metrics``: the declared metrics, fed as the pipeline's and the DingTalk client's observer.

It implements :class:`syncd.ports.Observer` (what the stages do) and
:class:`syncd.ports.CallObserver` (how each DingTalk request ended, as the client reports
it: the endpoint's declared name and an outcome from a closed set, so nothing here reads
a URL or an answer), and holds the scrape-time gauges. ``render()`` leaves out the
``_created`` series prometheus_client adds to every counter and histogram (a timestamp
per series that doubles the series count and that no rule or panel reads).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from syncd.dingtalk.endpoints import Endpoint, Outcome
from syncd.metrics.declared import BusinessWrites, Instruments
from syncd.metrics.labels import Labels
from syncd.metrics.scrape import ScrapeCollector, Sources
from syncd.ports.directory import SyncOutcome


class Metrics(Instruments):
    """The metric objects, fed as the ``Observer`` and the ``CallObserver``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        kinds: Iterable[str] = (),
        monthly_quota: int = 0,
        databases: Iterable[str] = (),
        kind_databases: Mapping[str, str | None] | None = None,
    ) -> None:
        super().__init__(registry)
        self.sets = sets = Labels(kinds, databases, kind_databases)
        self.business = BusinessWrites(registry, sets.databases)
        self.scrape = ScrapeCollector(sets, monthly_quota=monthly_quota)
        registry.register(self.scrape)

    # --- DirectoryObserver (contact-change events) ---------------------------------------

    def directory_event(self, event_type: str) -> None:
        self.directory_events.labels(self.sets.event_type(event_type)).inc()

    # --- Observer -----------------------------------------------------------------------

    def stage_run(self, stage: str, handled: int, seconds: float) -> None:
        name = self.sets.stage(stage)
        self.stage_runs.labels(name).inc()
        self.stage_items.labels(name).inc(handled)
        self.stage_seconds.labels(name).observe(seconds)

    def stage_failed(self, stage: str, error_class: str) -> None:
        self.stage_errors.labels(self.sets.stage(stage), self.sets.error_class(error_class)).inc()

    def approval_created(self, kind: str, seconds_since_capture: float) -> None:
        k = self.sets.kind(kind)
        self.created.labels(k).inc()
        self.create_latency.labels(k).observe(max(0.0, seconds_since_capture))

    def approval_parked(self, kind: str, state: str, reason: str) -> None:
        lb = self.sets
        self.parked.labels(lb.kind(kind), lb.state(state), lb.reason(reason)).inc()

    def outbox_quarantined(self, kind: str, sqlstate: str) -> None:
        lb = self.sets
        self.quarantined.labels(lb.kind(kind), lb.quarantine_reason(sqlstate)).inc()

    def approval_finished(
        self,
        kind: str,
        state: str,
        channel: str,
        *,
        written: bool,
        seconds_since_decision: float | None,
        calls_spent: int | None,
        seconds_to_decision: float | None = None,
    ) -> None:
        k = self.sets.kind(kind)
        self.finished.labels(k, self.sets.state(state), self.sets.finish_channel(channel)).inc()
        if seconds_to_decision is not None:
            self.decision_time.labels(k, self.sets.state(state)).observe(seconds_to_decision)
        if channel == "poll":
            self.events.labels("poll").inc()
        if not written:
            self.writeback_failed.labels(k).inc()
        elif seconds_since_decision is not None:
            self.writeback_latency.labels(k).observe(seconds_since_decision)
        self.business.final(self.sets.kind_database(kind), written=written)
        if calls_spent is not None:
            self.calls_per_approval.labels(k).observe(calls_spent)

    def progress_written(self, kind: str, *, written: bool) -> None:
        if not written:  # counted with the final outcomes' refusals
            self.writeback_failed.labels(self.sets.kind(kind)).inc()
        self.business.progress(self.sets.kind_database(kind), written=written)

    def writeback_retried(self, kind: str, *, written: bool) -> None:
        # not in syncd_writeback_failures_total, which counts first attempts (as before)
        self.business.final(self.sets.kind_database(kind), written=written)

    def event_stored(self, channel: str, new: bool) -> None:
        self.events.labels(self.sets.channel(channel)).inc()
        if not new:
            self.duplicates.labels(self.sets.channel(channel)).inc()

    def callback_rejected(self, reason: str) -> None:
        self.callbacks_rejected.labels(self.sets.callback_reason(reason)).inc()

    # --- CallObserver -------------------------------------------------------------------

    def call_ended(self, endpoint: Endpoint, outcome: Outcome, seconds: float | None) -> None:
        self.requests.labels(endpoint.name, outcome).inc()
        if seconds is not None:
            self.request_seconds.labels(endpoint.name, outcome).observe(seconds)
        if outcome == "throttled":
            self.throttled.labels(endpoint.name).inc()

    # --- DirectorySyncObserver ---------------------------------------------------------

    def directory_sync_ended(self, outcome: SyncOutcome) -> None:
        self.directory_syncs.labels(outcome).inc()

    # --- scraping -----------------------------------------------------------------------

    async def refresh(self, sources: Sources) -> None:
        """Compute the scrape-time gauges (call before ``render``)."""
        await self.scrape.refresh(sources)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(_WithoutCreated(self.registry)), CONTENT_TYPE_LATEST


class _WithoutCreated(Collector):
    """A registry's families without the ``_created`` samples of counters and histograms
    (prometheus_client's switch for them, ``disable_created_metrics()``, is global to the
    process; this leaves other registries alone)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            created = f"{family.name}_created"
            if any(sample.name == created for sample in family.samples):
                family = copy.copy(family)
                family.samples = [s for s in family.samples if s.name != created]
            yield family
