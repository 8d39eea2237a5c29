"""Events as they arrive (approval events, contract §10; contact-change events, §16), and
the key that stores each once (§12, §16.4)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syncd.domain import Channel

#: The business fields that tell two deliveries of a key-less event apart (contract §12).
_FALLBACK_FIELDS = ("processInstanceId", "type", "result", "taskId", "finishTime")

#: The approval events (contract §10); every other event type is an organisation's.
APPROVAL_EVENTS = frozenset({"bpms_instance_change", "bpms_task_change"})
#: The contact-change events that change the directory (contract §16.1).
USER_EVENTS = ("user_add_org", "user_modify_org", "user_active_org", "user_leave_org")
DEPARTMENT_EVENTS = ("org_dept_create", "org_dept_modify", "org_dept_remove")
DIRECTORY_EVENTS = (*USER_EVENTS, *DEPARTMENT_EVENTS)
#: Every contact-change event of §16.1, the directory's and those it has no use for.
CONTACT_EVENTS = (
    *DIRECTORY_EVENTS,
    "org_admin_add",
    "org_admin_remove",
    "label_user_change",
    "label_conf_add",
    "label_conf_modify",
    "label_conf_del",
    "org_change",
)
#: Where a contact event's ids and time are, in the shapes of §16.2 and §16.3.
_USER_IDS = ("UserId", "userId", "userIdList")
_DEPT_IDS = ("DeptId", "deptId")
_TIMES = ("TimeStamp", "timeStamp", "EventTime")


@dataclass(frozen=True)
class InboundEvent:
    """One received event, ready for ``syncd.inbox``; ``payload`` is the business JSON."""

    dedup_key: str
    channel: Channel
    event_type: str
    instance_id: str | None
    payload: Mapping[str, Any]


def _text(value: object) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _ids(payload: Mapping[str, Any], keys: tuple[str, ...]) -> list[str]:
    """The ids under the first of ``keys`` present (a list, or one value), as sorted text."""
    for key in keys:
        value = payload.get(key)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        return sorted({_text(v) for v in values if _text(v)})
    return []


def user_ids(payload: Mapping[str, Any]) -> list[str]:
    """The userIds a contact event names (``UserId`` | ``userId`` | ``userIdList``)."""
    return _ids(payload, _USER_IDS)


def dept_ids(payload: Mapping[str, Any]) -> list[int]:
    """The department ids a contact event names (``DeptId`` | ``deptId``); ids that are
    not numbers are left out."""
    return sorted({int(d) for d in _ids(payload, _DEPT_IDS) if d.lstrip("-").isdigit()})


def event_time_ms(payload: Mapping[str, Any]) -> int | None:
    """When DingTalk says a contact event happened (``TimeStamp`` | ``timeStamp`` |
    ``EventTime``, ms, a string or a number), or ``None``."""
    for key in _TIMES:
        text = _text(payload.get(key))
        if text.isdigit():
            return int(text)
    return None


def _contact_key(event_type: str, payload: Mapping[str, Any]) -> str:
    """The key of a contact event without an eventId (contract §16.4): its type, its time
    and its sorted ids, in whichever of the shapes of §16.2 and §16.3 it came."""
    time = event_time_ms(payload)
    fields = {
        "time": "" if time is None else str(time),
        "users": user_ids(payload),
        "depts": [str(d) for d in dept_ids(payload)],
    }
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()
    return f"{event_type}:c:{digest[:40]}"


def dedup_key(event_type: str, payload: Mapping[str, Any], event_id: str | None = None) -> str:
    """``<type>:<eventId>``; without one, ``<type>:h:<hash of the identifying fields>``
    for an approval event and ``<type>:c:<hash of time and ids>`` for any other."""
    if event_id:
        return f"{event_type}:{event_id}"
    if event_type not in APPROVAL_EVENTS:
        return _contact_key(event_type, payload)
    fields = {name: _text(payload.get(name)) for name in _FALLBACK_FIELDS}
    if not fields["taskId"]:
        fields["taskId"] = "staff:" + _text(payload.get("staffId"))
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()
    return f"{event_type}:h:{digest[:40]}"


def make_event(
    channel: Channel,
    event_type: str,
    payload: Mapping[str, Any],
    event_id: str | None = None,
) -> InboundEvent:
    """An :class:`InboundEvent` with its dedup key and instance id filled in."""
    instance_id = payload.get("processInstanceId")
    return InboundEvent(
        dedup_key=dedup_key(event_type, payload, event_id),
        channel=channel,
        event_type=event_type,
        instance_id=str(instance_id) if instance_id else None,
        payload=payload,
    )
