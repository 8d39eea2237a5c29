"""The inbound kinds' metric: ``syncd_inbound_imports_total{kind, outcome}``, how each
import of an instance started in DingTalk ended (``imported``, ``known``: syncd had it
already, ``parked``: its business row was refused, ``deferred``: to be tried again)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter

from syncd.metrics.labels import INBOUND_OUTCOMES


class InboundMetrics:
    """Implements ``syncd.pipeline.inbound.InboundObserver``."""

    def __init__(self, registry: CollectorRegistry, kinds: Iterable[str]) -> None:
        self.kinds = frozenset(kinds)
        self.imports = Counter(
            "syncd_inbound_imports",
            "Imports of instances started in DingTalk, by how they ended",
            ["kind", "outcome"],
            registry=registry,
        )
        for kind in self.kinds:
            for outcome in INBOUND_OUTCOMES:
                self.imports.labels(kind, outcome)

    def imported(self, kind: str, outcome: str) -> None:
        if kind in self.kinds and outcome in INBOUND_OUTCOMES:
            self.imports.labels(kind, outcome).inc()
