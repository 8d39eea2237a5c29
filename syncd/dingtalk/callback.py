"""The HTTP callback endpoint DingTalk pushes events to (contract §9).

Anyone can reach this URL, so a request that is not a genuine push must cost next to
nothing. The checks run cheapest first, and the body is read only once the query could
belong to a genuine push:

1. the query: ``msg_signature`` (or ``signature``) 40 hex digits, ``timestamp`` (or
   ``timeStamp``) digits, ``nonce`` short printable ASCII; else 400;
2. the timestamp within ``max_age`` seconds of now; else 403;
3. the signature not accepted lately by this process (a fast path only); else 403;
4. a declared ``Content-Length`` over ``max_body_bytes``: 413, nothing read;
5. the body, read as a stream and dropped as soon as it passes ``max_body_bytes``: 413;
6. the body a UTF-8 JSON object with a base64 ``encrypt`` string; else 400;
7. the signature, over token, timestamp, nonce and ``encrypt``: else 403; then the
   decryption with our AES key and owner key (403) to a JSON object with an
   ``EventType`` (400);
8. the signature claimed in ``syncd.callback_replay`` and the event stored in
   ``syncd.inbox``, one statement shared by every replica: a replay (by any replica,
   before or after a restart) is 403 and stores nothing.

The event is **committed** before the encrypted ``success`` goes back, within
``deadline`` seconds (DingTalk gives up after 1.5 s); ``check_url`` stores no event but
claims its signature too. Every refusal writes nothing, gets an empty 400/403/413, one
``callback_rejected`` log line and a count, both with a reason from :data:`REASONS`; the
connection is closed when the body was left unread. A storage failure gets a 503, so
DingTalk retries and, failing that, lists the event for the failed-push sweeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.dingtalk.crypto import CallbackCrypto, CallbackCryptoError
from syncd.dingtalk.events import make_event
from syncd.errors import StoreError
from syncd.ports import CallbackInbox, Clock, NullObserver, Observer

logger = logging.getLogger(__name__)

DEFAULT_PATH = "/dingtalk/callback"
DEFAULT_MAX_AGE = 300.0
#: Leave room inside DingTalk's 1.5 s for the network and the reply.
DEFAULT_DEADLINE = 1.0
#: DingTalk's pushes are a few KB; nothing genuine comes near this.
DEFAULT_MAX_BODY = 64 * 1024
#: A genuine query is about 120 bytes.
MAX_QUERY_BYTES = 2048
CHECK_EVENTS = frozenset({"check_url", "check_create_suite_url", "check_update_suite_url"})
_MS_THRESHOLD = 100_000_000_000

#: Why a push was refused (log field ``reason``, metric label), with its HTTP status.
STATUS = {
    "missing_query": 400,  # signature, timestamp or nonce absent
    "bad_query": 400,  # one of them malformed, or the query string far too long
    "stale_timestamp": 403,  # further than max_age from now
    "body_too_large": 413,  # declared or read beyond max_body_bytes
    "bad_body": 400,  # not UTF-8 JSON, not an object, no base64 encrypt string
    "disconnected": 400,  # the sender went away before the body ended
    "bad_signature": 403,
    "cannot_decrypt": 403,  # wrong AES key or owner key, tampered ciphertext
    "bad_message": 400,  # decrypted, but not a JSON object with an EventType
    "replayed": 403,  # the signature was accepted before, here or by another replica
}
REASONS = frozenset(STATUS)

_SIGNATURE = re.compile(r"[0-9a-f]{40}")
_TIMESTAMP = re.compile(r"[0-9]{1,16}")
_NONCE = re.compile(r"[!-~]{1,128}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_LENGTH = re.compile(r"[0-9]{1,19}")


class Rejected(Exception):
    """A push that is not accepted; ``reason`` and ``detail`` go to the log, never to the
    sender."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.status = STATUS[reason]


