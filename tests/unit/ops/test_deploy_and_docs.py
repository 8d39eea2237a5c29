"""Deployment files, dashboard, alert rules and the operations guide agree with the code."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from syncd.settings import DingTalkSettings, Settings
from tests.unit.test_doc_links import anchors

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
GUIDE = (ROOT / "docs" / "operate.md").read_text(encoding="utf-8")
SUFFIXES = ("", "_total", "_bucket", "_count", "_sum", "_info")


def declared_metrics() -> set[str]:
    sources = (p.read_text(encoding="utf-8") for p in (ROOT / "syncd" / "metrics").glob("*.py"))
    return {name for source in sources for name in re.findall(r'"(syncd_[a-z_]+)"', source)}


def exposed(name: str, declared: set[str]) -> bool:
    return any(name.endswith(s) and name.removesuffix(s) in declared for s in SUFFIXES if s) or (
        name in declared
    )


def referenced(text: str) -> set[str]:
    return set(re.findall(r"\b(syncd_[a-z_]+)", text))


def without_files(data: Any) -> Any:
    """A config with each ``*_file`` secret replaced by a value, as if the file was read."""
    if not isinstance(data, dict):
        return data
    return {
        k.removesuffix("_file") if k.endswith("_file") else k: "x"
        if k.endswith("_file")
        else (without_files(v))
        for k, v in data.items()
    }


def test_every_metric_in_alerts_and_dashboard_is_exported():
    declared = declared_metrics()
    texts = [
        (DEPLOY / "prometheus" / "alerts.yml").read_text(),
        (DEPLOY / "grafana" / "dashboards" / "syncd.json").read_text(),
    ]
    unknown = {n for text in texts for n in referenced(text) if not exposed(n, declared)}
    assert unknown == set()


def test_every_metric_is_documented():
    documented = referenced(GUIDE)
    missing = {n for n in declared_metrics() if not any(n + s in documented for s in SUFFIXES)}
    assert missing == set(), "add them to the metric tables in docs/operate.md"


def test_every_alert_has_a_runbook_and_a_unit_test():
    alerts = set(re.findall(r"- alert: (\w+)", (DEPLOY / "prometheus" / "alerts.yml").read_text()))
    tests = (DEPLOY / "prometheus" / "alerts_test.yml").read_text()
    assert len(alerts) >= 7
    assert {"SyncdOutboxQuarantined", "SyncdQuotaNearExhaustion"} <= alerts
    assert {a for a in alerts if f"### Runbook: {a}\n" not in GUIDE} == set()
    assert {a for a in alerts if f"alertname: {a}" not in tests} == set()


def test_every_alert_links_its_runbook_by_an_absolute_url_under_one_base():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    headings = anchors(ROOT / "docs" / "operate.md")
    bases = set()
    for rule in alerts:
        annotations = rule["annotations"]
        assert "runbook" not in annotations, rule["alert"]
        base, _, fragment = annotations["runbook_url"].partition("#")
        bases.add(base)
        assert fragment == f"runbook-{rule['alert'].lower()}" and fragment in headings
    [base] = bases  # one base, so that one substitution points every link elsewhere
    assert re.fullmatch(r"https://[^/\s]+/\S*docs/operate\.md", base)
    assert base in GUIDE  # the guide says what the base is and how to set it
    tested = (DEPLOY / "prometheus" / "alerts_test.yml").read_text()
    assert "runbook:" not in tested and tested.count(f"runbook_url: {base}#") >= len(alerts)


def test_every_log_action_in_the_code_is_documented():
    actions = {
        action
        for path in (ROOT / "syncd").rglob("*.py")
        for action in re.findall(r'"action": "([a-z_]+)"', path.read_text(encoding="utf-8"))
    }
    missing = {a for a in actions if f"| `{a}` |" not in GUIDE}
    assert missing == set(), "add them to the log action table in docs/operate.md"


def test_every_command_is_in_the_reference():
    from syncd.cli import build_parser

    parser = build_parser()
    [sub] = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    missing = {name for name in sub.choices or () if f"`syncd {name}" not in GUIDE}
    assert missing == set()


def test_dashboard_is_a_provisionable_grafana_dashboard():
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "syncd.json").read_text())
    assert dashboard["uid"] == "syncd"
    targets = [t for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(targets) >= 20 and all(t["expr"].strip() for t in targets)
    provider = (DEPLOY / "grafana" / "provisioning" / "dashboards" / "syncd.yml").read_text()
    assert "/var/lib/grafana/dashboards" in provider


def test_shipped_configurations_are_valid_settings():
    compose = tomllib.loads((DEPLOY / "compose" / "syncd.toml").read_text(encoding="utf-8"))
    configmap = (DEPLOY / "kubernetes" / "configmap.yaml").read_text(encoding="utf-8")
    block = configmap.split("syncd.toml: |\n", 1)[1]
    toml = "\n".join(line.removeprefix("    ") for line in block.splitlines())
    default = DingTalkSettings().monthly_quota
    for shipped in (compose, tomllib.loads(toml)):
        settings = Settings(**without_files(shipped))
        assert settings.dingtalk.monthly_quota == default  # the quota alert fires as documented


def test_kubernetes_manifests_have_what_operators_expect():
    k8s = DEPLOY / "kubernetes"
    deployment = (k8s / "deployment.yaml").read_text()
    assert "replicas: 2" in deployment
    assert "path: /healthz" in deployment and "path: /readyz" in deployment
    assert "runAsNonRoot: true" in deployment and "readOnlyRootFilesystem: true" in deployment
    kinds = {
        kind
        for path in k8s.glob("*.yaml")
        for kind in re.findall(r"^kind: (\w+)", path.read_text(), re.M)
    }
    expected = {"Deployment", "Secret", "ConfigMap", "Service", "PodMonitor", "Job"}
    assert expected <= kinds
    assert 'args: ["migrate", "--grants"]' in (k8s / "migrate-job.yaml").read_text()
    listed = (k8s / "kustomization.yaml").read_text()
    assert {p.name for p in k8s.glob("*.yaml")} - {"kustomization.yaml"} <= set(
        re.findall(r"- (\S+\.yaml)", listed)
    )


def test_image_and_unit_run_unprivileged_with_health_checks():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+\.\d+-slim-\w+@sha256:[0-9a-f]{64}$", dockerfile, re.M)
    assert re.search(r"^USER 10001", dockerfile, re.M) and "HEALTHCHECK" in dockerfile
    unit = (DEPLOY / "systemd" / "syncd.service").read_text()
    assert "User=syncd" in unit and "ExecStart=/opt/syncd/bin/syncd run" in unit
    compose = (DEPLOY / "docker-compose.yml").read_text()
    for service in ("postgres", "simulator", "syncd", "prometheus", "grafana"):
        assert f"\n  {service}:\n" in compose
