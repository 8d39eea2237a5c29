"""Timing and recording DingTalk calls made for an approval: by the pipeline around each
request, and by an adapter whose one operation is several calls (the attachment upload)."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TypeVar

from syncd.domain import CallRecord
from syncd.errors import DingTalkError

T = TypeVar("T")


async def call(
    calls: list[CallRecord],
    endpoint: str,
    purpose: str,
    request: Awaitable[T],
    *,
    metered: bool = True,
) -> T:
    """Await a DingTalk call and append its record to ``calls``, success or not
    (``metered``: whether it counts against the monthly quota)."""
    started = time.monotonic()
    try:
        result = await request
    except DingTalkError as exc:
        calls.append(
            CallRecord(
                endpoint=endpoint,
                purpose=purpose,
                ok=False,
                duration_ms=int((time.monotonic() - started) * 1000),
                code=exc.code or type(exc).__name__,
                http_status=exc.http_status,
                message=exc.message[:500],
                metered=metered,
            )
        )
        raise
    calls.append(
        CallRecord(
            endpoint=endpoint,
            purpose=purpose,
            ok=True,
            duration_ms=int((time.monotonic() - started) * 1000),
            metered=metered,
        )
    )
    return result
