"""Dedup keys (contract §12): eventId when present, else a stable hash."""

from __future__ import annotations

from syncd.dingtalk.events import dedup_key, make_event

LEGACY = {
    "EventType": "bpms_task_change",
    "processInstanceId": "pi-1",
    "type": "finish",
    "result": "agree",
    "taskId": 61,
    "staffId": "u2",
    "finishTime": 1700000600000,
}


def test_event_id_wins() -> None:
    assert dedup_key("bpms_instance_change", {"x": 1}, "e1") == "bpms_instance_change:e1"


def test_fallback_hash_is_stable_across_number_and_string_encodings() -> None:
    as_text = {**LEGACY, "taskId": "61", "finishTime": "1700000600000", "title": "other"}
    assert dedup_key("bpms_task_change", LEGACY) == dedup_key("bpms_task_change", as_text)


def test_fallback_hash_tells_different_events_apart() -> None:
    keys = {
        dedup_key("bpms_task_change", LEGACY),
        dedup_key("bpms_task_change", {**LEGACY, "result": "refuse"}),
        dedup_key("bpms_task_change", {**LEGACY, "taskId": 62}),
        dedup_key("bpms_instance_change", LEGACY),
        dedup_key("bpms_task_change", {**LEGACY, "taskId": None}),
        dedup_key("bpms_task_change", {**LEGACY, "taskId": None, "staffId": "u3"}),
    }
    assert len(keys) == 6


def test_make_event_fills_instance_id() -> None:
    event = make_event("callback", "bpms_task_change", LEGACY)
    assert event.instance_id == "pi-1" and event.channel == "callback"
    assert make_event("stream", "x", {}).instance_id is None
