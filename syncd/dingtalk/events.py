"""Approval events as they arrive (contract §10), and the key that stores each once (§12)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syncd.domain import Channel

#: The business fields that tell two deliveries of a key-less event apart (contract §12).
_FALLBACK_FIELDS = ("processInstanceId", "type", "result", "taskId", "finishTime")


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


def dedup_key(event_type: str, payload: Mapping[str, Any], event_id: str | None = None) -> str:
    """``<type>:<eventId>``, or ``<type>:h:<hash of the identifying fields>`` without one."""
    if event_id:
        return f"{event_type}:{event_id}"
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
