"""DingTalk's list of events it failed to push (contract §9.7), read into the inbox.

:data:`~syncd.dingtalk.endpoints.FAILED_LIST` on the old API: token in the query,
errors as HTTP 200 with ``errcode``, up to 200 events per call and ``has_more``. Each
item is keyed by its tag; approval payloads sit under ``bpmsCallBackData``. Events come
out with the fallback dedup key (the list carries no event id), so an event that did
arrive earlier by another channel is at worst applied twice, which changes nothing. A
contact event without a time of its own takes the item's ``event_time`` as ``EventTime``
(contract §16.4 keys them on their type, time and ids).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from syncd.dingtalk.auth import DingTalkTokenAuth
from syncd.dingtalk.calls import error_of, send
from syncd.dingtalk.endpoints import FAILED_LIST
from syncd.dingtalk.events import APPROVAL_EVENTS, InboundEvent, event_time_ms, make_event
from syncd.errors import DingTalkAuthError, DingTalkTransient

_PAYLOAD_KEYS = ("bpmsCallBackData", "callbackData", "roleLabelChange")


def _item_event(item: dict[str, Any]) -> InboundEvent | None:
    tag = item.get("call_back_tag")
    if not isinstance(tag, str) or not tag:
        return None
    wrapper = item.get(tag)
    payload: Any = {}
    if isinstance(wrapper, dict):
        payload = next((wrapper[k] for k in _PAYLOAD_KEYS if isinstance(wrapper.get(k), dict)), {})
    if isinstance(payload, str):
        payload = json.loads(payload)
    payload = payload if isinstance(payload, dict) else {}
    born = item.get("event_time")
    if tag not in APPROVAL_EVENTS and event_time_ms(payload) is None and born is not None:
        payload = {**payload, "EventTime": born}
    return make_event("failed_list", tag, payload)


class FailedPushList:
    """Reads the failed-push list; ``http`` is based on the old API host with token auth."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def failed_events(self) -> tuple[list[InboundEvent], bool]:
        for attempt in (1, 2):
            try:
                response = await send(self._http, FAILED_LIST)
            except httpx.HTTPError as exc:
                raise DingTalkTransient(f"DingTalk unreachable ({type(exc).__name__})") from exc
            error = error_of(response)
            if isinstance(error, DingTalkAuthError) and attempt == 1:
                if isinstance(self._http.auth, DingTalkTokenAuth):
                    self._http.auth.invalidate()
                continue
            if error is not None:
                raise error
            break
        try:
            body = response.json()
        except ValueError as exc:
            raise DingTalkTransient("unreadable failed-push list from DingTalk") from exc
        items = body.get("failed_list") or []
        events = [e for e in (_item_event(i) for i in items if isinstance(i, dict)) if e]
        return events, bool(body.get("has_more"))
