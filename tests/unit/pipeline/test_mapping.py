"""Mapping, from an outbox payload to DingTalk form values: whatever syncd encodes,
DingTalk (the simulator, through the real client) accepts; whatever it would refuse,
syncd refuses first, naming the form field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.dingtalk.models import CreateInstanceRequest
from syncd.domain import SubmitItem
from syncd.errors import DingTalkRejected
from syncd.pipeline.mapping import MappingError
from tests.fakes import Rig
from tests.unit.pipeline.support import DEMO_KINDS, EXAMPLES, EXPENSE, LEAVE, simulated_rig

TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)
DAYS = st.dates(date(2020, 1, 1), date(2030, 12, 31))
#: Values of every JSON type, and the odd ones an application writes.
ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    st.lists(st.integers() | TEXT, max_size=3),
    st.dictionaries(TEXT, st.integers(), max_size=2),
)
NUMBERS = st.one_of(
    st.integers(-1000, 10**6),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.decimals(-(10**6), 10**6, allow_nan=False, places=3).map(str),
    ANYTHING,
)
DATES = st.one_of(
    DAYS.map(date.isoformat),
    DAYS.map(lambda d: f"{d.isoformat()} 09:30"),
    ANYTHING,
)


def options(*choices: str) -> st.SearchStrategy[Any]:
    return st.sampled_from(choices) | ANYTHING


LEAVES = st.fixed_dictionaries(
    {
        "applicant": st.sampled_from(["u1", "u2"]),
        "leave_type": options("年假", "事假", "病假"),
        "start_date": DATES,
        "end_date": DATES,
        "days": NUMBERS,
        "reason": TEXT | ANYTHING,
    }
)
EXPENSES = st.fixed_dictionaries(
    {
        "applicant": st.just("u4"),
        "amount": NUMBERS,
        "category": options("差旅", "餐饮", "办公用品"),
        "spent_on": DATES,
        "note": TEXT,
        "items": st.lists(
            st.fixed_dictionaries(
                {"name": TEXT | ANYTHING, "amount": NUMBERS}, optional={"extra": ANYTHING}
            ),
            max_size=3,
        )
        | ANYTHING,
    }
)


async def encoded(rig: Rig, kind: str, payload: Any) -> CreateInstanceRequest | MappingError:
    """The create request syncd would send for ``payload``, or why it parks the row."""
    item = SubmitItem(1, kind, "k-1", 1, payload, None, None, 1, datetime.now(UTC))
    try:
        return await rig.submit.build(item, DEMO_KINDS[kind], [])
    except MappingError as exc:
        return exc


async def dingtalk_takes(rig: Rig, kind: str, payload: Any) -> None:
    request = await encoded(rig, kind, payload)
    if isinstance(request, MappingError):
        assert request.message.startswith(("form ", "originator", "dept_id")), request.message
        if request.message.startswith("form "):
            labels = [f"form {label!r}" for label in DEMO_KINDS[kind].form]
            assert request.message.startswith(tuple(labels)), request.message
        return
    try:
        await rig.client.create_instance(request)
    except DingTalkRejected as exc:  # pragma: no cover - the failure this test looks for
        raise AssertionError(f"syncd encoded {request.form_component_values} but {exc}") from exc


@EXAMPLES
@given(payload=LEAVES)
async def test_a_leave_request_is_one_dingtalk_takes_or_parked_naming_the_field(
    payload: dict[str, Any],
) -> None:
    async with simulated_rig() as (rig, _, _client):
        await dingtalk_takes(rig, LEAVE, payload)


@EXAMPLES
@given(payload=EXPENSES)
async def test_an_expense_claim_is_one_dingtalk_takes_or_parked_naming_the_field(
    payload: dict[str, Any],
) -> None:
    async with simulated_rig({EXPENSE: DEMO_KINDS[EXPENSE]}) as (rig, _, _client):
        await dingtalk_takes(rig, EXPENSE, payload)


@EXAMPLES
@given(days=st.decimals(Decimal("0.5"), Decimal(365), places=1), reason=TEXT)
async def test_a_good_leave_request_reaches_dingtalk_as_written(days: Decimal, reason: str) -> None:
    payload = {
        "applicant": "u1",
        "leave_type": "病假",
        "start_date": "2026-01-10",
        "end_date": "2026-01-12",
        "days": str(days),
        "reason": reason,
    }
    async with simulated_rig() as (rig, sim, client):
        request = await encoded(rig, LEAVE, payload)
        assert isinstance(request, CreateInstanceRequest)
        instance_id = await client.create_instance(request)
        form = {v["name"]: v["value"] for v in sim.instance(instance_id).form}
        assert form["天数"] == format(days, "f")
        assert form['["开始时间","结束时间"]'] == '["2026-01-10", "2026-01-12"]'
        assert form["业务编号"] == "syncd:leave/k-1/1"
        assert form.get("请假事由", "") == reason


@pytest.mark.parametrize(
    ("kind", "change", "named"),
    [
        (EXPENSE, {"items": [{"name": " ", "amount": 5}]}, "form '明细' row 1 '项目'"),
        (EXPENSE, {"items": [{"name": "", "amount": 5}]}, "form '明细' row 1 '项目'"),
        (LEAVE, {"leave_type": ""}, "form '请假类型'"),
    ],
)
async def test_a_required_value_left_blank_is_parked_by_syncd_not_refused_by_dingtalk(
    kind: str, change: dict[str, Any], named: str
) -> None:
    """DingTalk counts a blank value as no value: a required one must be refused here,
    naming the field, before a create is spent on it."""
    payload = {
        LEAVE: {
            "applicant": "u1",
            "leave_type": "年假",
            "start_date": "2026-01-10",
            "end_date": "2026-01-11",
            "days": 2,
        },
        EXPENSE: {
            "applicant": "u4",
            "amount": 5,
            "category": "差旅",
            "spent_on": "2026-01-02",
            "note": "taxi",
            "items": [{"name": "taxi", "amount": 5}],
        },
    }[kind] | change
    async with simulated_rig({kind: DEMO_KINDS[kind]}) as (rig, _, _client):
        error = await encoded(rig, kind, payload)
        assert isinstance(error, MappingError), "encoded for DingTalk to refuse"
        assert error.message.startswith(named) and "empty" in error.message
