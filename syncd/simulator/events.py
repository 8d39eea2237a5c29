"""Approval events (contract §10): their business fields and their envelopes per transport."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from syncd.simulator.state import Instance, Task, ms

INSTANCE_CHANGE = "bpms_instance_change"
TASK_CHANGE = "bpms_task_change"
_AFLOW_MOBILE = "https://aflow.dingtalk.com/dingtalk/mobile/homepage.htm"


def mobile_link(corp_id: str, instance_id: str) -> str:
    """The ``url`` of ``bpms_instance_change``: the aflow mobile deep link, in the
    pattern of real events (contract A6)."""
    corp, instance = quote(corp_id, safe=""), quote(instance_id, safe="")
    return (
        f"{_AFLOW_MOBILE}?corpid={corp}&dd_share=false&showmenu=false&dd_progress=false"
        f"&back=native&procInstId={instance}&taskId=&swfrom=isv&dinghash=approval"
        "&dtaction=os&dd_from=#approval"
    )


@dataclass(frozen=True)
class Event:
    event_id: str
    event_type: str
    corp_id: str
    born: datetime
    data: dict[str, Any]


@dataclass
class DeliveryLog:
    """What was pushed and acknowledged, per transport, for inspection."""

    pushed: list[dict[str, Any]] = field(default_factory=list)
    acknowledged: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    on_change: Callable[[], None] = lambda: None

    def record(self, kind: str, event: Event, transport: str, app_key: str, **extra: Any) -> None:
        entry = {
            "eventId": event.event_id,
            "eventType": event.event_type,
            "type": event.data.get("type"),
            "processInstanceId": event.data.get("processInstanceId"),
            "transport": transport,
            "appKey": app_key,
            **extra,
        }
        getattr(self, kind).append(entry)
        self.on_change()


def _common(instance: Instance) -> dict[str, Any]:
    return {
        "processInstanceId": instance.instance_id,
        "processCode": instance.process_code,
        "bizCategoryId": instance.biz_category_id,
        "businessId": instance.business_id,
        "title": instance.title,
    }


def instance_data(instance: Instance, kind: str) -> dict[str, Any]:
    """``bpms_instance_change`` fields; kind is start, finish or terminate."""
    data = _common(instance) | {
        "type": kind,
        "staffId": instance.originator,
        "createTime": ms(instance.create_time),
        "businessType": "",
        "url": mobile_link(instance.corp_id, instance.instance_id),
    }
    if kind == "finish":
        data["result"] = instance.result
    if kind in ("finish", "terminate") and instance.finish_time:
        data["finishTime"] = ms(instance.finish_time)
    return data


def task_data(instance: Instance, task: Task, kind: str, remark: str = "") -> dict[str, Any]:
    """``bpms_task_change`` fields; kind is start, finish or cancel."""
    data = _common(instance) | {
        "type": kind,
        "staffId": task.user_id,
        "createTime": ms(task.create_time),
        "taskId": task.task_id,
    }
    if kind == "finish":
        data["result"] = {"AGREE": "agree", "REFUSE": "refuse"}.get(task.result, "redirect")
        data["remark"] = remark
    if task.finish_time and kind != "start":
        data["finishTime"] = ms(task.finish_time)
    return data


def http_envelope(event: Event) -> dict[str, Any]:
    """The current HTTP push body (§10.1): flattened fields plus metadata."""
    return {
        "EventType": event.event_type,
        "EventTime": ms(event.born),
        "CorpId": event.corp_id,
        "BizId": event.data.get("processInstanceId", ""),
        "eventId": event.event_id,
        **event.data,
    }


def failed_item(event: Event) -> dict[str, Any]:
    """One element of the failed-push list (§9.7)."""
    return {
        "call_back_tag": event.event_type,
        "event_time": ms(event.born),
        event.event_type: {
            "corpid": event.corp_id,
            "bpmsCallBackData": {"EventType": event.event_type, **event.data},
        },
    }


def stream_frame(
    event: Event, message_id: str, now: datetime, unified_app_id: str
) -> dict[str, Any]:
    """An EVENT frame (§11.2): every header a string, ``data`` a JSON string."""
    return {
        "specVersion": "1.0",
        "type": "EVENT",
        "headers": {
            "topic": "*",
            "messageId": message_id,
            "contentType": "application/json",
            "time": str(ms(now)),
            "eventType": event.event_type,
            "eventId": event.event_id,
            "eventCorpId": event.corp_id,
            "eventBornTime": str(ms(event.born)),
            "eventUnifiedAppId": unified_app_id,
        },
        "data": json.dumps(stream_data(event), ensure_ascii=False, separators=(",", ":")),
    }


def stream_data(event: Event) -> dict[str, Any]:
    """The ``data`` of an approval event over Stream: its fields plus ``eventId`` and the
    matching subscription path ``resource``, as real Stream events carry (§20.1; whether
    HTTP pushes carry ``resource`` is unconfirmed, so they do not)."""
    if event.event_type not in (INSTANCE_CHANGE, TASK_CHANGE):
        return event.data
    code, kind = event.data.get("processCode", ""), event.data.get("type", "")
    resource = f"/v1.0/event/{event.event_type}/processCode/{code}/type/{kind}"
    return {**event.data, "eventId": event.event_id, "resource": resource}


def system_frame(
    topic: str, message_id: str, now: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    """A SYSTEM frame: ``ping`` or ``disconnect`` (§11.4)."""
    return {
        "specVersion": "1.0",
        "type": "SYSTEM",
        "headers": {
            "topic": topic,
            "messageId": message_id,
            "contentType": "application/json",
            "time": str(ms(now)),
        },
        "data": json.dumps(data, separators=(",", ":")),
    }
