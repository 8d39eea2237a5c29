"""``syncd_attachments_back_total{outcome}``: every series of its closed set exists at
zero, a value outside it is counted as ``other``, and the operations guide lists the
metric with its label and the label's values (the guide's table equals the closed sets:
test_metric_labels)."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from syncd.metrics.attachments_back import AttachmentsBackMetrics
from syncd.metrics.labels import ATTACH_BACK_OUTCOMES, OTHER, closed_set

GUIDE = (Path(__file__).resolve().parents[3] / "docs" / "operate.md").read_text("utf-8")
NAME = "syncd_attachments_back_total"


def samples(registry: CollectorRegistry) -> dict[str, float]:
    return {
        s.labels["outcome"]: s.value
        for metric in registry.collect()
        for s in metric.samples
        if s.name == NAME
    }


@given(outcomes=st.lists(st.sampled_from(ATTACH_BACK_OUTCOMES) | st.text(max_size=8)))
def test_each_outcome_is_counted_in_its_closed_set(outcomes: list[str]) -> None:
    registry = CollectorRegistry()
    metrics = AttachmentsBackMetrics(registry)
    assert samples(registry) == dict.fromkeys(ATTACH_BACK_OUTCOMES, 0.0)
    for outcome in outcomes:
        metrics.attachment_back(outcome)
    found = samples(registry)
    closed = closed_set(NAME, "outcome")
    assert closed is not None and set(found) <= closed.values | {OTHER}
    for outcome in ATTACH_BACK_OUTCOMES:
        assert found[outcome] == outcomes.count(outcome)
    assert found.get(OTHER, 0) == sum(o not in ATTACH_BACK_OUTCOMES for o in outcomes)


def test_the_guide_lists_the_metric_and_its_outcomes() -> None:
    assert re.search(rf"^\| `{NAME}` \| counter \| outcome \|", GUIDE, re.M)
    [row] = re.findall(rf"^\| `outcome` \| `{NAME}` \| (.*) \|$", GUIDE, re.M)
    assert set(re.findall(r"`(\w+)`", row)) == set(ATTACH_BACK_OUTCOMES)
