"""``syncd_attachments_back_total{outcome}``: the files of finished instances fetched back
(``[kinds.<name>.attachments_back]``), by how each ended: ``fetched`` (its bytes in the
business table or the directory), ``linked`` (only its download link written) or
``failed`` (recorded with the reason: no permission, deleted, too large). Every series is
created at zero; a value outside the set is counted as ``other`` (it never happens).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from syncd.metrics.labels import ATTACH_BACK_OUTCOMES, OTHER


class AttachmentsBackMetrics:
    """Implements ``syncd.ports.attachments_back.AttachmentsBackObserver``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.files = Counter(
            "syncd_attachments_back",
            "Files of finished instances fetched back from DingTalk, by how each ended",
            ["outcome"],
            registry=registry,
        )
        for outcome in ATTACH_BACK_OUTCOMES:
            self.files.labels(outcome)

    def attachment_back(self, outcome: str, files: int = 1) -> None:
        self.files.labels(outcome if outcome in ATTACH_BACK_OUTCOMES else OTHER).inc(files)
