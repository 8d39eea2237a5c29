"""One declared call after its pacing slot, as the contact and attachment clients send it:
a refused token is fetched again once, throttling slows the endpoint's bucket, and an
error answer is raised (mapped by :func:`~syncd.dingtalk.calls.error_of`)."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from syncd.dingtalk.auth import DingTalkTokenAuth
from syncd.dingtalk.calls import error_of, send
from syncd.dingtalk.endpoints import Endpoint
from syncd.dingtalk.pacing import Pacer, SendWindow, send_paced
from syncd.errors import DingTalkAuthError, DingTalkError, DingTalkThrottled, DingTalkTransient

logger = logging.getLogger(__name__)


def log_failure(endpoint: Endpoint, error: DingTalkError) -> DingTalkError:
    """Log a failed call (no secrets: the error's class, code, status and request id)."""
    logger.warning(
        "DingTalk %s failed: %s",
        endpoint.name,
        type(error).__name__,
        extra={
            "action": "dingtalk_call_failed",
            "endpoint": endpoint.name,
            "error": type(error).__name__,
            "code": error.code,
            "http_status": error.http_status,
            "request_id": error.request_id,
        },
    )
    return error


async def paced_send(
    http: httpx.AsyncClient, pacer: Pacer, endpoint: Endpoint, **request: Any
) -> httpx.Response:
    """The successful answer to ``endpoint`` (``request`` as :func:`send` takes it)."""

    async def once(window: SendWindow) -> httpx.Response:
        try:
            return await send(http, endpoint, window=window, **request)
        except httpx.HTTPError as exc:
            raise DingTalkTransient(f"DingTalk unreachable ({type(exc).__name__})") from exc

    for attempt in (1, 2):
        response = await send_paced(pacer, endpoint.name, once)
        error = error_of(response)
        if isinstance(error, DingTalkAuthError) and attempt == 1:
            if isinstance(http.auth, DingTalkTokenAuth):
                http.auth.invalidate()
                continue
        if isinstance(error, DingTalkThrottled):
            await pacer.penalize(endpoint.name, error.retry_after)
        if error is not None:
            raise error
        return response
    raise AssertionError("unreachable")
