"""Live status: the write-back settings that turn it on, the links that open an approval,
and what an unfinished round shows in its business row."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from syncd.dingtalk.models import ProcessInstance, instance_links
from syncd.domain import PROGRESS_STATES, ApprovalState, Outcome
from syncd.pipeline.outcomes import (
    final_from_event,
    instance_url,
    task_from_event,
    tasks_from_instance,
)
from syncd.pipeline.writeback import progress_outcome
from syncd.ports import ProgressRow
from syncd.settings_kinds import FINAL_STATES, PROGRESS_SOURCES, WriteBackSettings

ROOT = Path(__file__).resolve().parents[2]
TABLE = {"table": "app.leave", "key_column": "id"}

# --- settings ---------------------------------------------------------------------------

progress_settings = st.one_of(
    st.booleans(), st.lists(st.sampled_from(PROGRESS_STATES), unique=True, max_size=4)
)


def shown(progress: bool | list[str]) -> set[str]:
    return set(PROGRESS_STATES) if progress is True else set(progress or [])


@given(
    progress=progress_settings,
    mapped=st.lists(st.sampled_from(PROGRESS_STATES + FINAL_STATES), unique=True),
)
def test_status_map_takes_every_state_the_kind_writes(
    progress: bool | list[str], mapped: list[str]
) -> None:
    config: dict[str, Any] = {
        **TABLE,
        "columns": {"approval_status": "status"},
        "status_map": {state: state.upper() for state in mapped},
        "progress": progress,
    }
    unused = [s for s in PROGRESS_STATES if s in mapped and s not in shown(progress)]
    if not unused:
        settings = WriteBackSettings(**config)
        assert settings.progress_states == shown(progress)
        return
    with pytest.raises(ValidationError, match=f"status_map.{unused[0]} is never written"):
        WriteBackSettings(**config)


@given(progress=progress_settings, source=st.sampled_from(PROGRESS_SOURCES))
def test_a_column_known_only_while_running_needs_progress(
    progress: bool | list[str], source: str
) -> None:
    config = {**TABLE, "columns": {"waiting": source}, "progress": progress}
    if shown(progress):
        assert WriteBackSettings(**config).sources == {source}
        return
    with pytest.raises(ValidationError, match=f"columns.waiting = '{source}' is known only"):
        WriteBackSettings(**config)


def test_unknown_states_and_progress_values_are_named() -> None:
    with pytest.raises(ValidationError, match=r"status_map keys must be submitted, running"):
        WriteBackSettings(**TABLE, columns={"s": "status"}, status_map={"waiting": "W"})
    with pytest.raises(ValidationError, match="progress"):
        WriteBackSettings(**TABLE, columns={"s": "status"}, progress=["approved"])


def test_a_configuration_of_before_live_status_means_what_it_meant() -> None:
    settings = WriteBackSettings(
        **TABLE,
        columns={"approval_status": "status", "dingtalk_instance": "instance_id"},
        status_map={"approved": "APPROVED", "rejected": "REJECTED", "canceled": "CANCELED"},
    )
    assert settings.progress_states == frozenset()
    procedure = WriteBackSettings(procedure="app.on_result")
    assert procedure.progress_states == frozenset() and "url" in procedure.sources


# --- links ------------------------------------------------------------------------------

TEXTS = st.none() | st.text(max_size=20)
IDS = st.text(st.characters(codec="ascii", categories=["L", "N", "P"]), min_size=1, max_size=40)


@given(
    corp=st.just("") | IDS,
    instance=st.none() | IDS,
    url=TEXTS,
    pc=TEXTS,
    mobile=TEXTS,
)
def test_links_are_dingtalks_else_the_aflow_patterns(
    corp: str, instance: str | None, url: str | None, pc: str | None, mobile: str | None
) -> None:
    links = instance_links(corp, instance, url=url, task_pc_url=pc, task_mobile_url=mobile)
    if not instance:
        assert links == instance_links("", None)
        assert (links.url, links.pc_url, links.mobile_url) == (None, None, None)
        return
    patterns = instance_links(corp, instance)
    assert links.url == (url or patterns.url)
    assert links.mobile_url == (url or mobile or patterns.mobile_url)
    assert links.pc_url == (pc or patterns.pc_url)
    if not corp:
        assert (patterns.url, patterns.pc_url, patterns.mobile_url) == (None, None, None)
    else:
        assert patterns.pc_url is not None and patterns.url == patterns.mobile_url
        assert patterns.pc_url.startswith("https://aflow.dingtalk.com/dingtalk/pc/query/")
        assert f"procInstId={instance}" in patterns.pc_url or "%" in patterns.pc_url


def test_the_built_links_are_those_of_the_api_reference() -> None:
    """The mobile link is, character for character, the ``url`` of the real events quoted
    in docs/dingtalk-api.md; the PC link is its documented pattern."""
    doc = (ROOT / "docs" / "dingtalk-api.md").read_text(encoding="utf-8")
    quoted = re.search(r'"url":"(https://aflow[^"]+procInstId=([^&"]+)[^"]*)"', doc)
    assert quoted is not None
    corp = re.search(r"corpid=([^&]+)", quoted.group(1))
    assert corp is not None
    links = instance_links(corp.group(1), quoted.group(2))
    assert links.mobile_url == quoted.group(1)
    pattern = re.search(r"`(https://aflow\.dingtalk\.com/dingtalk/pc/query/[^`]+)`", doc)
    assert pattern is not None
    expected = pattern.group(1).replace("<corpId>", corp.group(1))
    assert links.pc_url == expected.replace("<processInstanceId>", quoted.group(2))


def test_events_and_reads_carry_the_links_and_nodes_as_dingtalk_gives_them() -> None:
    url = "https://aflow.dingtalk.com/dingtalk/mobile/homepage.htm?corpid=c&procInstId=i"
    start = {"type": "start", "processInstanceId": "i", "url": url}
    assert instance_url(start) == url and instance_url({"url": " "}) is None
    final = final_from_event({"type": "finish", "result": "agree", "url": url})
    assert final is not None and final.url == url
    task = task_from_event(
        {"type": "start", "taskId": 5, "staffId": "u1", "activityId": "1918_5cd3",
         "activityName": "审核人"}
    )  # fmt: skip
    assert (task.activity_id, task.activity_name, task.status) == ("1918_5cd3", "审核人", "RUNNING")
    instance = ProcessInstance.model_validate(
        {
            "status": "RUNNING",
            "tasks": [{"taskId": 7, "userId": "u2", "pcUrl": "p", "mobileUrl": ""}],
        }
    )
    [read] = tasks_from_instance(instance)
    assert (read.pc_url, read.mobile_url) == ("p", None)


# --- what a round shows -----------------------------------------------------------------

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

rows = st.builds(
    ProgressRow,
    approval_id=st.integers(1, 10**6),
    kind=st.just("leave"),
    business_key=st.text(min_size=1, max_size=5),
    round=st.integers(1, 5),
    state=st.sampled_from(list(ApprovalState)),
    seq=st.integers(1, 100),
    instance_id=st.none() | IDS,
    changed_at=st.just(AT),
    error_message=st.none() | st.text(max_size=30),
    url=TEXTS,
    pc_url=TEXTS,
    mobile_url=TEXTS,
    current_nodes=st.lists(st.text(min_size=1, max_size=5), max_size=2).map(tuple),
    pending_approvers=st.lists(st.text(min_size=1, max_size=5), max_size=3).map(tuple),
    has_tasks=st.booleans(),
    superseded=st.booleans(),
    attempts=st.integers(0, 5),
)


@given(row=rows, show=st.sets(st.sampled_from(PROGRESS_STATES)))
def test_a_round_shows_its_own_state_and_nothing_of_another(
    row: ProgressRow, show: set[str]
) -> None:
    outcome = progress_outcome(row, frozenset(show))
    status = {
        ApprovalState.RUNNING: "running" if row.has_tasks else "submitted",
        ApprovalState.INVALID: "invalid",
        ApprovalState.DEAD: "dead",
    }.get(row.state)
    if row.superseded or status not in show:
        assert outcome is None
        return
    assert isinstance(outcome, Outcome) and not outcome.final
    live = row.state is ApprovalState.RUNNING
    assert (outcome.status, outcome.seq, outcome.round) == (status, row.seq, row.round)
    assert (outcome.instance_id, outcome.url, outcome.pc_url, outcome.mobile_url) == (
        row.instance_id,
        row.url,
        row.pc_url,
        row.mobile_url,
    )
    assert outcome.state_changed_at == row.changed_at
    assert (outcome.finished_at, outcome.result, outcome.approver, outcome.remark) == (None,) * 4
    if live:
        assert outcome.dingtalk_status == "RUNNING" and outcome.reason is None
        assert outcome.current_node == (",".join(row.current_nodes) or None)
        assert outcome.pending_approvers == row.pending_approvers
    else:
        assert outcome.reason == row.error_message and outcome.dingtalk_status is None
        assert (outcome.current_node, outcome.pending_approvers) == (None, ())
    data = outcome.as_json()
    assert data["pending_approvers"] == list(outcome.pending_approvers)
    assert data["state_changed_at"] == AT.isoformat() and data["final"] is False