@dataclass(frozen=True)
class PushQuery:
    """The query of a push: the signature normalised (lower-case hex), the rest as sent."""

    signature: str
    timestamp: str
    nonce: str
    sent_at: float  # seconds since the epoch


def parse_query(query_string: bytes, query: Any) -> PushQuery:
    """Check the query parameters' presence and form; raise :class:`Rejected`."""
    if len(query_string) > MAX_QUERY_BYTES:
        raise Rejected("bad_query", "query string too long")
    signature = query.get("msg_signature") or query.get("signature") or ""
    timestamp = query.get("timestamp") or query.get("timeStamp") or ""
    nonce = query.get("nonce") or ""
    if not (signature and timestamp and nonce):
        raise Rejected("missing_query", "signature, timestamp or nonce missing")
    signature = signature.strip().lower()
    if not _SIGNATURE.fullmatch(signature):
        raise Rejected("bad_query", "signature is not 40 hex digits")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Rejected("bad_query", "timestamp is not a number")
    if not _NONCE.fullmatch(nonce):
        raise Rejected("bad_query", "nonce is not 1 to 128 printable ASCII characters")
    value = int(timestamp)
    sent_at = value / 1000 if value >= _MS_THRESHOLD else float(value)
    return PushQuery(signature, timestamp, nonce, sent_at)


