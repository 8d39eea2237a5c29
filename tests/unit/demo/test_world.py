"""The legacy app's requests and the demo world's rules agree on who decides what."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime

from syncd.demo.config import INBOUND_KINDS, KINDS, RECEIPTS, demo_settings
from syncd.demo.legacy_app import PATTERN, Request, make_request
from syncd.demo.world import demo_world
from syncd.simulator.rules import decide
from syncd.simulator.state import Instance

RULE_FIELDS = {
    "leave": ("PROC-SIM-LEAVE", "天数", "days"),
    "expense": ("PROC-SIM-EXPENSE", "金额（元）", "amount"),
}


def _instance(request: Request) -> Instance:
    process_code, label, key = RULE_FIELDS[request.kind]
    return Instance(
        instance_id="i1",
        process_code=process_code,
        title="t",
        business_id="b",
        originator=request.params["applicant"],
        dept_id=1,
        dept_name="d",
        app_key="k",
        biz_category_id="",
        create_time=datetime.now(UTC),
        form=[{"name": label, "value": str(request.params[key])}],
        nodes=[],
        cc=[],
    )


def test_each_request_gets_the_decision_the_pattern_expects():
    world = demo_world()
    rng = random.Random(1)
    for number in range(3 * len(PATTERN)):
        request = make_request(number, rng, date(2026, 3, 1))
        rule = decide(world.rules, _instance(request))
        assert (rule.decision if rule else "manual") == request.expected, request


def test_most_requests_are_approved_some_refused_a_few_left_to_a_person():
    expected = Counter(outcome for _, outcome in PATTERN)
    assert expected == {"agree": 14, "refuse": 4, "manual": 2}
    assert {kind for kind, _ in PATTERN} == set(KINDS)


def test_every_mapped_form_label_exists_in_the_template():
    world = demo_world()
    for name, kind in KINDS.items():
        template = world.template(kind["process_code"])
        assert template is not None, name
        labels = {c.label_text for c in template.components}
        assert set(kind["form"]) | {kind["correlation_field"]} <= labels, name


def test_the_demo_settings_ignore_the_environment(monkeypatch):
    monkeypatch.setenv("SYNCD_DATABASE__DSN", "postgresql://prod.example/app")
    monkeypatch.setenv("SYNCD_DINGTALK__API_URL", "https://api.dingtalk.com")
    settings = demo_settings(
        "postgresql://postgres@127.0.0.1:5/postgres", "http://s:1", demo_world()
    )
    assert settings.database.dsn.get_secret_value() == "postgresql://postgres@127.0.0.1:5/postgres"
    assert settings.dingtalk.api_url == settings.dingtalk.oapi_url == "http://s:1"
    assert settings.http.port == 0
    assert sorted(settings.kinds) == ["expense", "leave", "leave_dingtalk"]


def test_the_receipt_and_the_inbound_columns_name_components_of_their_templates():
    world = demo_world()
    expense = world.template(KINDS["expense"]["process_code"])
    assert expense is not None
    types = {c.label_text: c.type for c in expense.components}
    assert {types[label] for label in RECEIPTS} == {"DDAttachment"}
    for name, kind in INBOUND_KINDS.items():
        template = world.template(kind["process_code"])
        assert template is not None, name
        labels = {c.label_text for c in template.components}
        assert set(kind["inbound"]["columns"].values()) <= labels, name
        # a template of its own: no outbound kind creates instances of it
        assert all(k["process_code"] != kind["process_code"] for k in KINDS.values())
