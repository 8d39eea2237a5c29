"""The HTTP callback endpoint DingTalk pushes events to (contract §9).

A push is accepted only when its signature (``msg_signature`` or ``signature``) is right,
its timestamp is within ``max_age`` seconds of now, it was not seen before, and it
decrypts with our AES key and owner key. ``check_url`` is answered without storing
anything; every other event is written to the inbox and **committed** before the
encrypted ``success`` goes back, within ``deadline`` seconds (DingTalk gives up after
1.5 s). Anything rejected writes nothing and gets a 4xx; a storage failure gets a 503, so
DingTalk retries and, failing that, lists the event for the failed-push sweeper.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.dingtalk.crypto import CallbackCrypto, CallbackCryptoError
from syncd.dingtalk.events import make_event
from syncd.errors import StoreError
from syncd.ports import Clock, InboxWriter

logger = logging.getLogger(__name__)

DEFAULT_PATH = "/dingtalk/callback"
DEFAULT_MAX_AGE = 300.0
#: Leave room inside DingTalk's 1.5 s for the network and the reply.
DEFAULT_DEADLINE = 1.0
CHECK_EVENTS = frozenset({"check_url", "check_create_suite_url", "check_update_suite_url"})
_MS_THRESHOLD = 100_000_000_000


class Rejected(Exception):
    """A push that is not accepted; ``reason`` goes to the log, never to the sender."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class ReplayGuard:
    """Remembers accepted signatures until their timestamp has gone stale anyway."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def seen(self, signature: str, now: float) -> bool:
        self._seen = {key: until for key, until in self._seen.items() if until > now}
        return signature in self._seen

    def remember(self, signature: str, until: float) -> None:
        self._seen[signature] = until


def _timestamp_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise Rejected("timestamp is not a number", 400) from None
    return value / 1000 if value >= _MS_THRESHOLD else value


class CallbackEndpoint:
    """Handles DingTalk's pushes; mount :meth:`route` in the daemon's starlette app."""

    def __init__(
        self,
        crypto: CallbackCrypto,
        inbox: InboxWriter,
        *,
        clock: Clock,
        max_age: float = DEFAULT_MAX_AGE,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self._crypto = crypto
        self._inbox = inbox
        self._clock = clock
        self._max_age = max_age
        self._deadline = deadline
        self._replays = ReplayGuard()
        self.accepted = 0  # counters for metrics
        self.rejected = 0

    def route(self, path: str = DEFAULT_PATH) -> Route:
        """A starlette route serving this endpoint."""
        return Route(path, self.handle, methods=["POST"], name="dingtalk_callback")

    async def handle(self, request: Request) -> Response:
        try:
            signature, timestamp, nonce, encrypt = await self._read(request)
            sent_at = self._check(signature, timestamp, nonce, encrypt)
            message = self._decrypt(encrypt)
            await self._store(message)
        except Rejected as exc:
            self.rejected += 1
            logger.warning(
                "callback rejected: %s",
                exc.reason,
                extra={"action": "callback_rejected", "reason": exc.reason},
            )
            return Response(status_code=exc.status)
        except StoreError:
            logger.exception("callback not stored", extra={"action": "callback_store_failed"})
            return Response(status_code=503)
        self.accepted += 1
        self._replays.remember(signature, sent_at + self._max_age)
        now_ms = str(int(self._clock.now().timestamp() * 1000))
        return JSONResponse(self._crypto.reply("success", timestamp=now_ms))

    async def _read(self, request: Request) -> tuple[str, str, str, str]:
        query = request.query_params
        signature = query.get("msg_signature") or query.get("signature") or ""
        timestamp = query.get("timestamp") or query.get("timeStamp") or ""
        nonce = query.get("nonce") or ""
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise Rejected("body is not JSON", 400) from None
        encrypt = body.get("encrypt") if isinstance(body, dict) else None
        if not (signature and timestamp and nonce and isinstance(encrypt, str) and encrypt):
            raise Rejected("signature, timestamp, nonce or encrypt missing", 400)
        return signature, timestamp, nonce, encrypt

    def _check(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> float:
        sent_at = _timestamp_seconds(timestamp)
        now = self._clock.now().timestamp()
        if abs(now - sent_at) > self._max_age:
            raise Rejected("stale timestamp")
        if not self._crypto.verify(signature, timestamp, nonce, encrypt):
            raise Rejected("bad signature")
        if self._replays.seen(signature, now):
            raise Rejected("replayed push")
        return sent_at

    def _decrypt(self, encrypt: str) -> dict[str, Any]:
        try:
            message = json.loads(self._crypto.decrypt(encrypt))
        except CallbackCryptoError as exc:
            raise Rejected(f"cannot decrypt: {exc.message}") from None
        except ValueError:
            raise Rejected("plaintext is not JSON", 400) from None
        if not isinstance(message, dict) or not isinstance(message.get("EventType"), str):
            raise Rejected("no EventType", 400)
        return message

    async def _store(self, message: dict[str, Any]) -> None:
        event_type = message["EventType"]
        if event_type in CHECK_EVENTS:
            logger.info("callback URL checked", extra={"action": "callback_checked"})
            return
        event_id = message.get("eventId")
        event = make_event("callback", event_type, message, str(event_id) if event_id else None)
        try:
            async with asyncio.timeout(self._deadline):
                await self._inbox.put(event)
        except TimeoutError:
            raise StoreError("storing the event took too long") from None


def create_callback_app(endpoint: CallbackEndpoint, *, path: str = DEFAULT_PATH) -> Starlette:
    """A starlette app serving only the callback route (the daemon mounts the route)."""
    return Starlette(routes=[endpoint.route(path)])
