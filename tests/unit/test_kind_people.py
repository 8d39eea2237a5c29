"""A kind's ``by``: the configuration boundary, the checks at ingest, matching and masking.

- Every ``by`` is taken with every value-source form of the originator (payload path,
  column, constant), of the approvers and cc (``users``, ``field``), and the department's
  ``by`` with its forms; ``by`` on a form value, or one that names nothing there, is
  refused with a message naming the field and the fix. Without ``by`` a kind is exactly
  as before: nothing is looked up.
- At ingest (pure, no DingTalk call) a value that cannot be what ``by`` says parks the
  row as ``bad_identifier`` with the row, the field, the payload path and the fix; any
  value that can be is a pending round.
- :func:`match` and :func:`department_matches` decide from who holds a value;
  :func:`masked` never shows a whole mobile.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.dingtalk.models import ProcessInstance
from syncd.domain import ApprovalState, NewRound, OutboxRow, SubmitItem
from syncd.errors import ConfigError
from syncd.people import normal
from syncd.pipeline.ingest import decide
from syncd.pipeline.lookup import match
from syncd.pipeline.naming import masked
from syncd.pipeline.reconcile import matches
from syncd.ports.lookup import Holder
from syncd.settings import settings_from_data
from syncd.settings_kinds import DEPT_BYS, PERSON_BYS, KindSettings

NOW = datetime(2026, 3, 1, tzinfo=UTC)
FORMS = [{"field": "who.no"}, {"column": "originator"}, {"value": "E1001"}]


def settings_with(kind: dict[str, Any]) -> Any:
    return settings_from_data(
        {
            "database": {"dsn": "dbname=x"},
            "dingtalk": {"app_key": "k", "app_secret": "s"},
            "kinds": {"k": {"process_code": "P", **kind}},
        }
    )


@given(by=st.sampled_from(PERSON_BYS), form=st.sampled_from(FORMS))
def test_the_originator_takes_every_by_with_every_form(by: str, form: dict[str, Any]) -> None:
    kind = settings_with({"originator": {**form, "by": by}}).kinds["k"]
    assert kind.originator_by == by
    assert kind.uses_directory == (by != "userid")


@given(
    step_by=st.sampled_from(PERSON_BYS),
    cc_by=st.sampled_from(PERSON_BYS),
    step=st.sampled_from([{"users": ["a", "b"]}, {"field": "approvers"}]),
    cc=st.sampled_from([{"users": ["c"]}, {"field": "cc"}]),
    dept_by=st.sampled_from(DEPT_BYS),
    dept=st.sampled_from([{"field": "dept"}, {"column": "kind"}, {"value": "研发部/后端组"}]),
)
def test_approvers_cc_and_department_take_their_by(
    step_by: str, cc_by: str, step: dict[str, Any], cc: dict[str, Any], dept_by: str, dept: Any
) -> None:
    kind = settings_with(
        {
            "approvers": [{**step, "by": step_by}],
            "cc": {**cc, "by": cc_by},
            "dept_id": {**dept, "by": dept_by},
        }
    ).kinds["k"]
    assert (kind.approvers[0].by, kind.cc and kind.cc.by, kind.dept_by) == (step_by, cc_by, dept_by)
    assert kind.uses_directory == ({step_by, cc_by} != {"userid"} or dept_by == "name")


def test_without_by_nothing_is_looked_up() -> None:
    kind = KindSettings(process_code="P", approvers=[{"users": ["u1"]}], cc={"users": ["u2"]})
    assert (kind.originator_by, kind.dept_by, kind.uses_directory) == ("userid", "dept_id", False)


@given(by=st.sampled_from([*PERSON_BYS, *DEPT_BYS]))
def test_by_on_a_form_value_is_refused_naming_the_fix(by: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_with({"form": {"Reason": {"field": "reason", "by": by}}})
    message = str(caught.value)
    assert "kinds.k" in message and "form 'Reason'" in message
    assert f"by = {by!r} means nothing for a form value" in message and "remove it" in message


@given(by=st.sampled_from(DEPT_BYS))
def test_a_department_by_for_a_person_is_refused(by: str) -> None:
    with pytest.raises(ConfigError, match=f"originator: by = '{by}' does not name a person; use"):
        settings_with({"originator": {"field": "who", "by": by}})


@given(by=st.sampled_from(PERSON_BYS[1:]))
def test_a_person_by_for_the_department_is_refused(by: str) -> None:
    with pytest.raises(ConfigError, match=f"dept_id: by = '{by}' does not name a department"):
        settings_with({"dept_id": {"field": "dept", "by": by}})


@pytest.mark.parametrize("where", ["approvers", "cc"])
def test_a_department_by_for_approvers_or_cc_is_refused(where: str) -> None:
    section: Any = {"users": ["x"], "by": "name"}
    with pytest.raises(ConfigError, match="by"):
        settings_with({where: [section] if where == "approvers" else section})


# --- at ingest ----------------------------------------------------------------------------

_MOBILE_FORMS = ["{n}", "+86 {a}-{b}-{c}", "0086 {a} {b} {c}", "({a}) {b}-{c}", " {n} "]


@st.composite
def good_values(draw: st.DrawFn) -> tuple[str, str]:
    by = draw(st.sampled_from(["job_number", "mobile", "email"]))
    if by == "job_number":
        return by, draw(st.from_regex(r"\A[A-Za-z]{0,2}[0-9]{1,6}\Z"))
    if by == "email":
        local = draw(st.from_regex(r"\A[a-zA-Z][a-zA-Z0-9._]{0,10}\Z"))
        return by, f"{local}@{draw(st.sampled_from(['example.com', 'Corp.CN']))}"
    n = draw(st.from_regex(r"\A1[3-9][0-9]{9}\Z"))
    form = draw(st.sampled_from(_MOBILE_FORMS))
    return by, form.format(n=n, a=n[:3], b=n[3:7], c=n[7:])


@st.composite
def bad_values(draw: st.DrawFn) -> tuple[str, str, str]:
    """(by, value, what the message's fix says)."""
    by = draw(st.sampled_from(["job_number", "mobile", "email"]))
    if by == "job_number":
        return by, draw(st.sampled_from(["", " ", "\t"])), "write the person's job number"
    if by == "email":
        value = draw(st.from_regex(r"\A[a-z0-9. ]{1,20}\Z").filter(lambda v: v.strip()))
        return by, value, "write an email address such as name@example.com"
    value = draw(st.sampled_from(["138-abc-8000", "12", "phone", "+86 ext 1234", "０１２３"]))
    return by, value, "write a mobile number such as 13800138000"


def row(payload: Any, originator: str | None = None) -> OutboxRow:
    return OutboxRow(7, NOW, "k", "key-1", "submit", payload, originator)


def kinds_by(by: str, where: str) -> dict[str, KindSettings]:
    if where == "originator":
        return {"k": KindSettings(process_code="P", originator={"field": "who", "by": by})}
    step = {"field": "who", "by": by}
    return {"k": KindSettings(process_code="P", originator={"value": "u1"}, approvers=[step])}


@given(value=good_values(), where=st.sampled_from(["originator", "approvers"]))
def test_a_value_that_can_be_what_by_says_is_a_pending_round(
    value: tuple[str, str], where: str
) -> None:
    by, written = value
    [decision] = decide(row({"who": written}), None, kinds_by(by, where))
    assert isinstance(decision, NewRound) and decision.state is ApprovalState.PENDING
    assert normal(by, written)  # type: ignore[arg-type]


@given(value=bad_values(), where=st.sampled_from(["originator", "approvers"]))
def test_a_value_that_cannot_be_parks_the_row_naming_row_field_path_and_fix(
    value: tuple[str, str, str], where: str
) -> None:
    by, written, fix = value
    [decision] = decide(row({"who": written}), None, kinds_by(by, where))
    assert isinstance(decision, NewRound) and decision.state is ApprovalState.INVALID
    assert decision.error_code == "bad_identifier"
    message = decision.error_message or ""
    role = "originator" if where == "originator" else "approvers step 1"
    assert message.startswith(f"outbox row 7: {role}: ")
    assert "(payload path 'who')" in message and fix in message
    assert message.endswith("or set by to what the value is")


def test_an_empty_userid_stays_as_before() -> None:
    [decision] = decide(row({"who": ""}), None, kinds_by("userid", "originator"))
    assert isinstance(decision, NewRound) and decision.error_code == "bad_payload"
    assert decision.error_message == "outbox row 7: originator: expected a DingTalk userId, got ''"


def test_a_department_path_with_an_empty_name_is_refused() -> None:
    kinds = {
        "k": KindSettings(
            process_code="P", originator={"value": "u1"}, dept_id={"field": "d", "by": "name"}
        )
    }
    [decision] = decide(row({"d": "研发部//后端组"}), None, kinds)
    assert isinstance(decision, NewRound) and decision.error_code == "bad_identifier"
    assert "dept_id: '研发部//后端组' is not a department name" in (decision.error_message or "")
    [ok] = decide(row({"d": "研发部/后端组"}), None, kinds)
    assert isinstance(ok, NewRound) and ok.state is ApprovalState.PENDING and ok.dept_id is None


# --- matching and masking -------------------------------------------------------------------


@given(
    holders=st.lists(
        st.builds(Holder, st.sampled_from(["u1", "u2", "u3"]), st.just("n"), st.booleans()),
        max_size=5,
        unique_by=lambda h: h.user_id,
    )
)
def test_match_finds_exactly_one_present_holder(holders: list[Holder]) -> None:
    result = match(holders)
    present = [h for h in holders if not h.departed]
    if len(present) == 1:
        assert (result.outcome, result.holder) == ("found", present[0])
    elif present:
        assert (result.outcome, list(result.holders)) == ("ambiguous", present)
    else:
        assert result.outcome == ("departed" if holders else "unknown")


@given(n=st.from_regex(r"\A1[3-9][0-9]{9}\Z"), form=st.sampled_from(_MOBILE_FORMS))
def test_a_mobile_is_never_shown_whole(n: str, form: str) -> None:
    written = form.format(n=n, a=n[:3], b=n[3:7], c=n[7:])
    shown = masked("mobile", written)
    assert n not in re.sub(r"\D", "", shown)
    assert shown.endswith(f"{n[:3]}****{n[-4:]}")
    assert masked("email", "Zhang.San@Example.com") == "Z***@Example.com"


def test_reconciling_compares_the_user_id_the_create_was_sent_with() -> None:
    sent = [{"name": "天数", "value": "2"}]
    item = SubmitItem(
        1, "k", "key", 1, {}, "e1001", None, 1, NOW, form_values=sent, originator_user_id="u1"
    )
    instance = ProcessInstance.model_validate(
        {"originatorUserId": "u1", "formComponentValues": sent}
    )
    assert matches(item, None, instance)
    other = instance.model_copy(update={"originator_user_id": "u9"})
    assert not matches(item, None, other)
