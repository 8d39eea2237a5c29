"""The Stream-mode client (contract §11): DingTalk events over a websocket.

``StreamClient.run()`` opens a connection (``connections/open`` → endpoint and one-time
ticket → websocket), then for each frame:

- ``EVENT``: store it in the inbox, and only once the row is committed answer
  ``SUCCESS``; if the inbox fails, answer ``LATER`` so DingTalk delivers it again. Events
  that arrive while earlier ones are being stored make up the next burst, stored in one
  transaction and acknowledged together;
- ``SYSTEM``/``ping``: answer at once, echoing the opaque data (storing never delays it);
- ``SYSTEM``/``disconnect``: finish storing and acknowledging what was received, then
  open a new connection right away.

A connection that closes or fails is replaced after a jittered exponential backoff. One
that stays silent (no frame for ``silence_timeout`` seconds, while websocket keepalive
pings may still be answered) is closed and replaced too. Refused credentials stop the
client with :class:`~syncd.errors.DingTalkAuthError`. ``state`` and the counters are
there for health checks and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote_plus

import httpx
from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException
from websockets.protocol import State

from syncd.dingtalk.client import open_stream_connection
from syncd.dingtalk.events import make_event
from syncd.errors import DingTalkAuthError, DingTalkError, StoreError
from syncd.ports import InboxWriter

logger = logging.getLogger(__name__)

#: No frame at all for this long means the connection is dead (STREAM-go waits 120 s idle).
DEFAULT_SILENCE_TIMEOUT = 180.0
#: Most events stored in one transaction (and acknowledged together).
MAX_BURST = 500
#: On ``disconnect``, how long to finish storing and acknowledging what was received.
FLUSH_TIMEOUT = 5.0


class StreamState(StrEnum):
    STOPPED = "stopped"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    FAILED = "failed"


def reconnect_delay(
    attempt: int, *, initial: float = 1.0, cap: float = 60.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based): doubling, capped, jittered."""
    ceiling = min(cap, initial * 2.0 ** min(attempt, 32))
    fraction = rng.random() if rng is not None else random.random()
    return ceiling * (0.5 + 0.5 * fraction)


def _ack(message_id: str, data: dict[str, Any], code: int = 200) -> str:
    return json.dumps(
        {
            "code": code,
            "headers": {"messageId": message_id, "contentType": "application/json"},
            "message": "OK" if code == 200 else "ERROR",
            "data": json.dumps(data),
        }
    )


