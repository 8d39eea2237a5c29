"""Contact-change events are stored once each (contract §16.4), in every shape they come in.

Drawn contact events are rendered as each channel delivers them: a Stream frame's data
with the eventId header (§16.3), the legacy HTTP push with capitalised keys and no eventId,
the current HTTP push with ``eventId`` (§16.2), and an item of the failed-push list (no
eventId; ids and time as the Stream data has them, the item's ``event_time``). Whatever
the encoding (times as strings or numbers, ids in any order, department ids as numbers or
text, an operator or not), a redelivery always has the key of the first delivery, the
legacy push and the failed-list item of one event share theirs, and two distinct events
(another type, time or set of ids) never share a key, in any pair of shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from syncd.dingtalk.events import (
    APPROVAL_EVENTS,
    CONTACT_EVENTS,
    DEPARTMENT_EVENTS,
    dedup_key,
    dept_ids,
    event_time_ms,
    make_event,
    user_ids,
)
from syncd.dingtalk.failed import _item_event

SHAPES = ("stream", "legacy", "current", "failed")


@dataclass(frozen=True)
class Change:
    """One contact event as DingTalk made it."""

    event_type: str
    time: int
    ids: frozenset[str]
    event_id: str

    @property
    def identity(self) -> tuple[str, int, frozenset[str]]:
        return self.event_type, self.time, self.ids

    @property
    def departments(self) -> bool:
        return self.event_type in DEPARTMENT_EVENTS


@st.composite
def changes(draw: st.DrawFn) -> Change:
    event_type = draw(st.sampled_from(CONTACT_EVENTS))
    if event_type in DEPARTMENT_EVENTS:
        ids = draw(st.frozensets(st.integers(1, 10**12).map(str), min_size=1, max_size=3))
    else:
        ids = draw(st.frozensets(st.from_regex(r"[0-9a-z]{1,12}", fullmatch=True), max_size=3))
    time = draw(st.integers(1_600_000_000_000, 1_800_000_000_000))
    return Change(event_type, time, ids, draw(st.uuids()).hex)


@st.composite
def encodings(draw: st.DrawFn) -> dict[str, Any]:
    """How one delivery spells things: ordering, number or string, operator or not."""
    return {
        "order": draw(st.randoms(use_true_random=False)),
        "time_as_text": draw(st.booleans()),
        "dept_as_text": draw(st.booleans()),
        "operator": draw(st.sampled_from([None, "admin1", "0113430928611169518"])),
    }


def _ids(change: Change, how: dict[str, Any]) -> list[Any]:
    ids: list[Any] = sorted(change.ids)
    how["order"].shuffle(ids)
    if change.departments and not how["dept_as_text"]:
        ids = [int(i) for i in ids]
    return ids


def _data(change: Change, how: dict[str, Any]) -> dict[str, Any]:
    """The business fields as Stream data carries them (§16.3): departments ids only."""
    if change.departments:
        return {"deptId": _ids(change, how)}
    return {"timeStamp": str(change.time), "userId": _ids(change, how)}


def render(change: Change, shape: str, how: dict[str, Any]) -> Any:
    """The stored event of one delivery of ``change`` in ``shape``."""
    time: Any = str(change.time) if how["time_as_text"] else change.time
    if shape == "stream":
        return make_event("stream", change.event_type, _data(change, how), change.event_id)
    if shape == "current":
        message = {
            "EventType": change.event_type,
            "EventTime": change.time,
            "CorpId": "dingcorp",
            "BizId": "",
            "eventId": change.event_id,
            **_data(change, how),
        }
        return make_event("callback", change.event_type, message, change.event_id)
    if shape == "legacy":
        key = "DeptId" if change.departments else "UserId"
        message = {"CorpId": "dingcorp", "EventType": change.event_type, key: _ids(change, how)}
        message["TimeStamp"] = time
        if how["operator"] and not change.departments:
            message["OptStaffId"] = how["operator"]
        return make_event("callback", change.event_type, message, None)
    item = {
        "call_back_tag": change.event_type,
        "event_time": change.time,
        change.event_type: {
            "corpid": "dingcorp",
            "bpmsCallBackData": {"EventType": change.event_type, **_data(change, how)},
        },
    }
    return _item_event(item)


@given(
    change=changes(),
    first=st.sampled_from(SHAPES),
    how=encodings(),
    again=encodings(),
)
def test_a_redelivery_has_the_key_of_the_first_delivery(change, first, how, again):
    key = render(change, first, how).dedup_key
    assert render(change, first, again).dedup_key == key
    if first in ("legacy", "failed"):  # neither has an eventId: keyed on time and ids
        other = "failed" if first == "legacy" else "legacy"
        assert render(change, other, again).dedup_key == key
    if first in ("stream", "current"):  # both carry the eventId
        other = "current" if first == "stream" else "stream"
        assert render(change, other, again).dedup_key == key


@given(
    one=changes(),
    two=changes(),
    shapes=st.tuples(st.sampled_from(SHAPES), st.sampled_from(SHAPES)),
    how=encodings(),
)
def test_distinct_events_never_share_a_key(one, two, shapes, how):
    if one.identity == two.identity:
        return
    assert render(one, shapes[0], how).dedup_key != render(two, shapes[1], how).dedup_key


@given(change=changes(), shape=st.sampled_from(SHAPES), how=encodings())
def test_the_ids_and_time_read_back_from_every_shape(change, shape, how):
    event = render(change, shape, how)
    assert event.event_type == change.event_type and event.instance_id is None
    if change.departments:
        assert dept_ids(event.payload) == sorted(int(i) for i in change.ids)
        assert user_ids(event.payload) == []
    else:
        assert user_ids(event.payload) == sorted(change.ids)
    if shape != "stream" or not change.departments:  # Stream department data has no time
        assert event_time_ms(event.payload) == change.time


def test_key_less_contact_events_of_one_type_no_longer_collide():
    """The approval fallback hashed processInstanceId, taskId...: all empty here."""
    one = {"EventType": "user_leave_org", "UserId": ["u1"], "TimeStamp": "1700000000123"}
    two = {**one, "UserId": ["u2"]}
    three = {**one, "TimeStamp": "1700000000124"}
    keys = {dedup_key("user_leave_org", e) for e in (one, two, three)}
    assert len(keys) == 3
    assert all(":c:" in key for key in keys)
    assert not APPROVAL_EVENTS & set(CONTACT_EVENTS)
