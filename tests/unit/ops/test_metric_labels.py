"""Metric labels fit Prometheus conventions and the operations guide lists their values.

No label is named like a target label (``job``, ``instance``, the Prometheus Operator's
``endpoint``, ...); every label of every metric has a closed set in
``syncd/metrics/labels.py``; the guide's *Label values* table is equal to those sets; the
purposes and periodic jobs named in the code are in theirs; dashboards and alert rules
group by syncd's labels only.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

import syncd
from syncd import errors
from syncd.metrics import Metrics
from syncd.metrics.labels import (
    DUTIES,
    ERROR_CLASSES,
    EXEMPT_PURPOSES,
    PURPOSES,
    TARGET_LABELS,
    ClosedSet,
    Labels,
    closed_set,
    closed_sets,
)

ROOT = Path(__file__).resolve().parents[3]
GUIDE = (ROOT / "docs" / "operate.md").read_text(encoding="utf-8")
DEPLOY = ROOT / "deploy"
TOKEN = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


def declared() -> dict[str, tuple[str, ...]]:
    """Each metric counted as work happens: its label names."""
    metrics = Metrics(CollectorRegistry(), kinds=["leave"])
    found: dict[str, tuple[str, ...]] = {}
    for attribute in vars(metrics).values():
        if isinstance(attribute, MetricWrapperBase):
            kind = str(attribute._type)
            suffix = {"counter": "_total", "info": "_info"}.get(kind, "")
            labels = tuple(attribute._labelnames)
            if kind == "info":  # its labels are its value
                labels += tuple(getattr(attribute, "_value", {}))
            found[attribute._name + suffix] = labels
    return found


def test_no_declared_label_is_a_target_label_and_each_has_a_closed_set():
    metrics = declared()
    assert len(metrics) >= 17
    for name, labels in metrics.items():
        assert not set(labels) & TARGET_LABELS, name
        assert not [label for label in labels if label.startswith("__")], name
        assert [label for label in labels if closed_set(name, label) is None] == [], name
    assert TARGET_LABELS >= {"job", "instance", "endpoint", "pod", "namespace"}


def guide_table() -> set[ClosedSet]:
    """The rows of the guide's *Label values* table, as closed sets."""
    section = GUIDE.split("#### Label values\n", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    found = set()
    for row in rows:
        labels, metrics, values = (cell.strip() for cell in row.strip("|").split(" | "))
        on = tuple(TOKEN.findall(metrics))
        for label in TOKEN.findall(labels):
            found.add(ClosedSet(label, frozenset(TOKEN.findall(values)), on))
    return found


def test_the_guide_lists_every_closed_set_exactly():
    assert guide_table() == set(closed_sets())


def test_every_metric_with_a_label_is_in_the_guide_with_that_label():
    rows = re.findall(r"^\| `(syncd_\w+)` \| [^|]+ \| ([^|]*) \|", GUIDE, re.M)
    documented = {
        name: {label.strip() for label in labels.split(",") if label.strip()}
        for name, labels in rows
    }
    for name, labels in declared().items():
        assert documented.get(name) == set(labels), name
    for closed in closed_sets():
        for metric in closed.metrics:
            assert closed.label in documented[metric], (metric, closed.label)


def test_values_outside_a_closed_set_are_other_or_unknown():
    labels = Labels(["leave"])
    assert labels.kind("leave") == "leave" and labels.kind("po") == "unknown"
    assert labels.stage("ingest") == "ingest" and labels.stage("x") == "other"
    assert labels.finish_channel("cancel") == "cancel" and labels.channel("cancel") == "other"
    assert labels.purpose("create") == "create" and labels.purpose("x") == "other"
    assert labels.duty("retention") == "retention" and labels.duty("job") == "other"
    assert labels.pause_reason("quota") == "quota" and labels.pause_reason("x") == "other"


def test_every_purpose_and_duty_in_the_code_is_in_its_closed_set():
    code = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "syncd").rglob("*.py"))
    purposes = set(re.findall(r'\bcall\(\s*calls,\s*"\w+",\s*"(\w+)"', code))
    purposes |= set(re.findall(r'add_usage\([^,()]+(?:\([^)]*\))?,\s*"(\w+)"', code))
    purposes |= set(re.findall(r'^PURPOSE = "(\w+)"', code, re.M))
    assert len(purposes) >= 6
    assert purposes <= set(PURPOSES) | set(EXEMPT_PURPOSES)
    duties = set(re.findall(r'scheduler\.every\(\s*"(\w+)"', code))
    assert duties == set(DUTIES)


def test_dashboards_and_rules_group_and_name_by_syncd_labels_only():
    """``by (...)``, legends and summaries use syncd's labels (and ``instance``, the
    replica); joining a series to its target (``on (job, instance)``) is not grouping."""
    allowed = {closed.label for closed in closed_sets()} | {"le", "instance", "value"}
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "syncd.json").read_text())
    texts = {
        "alerts.yml": (DEPLOY / "prometheus" / "alerts.yml").read_text(),
        "syncd.json": "\n".join(
            f"{t['expr']}\n{t.get('legendFormat', '')}"
            for panel in dashboard["panels"]
            for t in panel.get("targets", [])
        ),
    }
    for name, text in texts.items():
        grouped = {
            label.strip()
            for group in re.findall(r"\bby \(([^)]*)\)", text)
            for label in group.split(",")
            if label.strip()
        }
        named = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", text))
        named |= set(re.findall(r"\$labels\.(\w+)", text))
        assert (grouped | named) - allowed == set(), name


def test_error_class_names_every_syncd_error_wherever_it_is_defined():
    """The closed set is written out, so what is counted does not depend on which
    modules happen to be imported: it must name SyncdError and every subclass in syncd."""
    for module in pkgutil.walk_packages(syncd.__path__, "syncd."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: set[str] = set()
    todo: list[type[BaseException]] = [errors.SyncdError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    assert found == ERROR_CLASSES
