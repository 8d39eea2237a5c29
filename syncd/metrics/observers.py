"""``Metrics``: the declared metrics, fed as the pipeline's and the DingTalk client's observer.

It implements :class:`syncd.ports.Observer` (what the stages do) and
:class:`syncd.ports.CallObserver` (how each DingTalk request ended, as the client reports
it: the endpoint's declared name and an outcome from a closed set, so nothing here reads
a URL or an answer), and holds the scrape-time gauges.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from syncd.dingtalk.endpoints import Endpoint, Outcome
from syncd.metrics.declared import Instruments
from syncd.metrics.labels import Labels
from syncd.metrics.scrape import ScrapeCollector, Sources


class Metrics(Instruments):
    """The metric objects, fed as the ``Observer`` and the ``CallObserver``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        kinds: Iterable[str] = (),
        monthly_quota: int = 0,
    ) -> None:
        super().__init__(registry)
        self.sets = sets = Labels(kinds)
        self.scrape = ScrapeCollector(sets.kind, monthly_quota=monthly_quota)
        registry.register(self.scrape)

    # --- Observer -----------------------------------------------------------------------

    def stage_run(self, stage: str, handled: int, seconds: float) -> None:
        self.stage_runs.labels(stage).inc()
        self.stage_items.labels(stage).inc(handled)
        self.stage_seconds.labels(stage).observe(seconds)

    def stage_failed(self, stage: str, error_class: str) -> None:
        self.stage_errors.labels(stage, self.sets.error_class(error_class)).inc()

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
    ) -> None:
        k = self.sets.kind(kind)
        self.finished.labels(k, self.sets.state(state), self.sets.channel(channel)).inc()
        if channel == "poll":
            self.events.labels("poll").inc()
        if not written:
            self.writeback_failed.labels(k).inc()
        elif seconds_since_decision is not None:
            self.writeback_latency.labels(k).observe(seconds_since_decision)
        if calls_spent is not None:
            self.calls_per_approval.labels(k).observe(calls_spent)

    def progress_written(self, kind: str, *, written: bool) -> None:
        if not written:  # counted with the final outcomes' refusals
            self.writeback_failed.labels(self.sets.kind(kind)).inc()

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

    # --- scraping -----------------------------------------------------------------------

    async def refresh(self, sources: Sources) -> None:
        """Compute the scrape-time gauges (call before ``render``)."""
        await self.scrape.refresh(sources)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