class StreamClient:
    """Receives DingTalk events over Stream mode into the inbox."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        app_key: str,
        app_secret: SecretStr | str,
        inbox: InboxWriter,
        *,
        silence_timeout: float = DEFAULT_SILENCE_TIMEOUT,
        backoff_initial: float = 1.0,
        backoff_cap: float = 60.0,
        keepalive: float | None = 20.0,
        on_state: Callable[[StreamState], None] | None = None,
    ) -> None:
        self._http = http
        self._app_key = app_key
        self._secret = app_secret if isinstance(app_secret, SecretStr) else SecretStr(app_secret)
        self._inbox = inbox
        self._silence = silence_timeout
        self._backoff = (backoff_initial, backoff_cap)
        self._keepalive = keepalive
        self._on_state = on_state
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        self._ws: ClientConnection | None = None
        self.state = StreamState.STOPPED
        self.connects = 0
        self.events_stored = 0
        self.events_duplicate = 0
        self.events_deferred = 0  # answered LATER because the inbox failed
        self.pings = 0
        self.last_frame_at: float | None = None  # loop time of the last frame received
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"StreamClient(app_key={self._app_key!r}, state={self.state.value!r})"

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    def _set(self, state: StreamState) -> None:
        self.state = state
        self._changed.set()
        if self._on_state is not None:
            self._on_state(state)

    async def wait_for(self, predicate: Callable[[StreamClient], bool]) -> None:
        """Wait until ``predicate(self)`` holds, re-checked on every change of state or count.

        Put a deadline around it (``asyncio.timeout``).
        """
        while not predicate(self):
            self._changed.clear()
            await self._changed.wait()

    async def stop(self) -> None:
        """Close the connection and make :meth:`run` return."""
        self._stop.set()
        if self._ws is not None:
            await self._ws.close()

    async def run(self) -> None:
        """Receive events until :meth:`stop`; raises DingTalkAuthError on refused credentials."""
        attempt = 0
        while not self._stop.is_set():
            self._set(StreamState.CONNECTING)
            connects = self.connects
            try:
                again_now = await self._session()
                attempt = 0
            except DingTalkAuthError as exc:
                self.last_error = type(exc).__name__
                self._set(StreamState.FAILED)
                logger.error("Stream credentials refused", extra={"action": "stream_failed"})
                raise
            except (DingTalkError, OSError, WebSocketException, TimeoutError) as exc:
                self.last_error = type(exc).__name__
                again_now = False
            except Exception as exc:  # the top of the loop: log, count, go on
                self.last_error = type(exc).__name__
                logger.exception("Stream session failed", extra={"action": "stream_error"})
                again_now = False
            if self._stop.is_set():
                break
            if self.connects > connects:
                attempt = 0  # this connection worked: back off afresh from the first delay
            delay = 0.0 if again_now else self._delay(attempt)
            attempt += 0 if again_now else 1
            await self._pause(delay)
        self._set(StreamState.STOPPED)

    def _delay(self, attempt: int) -> float:
        initial, cap = self._backoff
        return reconnect_delay(attempt, initial=initial, cap=cap)

    async def _pause(self, delay: float) -> None:
        logger.info(
            "Stream reconnecting in %.1fs",
            delay,
            extra={"action": "stream_reconnect", "delay": delay, "error": self.last_error},
        )
        self._set(StreamState.BACKOFF)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._stop.wait()

    async def _session(self) -> bool:
        """One connection, from open to close; True when DingTalk asked us to reconnect."""
        ticket = await open_stream_connection(self._http, self._app_key, self._secret)
        url = f"{ticket.endpoint}?ticket={quote_plus(ticket.ticket)}"
        kw: dict[str, Any] = {
            "ping_interval": self._keepalive,
            "ping_timeout": self._keepalive,
            # Frames are small JSON documents: compressing them (each event and each
            # acknowledgement) costs CPU on both ends and saves little bandwidth.
            "compression": None,
        }
        async with connect(url, open_timeout=10, **kw) as ws:
            self._ws = ws
            self.connects += 1
            self.last_error = None
            self._set(StreamState.CONNECTED)
            logger.info("Stream connected", extra={"action": "stream_connected"})
            received: asyncio.Queue[_Received] = asyncio.Queue()
            storing = asyncio.create_task(self._store_all(ws, received))
            try:
                return await self._receive(ws, received)
            finally:
                await self._finish(ws, storing, received)
                self._ws = None

    async def _finish(
        self, ws: ClientConnection, storing: asyncio.Task[None], received: asyncio.Queue[_Received]
    ) -> None:
        """Store and acknowledge what was received, if the socket is still open."""
        if not self._stop.is_set() and ws.state is State.OPEN:
            joined = asyncio.ensure_future(received.join())
            await asyncio.wait(
                {joined, storing}, timeout=FLUSH_TIMEOUT, return_when=FIRST_COMPLETED
            )
            joined.cancel()
        storing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await storing

    async def _receive(self, ws: ClientConnection, received: asyncio.Queue[_Received]) -> bool:
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout(self._silence):
                    raw = await ws.recv()
            except TimeoutError:
                self.last_error = "silent"
                logger.warning("Stream connection silent", extra={"action": "stream_silent"})
                return False
            self.last_frame_at = loop.time()
            if await self._dispatch(ws, raw, received):
                return True

    async def _dispatch(
        self, ws: ClientConnection, raw: str | bytes, received: asyncio.Queue[_Received]
    ) -> bool:
        """Handle one frame; True when it was a ``disconnect``.

        System frames are answered at once; events are queued for :meth:`_store_all`.
        """
        try:
            frame = json.loads(raw)
            headers = frame["headers"]
            message_id = str(headers["messageId"])
        except (ValueError, KeyError, TypeError):
            logger.warning("Stream frame unreadable", extra={"action": "stream_bad_frame"})
            return False
        try:
            data = _data(frame)
        except ValueError:
            logger.warning("Stream frame data unreadable", extra={"action": "stream_bad_frame"})
            await ws.send(_ack(message_id, {}, 400))
            return False
        kind, topic = frame.get("type"), headers.get("topic")
        if kind == "SYSTEM" and topic == "disconnect":
            logger.info("Stream asked to reconnect", extra={"action": "stream_disconnect"})
            return True
        if kind == "SYSTEM":
            self.pings += topic == "ping"
            self._changed.set()
            await ws.send(_ack(message_id, data))
        elif kind == "EVENT":
            received.put_nowait(_Received(message_id, headers, data))
        else:
            await ws.send(_ack(message_id, {}, 404))
        return False

    async def _store_all(self, ws: ClientConnection, received: asyncio.Queue[_Received]) -> None:
        """Store events as they arrive, each burst in one transaction, then acknowledge it.

        Whatever arrived while the last burst was being stored is the next burst, so a
        busy connection costs one commit per burst instead of one per event.
        """
        while True:
            burst = [await received.get()]
            while len(burst) < MAX_BURST and not received.empty():
                burst.append(received.get_nowait())
            try:
                for answer in await self._store(burst):
                    await ws.send(answer)
            except WebSocketException:
                return  # the connection is gone; DingTalk delivers the unacknowledged again
            except Exception:
                logger.exception("Stream events not stored", extra={"action": "stream_error"})
                await ws.close()  # a new connection; DingTalk delivers them again
                return
            finally:
                for _ in burst:
                    received.task_done()

    async def _store(self, burst: list[_Received]) -> list[str]:
        """Store a burst of events; the ACKs to send once committed (LATER for all if not)."""
        answers: dict[str, str] = {}
        events = []
        for item in burst:
            headers, data = item.headers, item.data
            event_type = str(headers.get("eventType") or data.get("EventType") or "")
            if not event_type:
                logger.warning("Stream event without type", extra={"action": "stream_bad_frame"})
                answers[item.message_id] = _ack(
                    item.message_id, {"status": "SUCCESS", "message": "ignored"}
                )
                continue
            event_id = headers.get("eventId")
            events.append(
                (
                    item.message_id,
                    make_event("stream", event_type, data, str(event_id) if event_id else None),
                )
            )
        try:
            news = await self._inbox.put_many([event for _, event in events])
        except StoreError:
            self.events_deferred += len(events)
            logger.exception("Stream events not stored", extra={"action": "stream_event_later"})
            for message_id, _ in events:
                later = {"status": "LATER", "message": "not stored"}
                answers[message_id] = _ack(message_id, later, 500)
        else:
            for (message_id, _), new in zip(events, news, strict=True):
                self.events_stored += new
                self.events_duplicate += not new
                answers[message_id] = _ack(message_id, {"status": "SUCCESS", "message": "success"})
        self._changed.set()
        return [answers[item.message_id] for item in burst]


@dataclass(frozen=True, slots=True)
class _Received:
    """An event frame waiting to be stored and acknowledged."""

    message_id: str
    headers: dict[str, Any]
    data: dict[str, Any]


def _data(frame: dict[str, Any]) -> dict[str, Any]:
    """A frame's ``data``: a JSON string on the wire, tolerated as an object too.

    Raises ValueError when it is neither.
    """
    data = frame.get("data")
    if data is None or data == "":
        return {}
    if isinstance(data, str):
        data = json.loads(data)
    if not isinstance(data, dict):
        raise ValueError("frame data is not a JSON object")
    return data
