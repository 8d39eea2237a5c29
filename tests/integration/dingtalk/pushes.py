"""Callback pushes as DingTalk signs them, and hostile variants, for the endpoint's tests."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from syncd.dingtalk.callback import REASONS, CallbackEndpoint
from syncd.dingtalk.crypto import CallbackCrypto
from syncd.ports import NullObserver

TOKEN, AES_KEY, OWNER = (
    "hostile-token-01",
    "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "dingsimappkey0001",
)
OTHER_AES_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
NOW = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)
MAX_AGE = 300.0
PATH = "/dingtalk/callback"
CRYPTO = CallbackCrypto(TOKEN, AES_KEY, OWNER)

_event_ids = itertools.count(1)


def event(event_type: str = "bpms_instance_change") -> dict[str, Any]:
    """A new event (a fresh event id each call)."""
    return {
        "EventType": event_type,
        "eventId": f"ev-{next(_event_ids)}",
        "processInstanceId": "pi-hostile",
        "type": "finish",
        "result": "agree",
    }


@dataclass
class Push:
    """The query and body of one request to the endpoint."""

    query: dict[str, str]
    body: bytes
    encrypt: str = ""

    def with_signature(self, signature: str) -> Push:
        return Push({**self.query, "msg_signature": signature}, self.body, self.encrypt)


def sign(
    plaintext: str,
    *,
    offset: float = 0.0,
    nonce: str = "nonce123",
    seconds: bool = False,
    token: str = TOKEN,
    aes_key: str = AES_KEY,
    owner: str = OWNER,
    now: datetime = NOW,
) -> Push:
    """A push carrying ``plaintext``, encrypted with ``aes_key``/``owner``, signed with
    ``token``, stamped ``offset`` seconds from ``now``."""
    encrypt = CallbackCrypto(TOKEN, aes_key, owner).encrypt(plaintext)
    stamp = now.timestamp() + offset
    timestamp = str(int(stamp) if seconds else int(stamp * 1000))
    signature = CallbackCrypto(token, AES_KEY, OWNER).sign(timestamp, nonce, encrypt)
    query = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}
    return Push(query, json.dumps({"encrypt": encrypt}).encode(), encrypt)


def genuine(message: dict[str, Any] | None = None, **kw: Any) -> Push:
    return sign(json.dumps(message or event()), **kw)


class Rejections(NullObserver):
    """Counts the endpoint's refusals by reason (what the metric sees)."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def callback_rejected(self, reason: str) -> None:
        assert reason in REASONS, reason
        self.reasons.append(reason)


class RejectedLines(logging.Handler):
    """Collects the ``callback_rejected`` log lines of ``syncd.dingtalk.callback``."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "action", None) == "callback_rejected":
            self.lines.append(record)


def endpoint(inbox: Any, clock: Any, observer: Rejections | None = None) -> CallbackEndpoint:
    return CallbackEndpoint(CRYPTO, inbox, clock=clock, max_age=MAX_AGE, observer=observer)


Counts = Callable[[], Awaitable[tuple[int, int]]]


def counter(pool: AsyncConnectionPool[Any]) -> Counts:
    """(inbox rows, replay claims) in the database."""

    async def count() -> tuple[int, int]:
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT (SELECT count(*) FROM syncd.inbox) AS events,"
                " (SELECT count(*) FROM syncd.callback_replay) AS claims"
            )
            row = await cursor.fetchone()
        assert row is not None
        return int(row["events"]), int(row["claims"])

    return count


async def chunks(size: int, fill: bytes = b"[", chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    """``size`` bytes of ``fill``, produced a chunk at a time (the sender never holds them)."""
    block = fill * chunk
    sent = 0
    while sent < size:
        part = block[: min(chunk, size - sent)]
        sent += len(part)
        yield part
