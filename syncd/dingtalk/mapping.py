"""DingTalk error answers → syncd's exception tree, by what the caller must do next.

Pure functions over a status, headers and body, so the token auth and the client share
one table and tests can read it. Transport failures (``httpx.HTTPError``) are mapped in
``client.py`` alone. The table is in ``docs/dingtalk-client.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from syncd.errors import (
    DingTalkAuthError,
    DingTalkError,
    DingTalkOutcomeUnknown,
    DingTalkQuotaExhausted,
    DingTalkRejected,
    DingTalkThrottled,
    DingTalkTransient,
)

AUTH_CODES = frozenset(
    {
        "InvalidAuthentication",
        "AuthenticationFailed.MissingParameter",
        "invalidClientIdOrSecret",
        "authFailed",
        "unauthorized.client",
        "invalid.client",
        "needAuth",
        "Forbidden.AccessDenied.AccessTokenPermissionDenied",
        "Forbidden.AccessDenied.IpNotInWhiteList",
    }
)
THROTTLE_CODES = frozenset({"system.busy", "systemBusy", "autoflowLikeTriggerRateLimited"})
QUOTA_CODES = frozenset({"Forbidden.AccessDenied.ApiCountLimitForOrg"})
SERVER_CODES = frozenset(
    {
        "systemError",
        "internalError",
        "sysErrror",
        "unknownError",
        "server.error",
        "ServiceUnavailable",
    }
)
#: Old-API ``errcode`` values (answered with HTTP 200; contract §8).
OLD_AUTH = frozenset({40001, 40014, 40089, 40096, 41001, 42001, 60011, 60020})
OLD_THROTTLE = frozenset({90018, 90002})
OLD_QUOTA = frozenset({90020})
OLD_BUSY = frozenset({-1})
#: A per-IP ban lasts five minutes (contract §8).
IP_BAN_SECONDS = 300.0
QPM_SECONDS = 60.0
QPS_SECONDS = 1.0


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def _retry_after(headers: Mapping[str, str], default: float) -> float:
    raw = headers.get("retry-after", "")
    try:
        return max(default, float(raw))
    except ValueError:
        return default


def _throttle_delay(code: str, headers: Mapping[str, str]) -> float:
    default = QPM_SECONDS if "Qpm" in code else QPS_SECONDS
    return _retry_after(headers, default)


def _is_throttle(code: str, status: int) -> bool:
    return (
        code in THROTTLE_CODES
        or code.startswith(("Forbidden.AccessDenied.Qps", "Forbidden.AccessDenied.Qpm"))
        or (status == 429 and code not in QUOTA_CODES)
    )


def classify(code: str, message: str, status: int, request_id: str, delay: float) -> DingTalkError:
    """The exception for a new-API error answer ``{code, message, requestid}``."""
    kw: dict[str, Any] = {"code": code, "request_id": request_id, "http_status": status}
    text = message or code or f"HTTP {status}"
    if code in AUTH_CODES or status == 401:
        return DingTalkAuthError(text, **kw)
    if code in QUOTA_CODES:
        return DingTalkQuotaExhausted(text, **kw)
    if _is_throttle(code, status):
        return DingTalkThrottled(text, retry_after=delay, **kw)
    if status >= 500 or code in SERVER_CODES:
        return DingTalkTransient(text, **kw)
    return DingTalkRejected(text, **kw)


def classify_old(body: Mapping[str, Any], status: int) -> DingTalkError:
    """The exception for an old-API answer with ``errcode != 0``."""
    errcode = body.get("errcode")
    code = (
        int(errcode) if isinstance(errcode, int | str) and str(errcode).lstrip("-").isdigit() else 0
    )
    sub = body.get("sub_code")
    if code == 88 and isinstance(sub, int | str) and str(sub).isdigit():
        code = int(sub)
    message = str(body.get("sub_msg") or body.get("errmsg") or f"errcode {code}")
    kw: dict[str, Any] = {
        "code": str(code),
        "request_id": str(body.get("request_id") or ""),
        "http_status": status,
    }
    if code in OLD_AUTH or code == 88:
        return DingTalkAuthError(message, **kw)
    if code in OLD_QUOTA:
        return DingTalkQuotaExhausted(message, **kw)
    if code in OLD_THROTTLE:
        return DingTalkThrottled(message, retry_after=QPS_SECONDS, **kw)
    if code in OLD_BUSY:
        return DingTalkTransient(message, **kw)
    return DingTalkRejected(message, **kw)


def _not_json(status: int, headers: Mapping[str, str]) -> DingTalkError:
    if status in {403, 429}:  # the per-IP ban answers with an HTML page
        delay = _retry_after(headers, IP_BAN_SECONDS)
        return DingTalkThrottled(
            "DingTalk blocked this address", retry_after=delay, http_status=status
        )
    return DingTalkTransient(f"DingTalk answered HTTP {status} without JSON", http_status=status)


def error_from_response(
    status: int, headers: Mapping[str, str], content: bytes
) -> DingTalkError | None:
    """The error a response stands for, or ``None`` when it is a success."""
    body = _json(content)
    if isinstance(body, dict) and body.get("status") == 1111:  # per-IP ban (contract §8)
        wait = body.get("wait")
        minutes = float(wait) if isinstance(wait, int | float) else IP_BAN_SECONDS / 60
        return DingTalkThrottled("DingTalk blocked this address", retry_after=minutes * 60)
    if isinstance(body, dict) and body.get("errcode") not in (None, 0, "0"):
        return classify_old(body, status)
    if 200 <= status < 300:
        return None
    if not isinstance(body, dict):
        return _not_json(status, headers)
    code = str(body.get("code") or "")
    message = str(body.get("message") or "")
    request_id = str(
        body.get("requestid") or body.get("requestId") or headers.get("x-acs-request-id", "")
    )
    return classify(code, message, status, request_id, _throttle_delay(code, headers))


#: File-store (OSS) codes worth a new ticket and another try: an expired signed URL, a
#: busy or slow store (contract §17.4).
OSS_RETRY_CODES = frozenset({"RequestTimeout", "SlowDown", "RequestTimeTooSkewed"})
_OSS_CODE = re.compile(r"<Code>([^<]*)</Code>")
_OSS_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")


def oss_error_from_response(
    status: int, headers: Mapping[str, str], content: bytes
) -> DingTalkError | None:
    """The error an answer of the file store (an upload PUT, a download GET) stands for:
    OSS answers in XML (``<Error><Code>…``), never DingTalk's JSON."""
    if 200 <= status < 300:
        return None
    text = content.decode("utf-8", "replace")
    code_match, message_match = _OSS_CODE.search(text), _OSS_MESSAGE.search(text)
    code = code_match.group(1) if code_match else f"HTTP{status}"
    message = f"file store: {code}" + (f" ({message_match.group(1)})" if message_match else "")
    kw: dict[str, Any] = {
        "code": code,
        "request_id": headers.get("x-oss-request-id", ""),
        "http_status": status,
    }
    expired = code == "AccessDenied" and "expired" in message.lower()
    if status >= 500 or code in OSS_RETRY_CODES or expired:
        return DingTalkTransient(message, **kw)
    return DingTalkRejected(message, **kw)


def for_create(error: DingTalkError) -> DingTalkError:
    """A create's error: a server-side failure may have created the instance anyway."""
    if isinstance(error, DingTalkTransient) and not isinstance(error, DingTalkThrottled):
        unknown = DingTalkOutcomeUnknown(
            f"create outcome unknown: {error.message}",
            code=error.code,
            request_id=error.request_id,
            http_status=error.http_status,
        )
        unknown.__cause__ = error
        return unknown
    return error
