"""``syncd_directory_lookups_total{by,outcome}``: how look-ups of people named by job
number, mobile or email (and departments by name) ended, counted at submit.

Every series of the closed sets is created at zero, so a rule can watch a rate from the
start; a value outside them is counted as ``other`` (it never happens).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from syncd.metrics.labels import LOOKUP_BYS, LOOKUP_OUTCOMES, OTHER


class LookupMetrics:
    """The lookup counter (implements ``syncd.ports.lookup.LookupObserver``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lookups = Counter(
            "syncd_directory_lookups",
            "Look-ups of people (by job number, mobile, email) and departments (by name) in "
            "the DingTalk directory, by how they ended",
            ["by", "outcome"],
            registry=registry,
        )
        for by in LOOKUP_BYS:
            for outcome in LOOKUP_OUTCOMES:
                self.lookups.labels(by, outcome)

    def directory_lookup(self, by: str, outcome: str) -> None:
        self.lookups.labels(
            by if by in LOOKUP_BYS else OTHER,
            outcome if outcome in LOOKUP_OUTCOMES else OTHER,
        ).inc()