def parse_body(raw: bytes | bytearray) -> str:
    """The ``encrypt`` field of a push's body; raise :class:`Rejected`."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep
        raise Rejected("bad_body", "body is not UTF-8 JSON") from None
    encrypt = body.get("encrypt") if isinstance(body, dict) else None
    if not isinstance(encrypt, str) or not _BASE64.fullmatch(encrypt):
        raise Rejected("bad_body", "body is not a JSON object with a base64 'encrypt'")
    return encrypt


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse_message(plain: str) -> dict[str, Any]:
    """The decrypted event: a JSON object with an ``EventType``; raise :class:`Rejected`."""
    try:
        message = json.loads(plain, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise Rejected("bad_message", "plaintext is not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("EventType"), str):
        raise Rejected("bad_message", "no EventType")
    return message


class RecentSignatures:
    """Signatures this process accepted lately, to refuse their replays before reading a
    body. Only a fast path: ``syncd.callback_replay`` decides. Bounded: only
    authenticated pushes enter, expired ones leave, and beyond ``limit`` the oldest."""

    def __init__(self, limit: int = 10_000) -> None:
        self._until: dict[str, float] = {}
        self._limit = limit

    def seen(self, signature: str, now: float) -> bool:
        until = self._until.get(signature)
        return until is not None and until > now

    def remember(self, signature: str, until: float, now: float) -> None:
        if len(self._until) >= self._limit:
            self.forget(now)
            while len(self._until) >= self._limit:
                del self._until[next(iter(self._until))]
        self._until[signature] = until

    def forget(self, now: float) -> None:
        self._until = {key: until for key, until in self._until.items() if until > now}


class CallbackEndpoint:
    """Handles DingTalk's pushes; mount :meth:`route` in the daemon's starlette app."""

    def __init__(
        self,
        crypto: CallbackCrypto,
        inbox: CallbackInbox,
        *,
        clock: Clock,
        max_age: float = DEFAULT_MAX_AGE,
        deadline: float = DEFAULT_DEADLINE,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        observer: Observer | None = None,
    ) -> None:
        self._crypto = crypto
        self._inbox = inbox
        self._clock = clock
        self._max_age = max_age
        self._deadline = deadline
        self._max_body = max_body_bytes
        self._observer = observer or NullObserver()
        self._recent = RecentSignatures()
        self.accepted = 0
        self.rejected = 0

    def route(self, path: str = DEFAULT_PATH) -> Route:
        """A starlette route serving this endpoint."""
        return Route(path, self.handle, methods=["POST"], name="dingtalk_callback")

    async def handle(self, request: Request) -> Response:
        body_read = False
        try:
            push = self._check_query(request)
            raw = await self._read_body(request)
            body_read = True
            encrypt = parse_body(raw)
            if not self._crypto.verify(push.signature, push.timestamp, push.nonce, encrypt):
                raise Rejected("bad_signature", "signature does not match")
            await self._store(push, self._decrypt(encrypt))
        except Rejected as exc:
            return self._refuse(exc, close=not body_read)
        except StoreError as exc:
            logger.error("callback not stored: %s", exc, extra={"action": "callback_store_failed"})
            return Response(status_code=503)
        self.accepted += 1
        now_ms = str(int(self._clock.now().timestamp() * 1000))
        return JSONResponse(self._crypto.reply("success", timestamp=now_ms))

    async def forget_expired(self) -> int:
        """Delete the replay claims whose pushes are stale anyway (a periodic job)."""
        now = self._clock.now()
        self._recent.forget(now.timestamp())
        return await self._inbox.forget_signatures(now)

    def _check_query(self, request: Request) -> PushQuery:
        push = parse_query(request.scope.get("query_string", b""), request.query_params)
        now = self._clock.now().timestamp()
        if abs(now - push.sent_at) > self._max_age:
            raise Rejected("stale_timestamp", "timestamp further than max_age from now")
        if self._recent.seen(push.signature, now):
            raise Rejected("replayed", "signature accepted before by this replica")
        return push

    async def _read_body(self, request: Request) -> bytearray:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not _LENGTH.fullmatch(declared):
                raise Rejected("bad_body", "Content-Length is not a number")
            if int(declared) > self._max_body:
                raise Rejected("body_too_large", "declared Content-Length over the cap")
        body = bytearray()
        try:
            async with contextlib.aclosing(request.stream()) as chunks:
                async for chunk in chunks:
                    body += chunk
                    if len(body) > self._max_body:
                        raise Rejected("body_too_large", "body over the cap")
        except ClientDisconnect:
            raise Rejected("disconnected", "the sender went away mid-body") from None
        return body

    def _decrypt(self, encrypt: str) -> dict[str, Any]:
        try:
            plain = self._crypto.decrypt(encrypt)
        except CallbackCryptoError as exc:
            raise Rejected("cannot_decrypt", f"cannot decrypt: {exc.message}") from None
        return parse_message(plain)

    async def _store(self, push: PushQuery, message: dict[str, Any]) -> None:
        event_type = message["EventType"]
        event = None
        if event_type in CHECK_EVENTS:
            logger.info("callback URL checked", extra={"action": "callback_checked"})
        else:
            event_id = message.get("eventId")
            event = make_event("callback", event_type, message, str(event_id) if event_id else None)
        until = push.sent_at + self._max_age
        try:
            async with asyncio.timeout(self._deadline):
                outcome = await self._inbox.put_signed(
                    push.signature, datetime.fromtimestamp(until, UTC), event
                )
        except TimeoutError:
            raise StoreError("storing the event took too long") from None
        self._recent.remember(push.signature, until, self._clock.now().timestamp())
        if outcome == "replay":
            raise Rejected("replayed", "signature accepted before (by any replica)")

    def _refuse(self, exc: Rejected, *, close: bool) -> Response:
        self.rejected += 1
        self._observer.callback_rejected(exc.reason)
        logger.warning(
            "callback rejected: %s",
            exc.detail,
            extra={"action": "callback_rejected", "reason": exc.reason, "status": exc.status},
        )
        # An unread body would otherwise be received (and dropped) to keep the connection.
        return Response(status_code=exc.status, headers={"connection": "close"} if close else None)


def create_callback_app(endpoint: CallbackEndpoint, *, path: str = DEFAULT_PATH) -> Starlette:
    """A starlette app serving only the callback route (the daemon mounts the route)."""
    return Starlette(routes=[endpoint.route(path)])
