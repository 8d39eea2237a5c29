"""DingTalk's contact APIs (contract §15): departments, their members, one user, by mobile.

All on the old API host (``oapi``; token in the query, errors as HTTP 200 with
``errcode``), all exempt from the monthly quota but paced like every call. Answers are
read into :mod:`syncd.people`'s records, with mobiles and emails in their normal form;
what the directory does not need (avatars, roles, extension fields) is never kept.
Implements ``syncd.ports.directory.DirectoryClient``.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from syncd.clock import SystemClock
from syncd.dingtalk import endpoints
from syncd.dingtalk.endpoints import Endpoint
from syncd.dingtalk.paced import paced_send
from syncd.dingtalk.pacing import MemoryPacer, Pacer
from syncd.errors import DingTalkError, DingTalkTransient
from syncd.people import (
    DirectoryDepartment,
    DirectoryUser,
    NotAnIdentifier,
    UserPage,
    normal,
    normal_mobile,
)
from syncd.ports import Clock

logger = logging.getLogger(__name__)

#: ``v2/user/list`` answers at most this many members a page (contract §15.6).
PAGE_SIZE = 100
#: ``errcode`` of an unknown, departed or external user (§15.8), and of a department
#: that does not exist (§15.4).
USER_NOT_FOUND = "60121"
DEPT_NOT_FOUND = "60003"


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _normal_or_none(by: str, value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return normal(by, text)  # type: ignore[arg-type]
    except NotAnIdentifier:
        return None  # DingTalk holds something no row could match: keep nothing


def read_user(raw: Any) -> DirectoryUser:
    """A user from a ``v2/user/list`` item or a ``v2/user/get`` result."""
    if not isinstance(raw, dict) or not _text(raw.get("userid")):
        raise DingTalkTransient("unreadable user in a DingTalk contact answer")
    mobile = _text(raw.get("mobile"))
    normal_phone = None
    if mobile is not None:
        try:
            normal_phone = normal_mobile(mobile, _text(raw.get("state_code")))
        except NotAnIdentifier:
            normal_phone = None
    depts = raw.get("dept_id_list")
    return DirectoryUser(
        user_id=str(raw["userid"]).strip(),
        name=_text(raw.get("name")) or "",
        union_id=_text(raw.get("unionid")),
        job_number=_normal_or_none("job_number", raw.get("job_number")),
        mobile=normal_phone,
        email=_normal_or_none("email", raw.get("email")),
        org_email=_normal_or_none("email", raw.get("org_email")),
        dept_ids=tuple(int(d) for d in depts if isinstance(d, int) and not isinstance(d, bool))
        if isinstance(depts, list)
        else (),
        activated=raw.get("active") is not False,
    )


def read_department(raw: Any) -> DirectoryDepartment:
    """A department from a ``listsub`` item or a ``department/get`` result."""
    if not isinstance(raw, dict) or not isinstance(raw.get("dept_id"), int):
        raise DingTalkTransient("unreadable department in a DingTalk contact answer")
    parent = raw.get("parent_id")
    dept_id = int(raw["dept_id"])
    return DirectoryDepartment(
        dept_id=dept_id,
        name=_text(raw.get("name")) or "",
        parent_id=int(parent) if isinstance(parent, int) and parent and dept_id != 1 else None,
    )


class HttpxContactClient:
    """The contact reads; ``http`` is based on the old API host with the app's token auth."""

    def __init__(
        self, http: httpx.AsyncClient, *, pacer: Pacer | None = None, clock: Clock | None = None
    ) -> None:
        self._http = http
        self._pacer = pacer or MemoryPacer(clock=clock or SystemClock())

    async def subdepartments(self, dept_id: int) -> list[DirectoryDepartment]:
        """The direct children of a department (``v2/department/listsub``, unpaged)."""
        result = await self._call(endpoints.DEPT_LISTSUB, {"dept_id": dept_id})
        if not isinstance(result, list):
            raise DingTalkTransient("unreadable dept_listsub answer from DingTalk")
        return [read_department(item) for item in result]

    async def department(self, dept_id: int) -> DirectoryDepartment | None:
        """One department, or ``None`` when DingTalk has no such department (60003)."""
        try:
            result = await self._call(endpoints.DEPT_GET, {"dept_id": dept_id})
        except DingTalkError as exc:
            if exc.code == DEPT_NOT_FOUND:
                return None
            raise
        return read_department(result)

    async def members(self, dept_id: int, cursor: int = 0, size: int = PAGE_SIZE) -> UserPage:
        """One page of a department's direct members (``v2/user/list``)."""
        body = {"dept_id": dept_id, "cursor": cursor, "size": size, "contain_access_limit": True}
        result = await self._call(endpoints.USER_LIST, body)
        items = result.get("list") if isinstance(result, dict) else None
        if not isinstance(items, list):
            raise DingTalkTransient("unreadable user_list answer from DingTalk")
        more = bool(result.get("has_more"))
        following = result.get("next_cursor")
        if more and not isinstance(following, int):
            raise DingTalkTransient("user_list answered has_more without a next_cursor")
        return UserPage([read_user(item) for item in items], following if more else None)

    async def user(self, user_id: str) -> DirectoryUser | None:
        """One user, or ``None`` when DingTalk does not find them (60121: unknown or
        departed)."""
        try:
            result = await self._call(endpoints.USER_GET, {"userid": user_id})
        except DingTalkError as exc:
            if exc.code == USER_NOT_FOUND:
                return None
            raise
        return read_user(result)

    async def user_id_by_mobile(self, mobile: str) -> str | None:
        """The userId of the present user with this mobile (``+CC…`` or national digits),
        or ``None`` (60121: nobody, or only someone who left)."""
        national = mobile[3:] if mobile.startswith("+86") else mobile
        try:
            result = await self._call(endpoints.USER_BY_MOBILE, {"mobile": national})
        except DingTalkError as exc:
            if exc.code == USER_NOT_FOUND:
                return None
            raise
        user_id = result.get("userid") if isinstance(result, dict) else None
        return str(user_id) if user_id else None

    async def _call(self, endpoint: Endpoint, body: dict[str, Any]) -> Any:
        """``result`` of one contact call; a refused token is fetched again once."""
        response = await paced_send(self._http, self._pacer, endpoint, json=body)
        try:
            return response.json().get("result")
        except (ValueError, AttributeError) as exc:
            raise DingTalkTransient(f"unreadable {endpoint.name} answer from DingTalk") from exc
