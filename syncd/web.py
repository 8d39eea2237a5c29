"""The daemon's HTTP surface: ``/healthz``, ``/readyz``, ``/metrics`` and the callback,
over the parts of an :class:`~syncd.app.App`.

``syncd run`` serves it before the App is open (while it waits for the database): then
``/healthz`` answers, ``/readyz`` is unready with the reason (:class:`Starting`),
``/metrics`` has ``syncd_database_up 0`` and what needs no database, and the callback
answers 503 (DingTalk pushes it again later).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from syncd.db import migrations
from syncd.errors import StoreError, SyncdError
from syncd.metrics import Sources

if TYPE_CHECKING:
    from syncd.app import App

#: How long a readiness probe waits for the database.
READY_TIMEOUT = 2.0


@dataclass
class Starting:
    """Why a daemon is not open yet (``reason``: ``database unreachable``, ``migrating``,
    ``starting``; None once its App is open), for ``/readyz``."""

    reason: str | None = "starting"
    error: str | None = None
    attempts: int = 0
    next_attempt_in: float | None = None

    def now(
        self,
        reason: str | None,
        error: str | None = None,
        attempts: int = 0,
        next_attempt_in: float | None = None,
    ) -> None:
        """Where the start stands now (``reason`` None: the App is open)."""
        self.reason, self.error = reason, error
        self.attempts, self.next_attempt_in = attempts, next_attempt_in

    def check(self) -> dict[str, Any]:
        found: dict[str, Any] = {"ok": False, "reason": self.reason, "error": self.error}
        if self.attempts:
            found |= {"attempts": self.attempts, "next_attempt_in": self.next_attempt_in}
        return {k: v for k, v in found.items() if v is not None}


class _NoDatabaseYet:
    """The scrape's database before the App is open: every query fails."""

    async def fetch_all(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        raise StoreError("the database is not reached yet")


class DaemonWeb:
    """Routes reading the state of one App's parts; with ``starting``, also before the
    App is open (``starting.reason`` None: it is)."""

    _known_migrations: set[int] | None = None

    def __init__(self, app: App, starting: Starting | None = None) -> None:
        self.parts = app
        self.starting = starting

    @property
    def open(self) -> bool:
        return self.starting is None or self.starting.reason is None

    def app(self) -> Starlette:
        routes: list[BaseRoute] = [
            Route("/healthz", self.healthz),
            Route("/readyz", self.readyz),
            Route("/metrics", self.metrics),
        ]
        callback = self.parts.settings.events.callback
        if callback.enabled:
            routes.append(Route(callback.path, self.callback, methods=["POST"]))
        return Starlette(routes=routes)

    async def callback(self, request: Request) -> Response:
        endpoint = self.parts.callback
        if not self.open or endpoint is None:
            return Response(status_code=503)  # not open yet: DingTalk pushes it again
        return await endpoint.handle(request)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "replica": self.parts.owner})

    async def metrics(self, request: Request) -> Response:
        d = self.parts
        if not self.open:  # no database yet: syncd_database_up 0, and what needs none
            sources = Sources(now=d.clock.now(), actor=d.owner, store=_NoDatabaseYet())
        else:
            sources = Sources(
                now=d.clock.now(),
                actor=d.owner,
                store=d.control,
                stream=d.stream,
                listener=d.listener,
                pool_stats=d.pool.get_stats(),
            )
        await d.metrics.refresh(sources)
        body, content_type = d.metrics.render()
        return Response(body, media_type=content_type)

    async def readiness(self) -> dict[str, Any]:
        """Each readiness check with whether it passes (database, migrations, events, pause)."""
        d = self.parts
        if self.starting is not None and self.starting.reason is not None:
            return {"database": self.starting.check()}
        checks: dict[str, Any] = {}
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                applied = await d.control.fetch_all("select_applied_migrations", {})
            checks["database"] = {"ok": True}
            checks["migrations"] = self._migrations_check({int(r["version"]) for r in applied})
        except (SyncdError, TimeoutError) as exc:
            checks["database"] = {"ok": False, "error": str(exc) or "no answer in time"}
            checks["migrations"] = {"ok": False, "error": "unknown: the database is unreachable"}
        if d.stream is not None:
            state = str(d.stream.state)
            checks["stream"] = {"ok": state == "connected", "state": state}
        pause = await d.pause() if checks["database"]["ok"] else None
        checks["dingtalk"] = (
            {"ok": True}
            if pause is None
            else {"ok": False, "paused": pause.reason, "until": str(pause.until)}
        )
        return checks

    @classmethod
    def _migrations_check(cls, applied: set[int]) -> dict[str, Any]:
        if cls._known_migrations is None:
            cls._known_migrations = {m.version for m in migrations.load_migrations()}
        pending = sorted(cls._known_migrations - applied)
        unknown = sorted(applied - cls._known_migrations)
        if not pending and not unknown:
            return {"ok": True}
        return {"ok": False, "pending": pending, "unknown": unknown}

    async def readyz(self, request: Request) -> Response:
        checks = await self.readiness()
        ready = all(check["ok"] for check in checks.values())
        body = {"status": "ready" if ready else "unready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)
