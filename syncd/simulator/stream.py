"""The Stream-mode gateway (contract §11): tickets, frames, ACKs, redelivery, pings.

Each event goes to one randomly chosen connection of its app. Without an ACK within
the (time-scaled) timeout, or on ``LATER`` / a non-200 code, it is delivered again.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from syncd.simulator.events import Event, stream_frame, system_frame
from syncd.simulator.world import App

if TYPE_CHECKING:
    from syncd.simulator.core import Simulator

logger = logging.getLogger(__name__)


@dataclass
class Connection:
    connection_id: str
    app: App
    ws: WebSocket
    open: bool = True
    frames_sent: int = 0
    acks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Delivery:
    event: Event
    app: App
    attempt: int
    message_id: str
    connection_id: str


class StreamGateway:
    """Tickets, live connections, and events waiting for a connection or an ACK."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self.tickets: dict[str, tuple[str, float]] = {}
        self.connections: dict[str, Connection] = {}
        self.backlog: dict[str, list[tuple[Event, int]]] = {}
        self.inflight: dict[str, Delivery] = {}
        self._counter = 0

    def _id(self, prefix: str = "") -> str:
        self._counter += 1
        rng = self._sim.rng
        return f"{prefix}{rng.getrandbits(32):08x}_{self._counter}_{rng.getrandbits(40):x}"

    def open_ticket(self, app_key: str) -> str:
        """A one-time ticket, valid for 90 s (§11.1)."""
        rng = self._sim.rng
        ticket = "-".join(f"{rng.getrandbits(b):0{b // 4}x}" for b in (32, 16, 16, 16, 48))
        ttl = self._sim.world.stream.ticket_ttl
        self.tickets[ticket] = (app_key, self._sim.clock.monotonic() + ttl)
        return ticket

    def live(self, app_key: str | None = None) -> list[Connection]:
        return [
            c
            for c in self.connections.values()
            if c.open and (app_key is None or c.app.app_key == app_key)
        ]

    # the websocket ----------------------------------------------------------------------

    def _claim_ticket(self, ticket: str | None) -> App | None:
        entry = self.tickets.pop(ticket or "", None)
        if entry is None or entry[1] < self._sim.clock.monotonic():
            return None
        return self._sim.app_for(entry[0])

    async def endpoint(self, ws: WebSocket) -> None:
        """``GET /connect?ticket=…`` with Upgrade."""
        app = self._claim_ticket(ws.query_params.get("ticket"))
        if app is None:
            await ws.close(code=1008)
            return
        await ws.accept()
        conn = Connection(self._id("conn_"), app, ws)
        self.connections[conn.connection_id] = conn
        self._sim.notify()
        self._schedule_ping(conn)
        self._schedule_rotation(conn)
        for event, attempt in self.backlog.pop(app.app_key, []):
            await self.deliver(app, event, attempt)
        try:
            while True:
                self._on_message(conn, await ws.receive_text())
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            conn.open = False
            self._sim.notify()

    async def _send(self, conn: Connection, frame: dict[str, Any]) -> bool:
        if not conn.open:
            return False
        try:
            await conn.ws.send_text(json.dumps(frame, ensure_ascii=False))
        except Exception:
            conn.open = False
            return False
        conn.frames_sent += 1
        return True

    def _on_message(self, conn: Connection, text: str) -> None:
        try:
            message = json.loads(text)
            message_id = str(message["headers"]["messageId"])
        except (ValueError, KeyError, TypeError):
            logger.info("bad frame from a stream client", extra={"action": "sim_stream_bad"})
            return
        conn.acks.append(message)
        delivery = self.inflight.pop(message_id, None)
        if delivery is None:
            return
        if _is_success(message):
            self._record("acknowledged", delivery)
            return
        self._record("failed", delivery, reason="LATER")
        self._retry(delivery, self._sim.world.stream.later_delay)

    def _record(self, kind: str, delivery: Delivery, **extra: Any) -> None:
        self._sim.log.record(
            kind,
            delivery.event,
            "stream",
            delivery.app.app_key,
            messageId=delivery.message_id,
            attempt=delivery.attempt,
            **extra,
        )

    # delivery ---------------------------------------------------------------------------

    async def deliver(self, app: App, event: Event, attempt: int = 0) -> None:
        """Send the event to one live connection of the app, or keep it for later."""
        conns = self.live(app.app_key)
        if not conns:
            self.backlog.setdefault(app.app_key, []).append((event, attempt))
            return
        conn = self._sim.rng.choice(conns)
        message_id = self._id()
        delivery = Delivery(event, app, attempt, message_id, conn.connection_id)
        self.inflight[message_id] = delivery
        silent = self._sim.faults.settings.stream_silent
        frame = stream_frame(event, message_id, self._sim.clock.now(), app.unified_app_id)
        sent = False if silent else await self._send(conn, frame)
        self._record("pushed", delivery, connectionId=conn.connection_id, sent=sent)

        async def check() -> None:
            if self.inflight.pop(message_id, None) is not None:
                await self._redeliver(delivery)

        self._sim.timeline.at(self._sim.scaled(self._sim.world.stream.ack_timeout), "ack", check)

    async def _redeliver(self, delivery: Delivery) -> None:
        if delivery.attempt >= self._sim.world.stream.max_redeliveries:
            self._record("failed", delivery, reason="gave up")
            return
        await self.deliver(delivery.app, delivery.event, delivery.attempt + 1)

    def _retry(self, delivery: Delivery, delay: float) -> None:
        async def again() -> None:
            await self._redeliver(delivery)

        self._sim.timeline.at(self._sim.scaled(delay), "stream retry", again)

    # system frames ----------------------------------------------------------------------

    def _schedule_ping(self, conn: Connection) -> None:
        async def ping() -> None:
            if not conn.open:
                return
            if not self._sim.faults.settings.stream_silent:
                data = {"opaque": self._id("ping_")}
                now = self._sim.clock.now()
                await self._send(conn, system_frame("ping", self._id(), now, data))
            self._schedule_ping(conn)

        interval = self._sim.scaled(self._sim.world.stream.ping_interval)
        self._sim.timeline.at(interval, "ping", ping)

    def _schedule_rotation(self, conn: Connection) -> None:
        every = self._sim.faults.settings.stream_disconnect_every
        if every is None:
            return

        async def rotate() -> None:
            if conn.open:
                await self._disconnect(conn)

        self._sim.timeline.at(self._sim.scaled(every), "rotate", rotate)

    async def _disconnect(self, conn: Connection, reason: str = "connection is expired") -> None:
        frame = system_frame("disconnect", self._id(), self._sim.clock.now(), {"reason": reason})
        await self._send(conn, frame)

        async def close() -> None:
            await self._close(conn, 1000)

        self._sim.timeline.at(
            self._sim.scaled(self._sim.world.stream.disconnect_grace), "close", close
        )

    async def _close(self, conn: Connection, code: int) -> None:
        if conn.open:
            conn.open = False
            with contextlib.suppress(Exception):
                await conn.ws.close(code=code)

    async def disconnect(self, app_key: str | None = None) -> int:
        """Send the ``disconnect`` SYSTEM frame; close the sockets after the grace period."""
        conns = self.live(app_key)
        for conn in conns:
            await self._disconnect(conn)
        return len(conns)

    async def drop(self, app_key: str | None = None) -> int:
        """Close connections abruptly, without a ``disconnect`` frame."""
        conns = self.live(app_key)
        for conn in conns:
            await self._close(conn, 1011)
        return len(conns)

    async def close_all(self) -> None:
        for conn in self.live():
            await self._close(conn, 1001)


def _is_success(message: dict[str, Any]) -> bool:
    """ACK is success on code 200 with no status or status SUCCESS (§11.3)."""
    if str(message.get("code")) != "200":
        return False
    data = message.get("data")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            data = None
    status = data.get("status") if isinstance(data, dict) else None
    return status in (None, "SUCCESS")
