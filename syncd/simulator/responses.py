"""Response shapes of the two DingTalk API worlds (contract §1)."""

from __future__ import annotations

import json
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response


class ApiError(Exception):
    """A new-API error: HTTP 4xx/5xx with ``{"code","message","requestid"}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class OapiError(Exception):
    """An old-API error: HTTP 200 with ``errcode != 0``."""

    def __init__(self, errcode: int, errmsg: str, sub_code: str | None = None) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        #: topapi's gateway errors: errcode 88 with ``sub_code``/``sub_msg`` (contract §1)
        self.sub_code = sub_code


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised inside the app to drop the connection without a complete response.

    In-process (httpx ASGI transport) the client sees this transport error; behind
    uvicorn the server closes the socket mid-response, which the client sees the same way.
    """


def dingtalk_json(body: Any, status: int = 200, request_id: str = "") -> Response:
    """JSON with the headers DingTalk's gateway sends."""
    headers = {"Server": "DingTalk/1.0.0"}
    if request_id:
        headers["x-acs-request-id"] = request_id
        headers["x-acs-trace-id"] = request_id.lower()
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        headers=headers,
        media_type="application/json;charset=utf-8",
    )


def api_error_body(error: ApiError, request_id: str) -> dict[str, str]:
    return {"code": error.code, "requestid": request_id, "message": error.message}


def oapi_error_body(error: OapiError, request_id: str) -> dict[str, Any]:
    if error.sub_code is not None:
        return {
            "errcode": 88,
            "sub_code": error.sub_code,
            "sub_msg": error.errmsg,
            "errmsg": f"ding talk error[subcode={error.sub_code},submsg={error.errmsg}]",
            "request_id": request_id,
        }
    return {"errcode": error.errcode, "errmsg": error.errmsg, "request_id": request_id}


async def json_body(request: Request) -> dict[str, Any]:
    """A new-API call's JSON object body; 400 ``invalidParameter`` without one."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "invalidParameter", "body is mandatory for this action")
    return body
