"""Running an :class:`~syncd.app.App`: the two loops, the background work, the jobs.

``Runner`` runs the stages the App built, either until asked to stop (``run``: the way
in and the way back side by side, LISTEN, the Stream client, the HTTP server and the
scheduled jobs) or until a whole cycle finds nothing to do (``drain``, the basis of
``syncd run --once`` and of sleep-free tests). It is the only part that logs the daemon's
start and stop.

With a :class:`StartWait` (``syncd run``), it serves ``/healthz`` and ``/readyz`` first
and then waits for the database with backoff, saying why in its logs (``database_wait``)
and on ``/readyz``, instead of exiting while PostgreSQL is not up yet; a DSN or a login
that cannot work still ends it at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any

from syncd import __version__
from syncd.app import App
from syncd.app_inbound import inbound_listing
from syncd.app_ledger import LEDGER_RETENTION_EVERY, ledger_retention
from syncd.db import migrations
from syncd.db.reach import DatabaseUnreachable, probe
from syncd.errors import ConfigError, SyncdError
from syncd.http import Listening
from syncd.http import serve as http_serve
from syncd.pipeline.directory_schedule import FORGET_EVERY
from syncd.pipeline.directory_schedule import TICK as DIRECTORY_TICK
from syncd.pipeline.retry import RetryPolicy
from syncd.scheduler import Scheduler
from syncd.web import Starting

logger = logging.getLogger(__name__)

#: Stages that ``run`` keeps in order within a lane while the lanes run side by side:
#: the way in (outbox to DingTalk instance) and the way back (outcome to business row).
LANES = (("ingest", "submit", "reconcile", "cancel", "comment"), ("apply", "writeback", "poll"))


@dataclass
class Summary:
    """Items handled per stage over a drain, and the cycles it took."""

    handled: dict[str, int] = field(default_factory=dict)
    cycles: int = 0

    def add(self, counts: Mapping[str, int]) -> None:
        for name, count in counts.items():
            self.handled[name] = self.handled.get(name, 0) + count
        self.cycles += 1


@dataclass
class StartWait:
    """How ``syncd run`` waits for its database at start: until ``stop`` is set, with
    ``backoff`` between attempts; ``sleep`` waits out a delay (default: the delay or
    ``stop``, whichever comes first; tests give their own)."""

    stop: asyncio.Event
    backoff: RetryPolicy = field(default_factory=lambda: RetryPolicy(base=1.0, cap=30.0))
    sleep: Callable[[float], Awaitable[None]] | None = None


class Runner:
    """Runs ``app``; ``async with`` opens the App (after ``wait``-ing for the database and
    applying pending migrations if ``migrate``), logs the daemon's start (``daemon
    ready``, action ``daemon_start``), and at the end stops the background work and
    closes the App. Stopped while it waited, it opens nothing and :meth:`run` returns."""

    def __init__(self, app: App, *, wait: StartWait | None = None, migrate: bool = False) -> None:
        self.app = app
        self.wait = wait
        self.migrate = migrate
        self.starting = Starting()  # what /readyz says until the App is open
        self.started = asyncio.Event()  # set once run() serves HTTP (self.listening)
        self.listening: Listening | None = None
        self.scheduler: Scheduler | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._http_server: AbstractAsyncContextManager[Listening] | None = None

    @property
    def opened(self) -> bool:
        return self.starting.reason is None

    async def __aenter__(self) -> Runner:
        try:
            if self.wait is not None:
                await self._serve_http()  # /healthz and /readyz answer while it waits
                if not await self._wait_for_database(self.wait):
                    return self
            if self.migrate:
                self.starting.now("migrating")
                await migrations.apply(self.app.dsn)
            self.starting.now("starting")
            await self.app.__aenter__()
        except BaseException:
            await self.close()
            raise
        self.starting.now(None)
        logger.info(
            "daemon ready",
            extra={
                "action": "daemon_start",
                "replica": self.app.owner,
                "version": __version__,
                "kinds": sorted(self.app.settings.kinds),
            },
        )
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _wait_for_database(self, wait: StartWait) -> bool:
        """Connect until it works (True) or ``wait.stop`` is set (False); each failed
        attempt is logged with its reason and the next delay, and shown on /readyz."""
        timeout = self.app.settings.database.connect_timeout
        attempt = 0
        while not wait.stop.is_set():
            attempt += 1
            try:
                await probe(self.app.dsn, timeout)
            except DatabaseUnreachable as exc:
                delay = round(wait.backoff.delay(attempt), 1)
                self.starting.now("database unreachable", exc.message, attempt, delay)
                logger.warning(
                    "database unreachable; trying again in %ss",
                    delay,
                    extra={
                        "action": "database_wait",
                        "attempt": attempt,
                        "retry_in": delay,
                        "reason": exc.message,
                    },
                )
                await (wait.sleep or (lambda s: _first(wait.stop, seconds=s)))(delay)
                continue
            if attempt > 1:
                logger.info(
                    "database reachable",
                    extra={"action": "database_reachable", "attempts": attempt},
                )
            return True
        return False

    # --- until drained ---------------------------------------------------------------

    async def cycle(self) -> dict[str, int]:
        """Run every stage once, in order; a failing stage is logged and counted, the
        others go on."""
        return await self._run_stages(list(self.app.stages))

    async def drain(self, max_cycles: int = 10_000) -> Summary:
        """Run cycles until one handles nothing; returns what was done."""
        summary = Summary()
        while summary.cycles < max_cycles:
            counts = await self.cycle()
            summary.add(counts)
            if not any(counts.values()):
                break
        return summary

    def _lanes(self) -> tuple[list[str], list[str]]:
        """The way in and the way back (:data:`LANES`); any other stage joins the way back."""
        stages = self.app.stages
        way_in, way_back = ([name for name in lane if name in stages] for lane in LANES)
        way_back += [n for n in stages if n not in way_in + way_back and n not in self.app.relays]
        return way_in, way_back

    async def _run_stages(self, names: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        observer = self.app.observer
        for name in names:
            stage = self.app.stages[name]
            started = time.monotonic()
            try:
                counts[name] = await stage.run_once()
            except Exception as exc:  # the top of the loop: log, count, go on
                counts[name] = 0
                self._stage_failed(name, exc)
            observer.stage_run(name, counts[name], time.monotonic() - started)
        return counts

    def _stage_failed(self, name: str, exc: Exception) -> None:
        self.app.observer.stage_failed(name, type(exc).__name__)
        extra = {"action": "stage_error", "stage": name, "error_class": type(exc).__name__}
        if isinstance(exc, SyncdError):  # expected trouble (database down, ...): one line
            logger.error("stage failed: %s", exc, extra=extra)
        else:  # a bug: the traceback matters
            logger.exception("stage crashed", extra=extra)

    # --- until stopped ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then finish the batches in flight and return.

        The way in and the way back are two loops, each running its stages in order
        and then waiting for its wake-up (NOTIFY; a stored event) or the poll interval,
        so creating instances and applying outcomes do not wait for each other. Work
        done on the way back (an approval finished) may free a later round of the same
        key, so it wakes the way in too. Back pressure: while apply is behind (its last
        claim was a full batch), the way in runs one batch per pass of the way back, so
        new instances do not outrun their outcomes.
        """
        if not self.opened:  # stopped while waiting for the database
            return
        await self._start_background()
        way_in, way_back = self._lanes()
        passed = asyncio.Event()  # set at the end of every pass of the way back
        try:
            await asyncio.gather(
                self._run_way_in(way_in, stop, passed), self._run_way_back(way_back, stop, passed)
            )
        finally:
            logger.info(
                "daemon stopping", extra={"action": "daemon_stop", "replica": self.app.owner}
            )

    async def _run_way_in(
        self, names: list[str], stop: asyncio.Event, passed: asyncio.Event
    ) -> None:
        app = self.app
        interval = app.settings.pipeline.outbox_poll_interval
        while not stop.is_set():
            if app.apply.behind:  # back pressure: one batch per pass of the way back
                passed.clear()
                await _first(passed, stop, seconds=interval)
            # Cleared before the stages run, so a wake-up while they run is not lost.
            app.wake.clear()
            counts = await self._run_stages(names)
            if not any(counts.values()):
                await _first(app.wake, stop, seconds=interval)

    async def _run_way_back(
        self, names: list[str], stop: asyncio.Event, passed: asyncio.Event
    ) -> None:
        app = self.app
        interval = app.settings.pipeline.outbox_poll_interval
        while not stop.is_set():
            app.wake_back.clear()
            counts = await self._run_stages(names)
            passed.set()
            if any(counts.values()):
                app.wake.set()  # a finished round may free the next round of its key
            else:
                await _first(app.wake_back, stop, seconds=interval)

    async def _run_relay(self, name: str, relay: Any) -> None:
        """One business database's relay, at its adaptive interval until stopped; rows
        it relayed wake the way in (ingest)."""
        while True:  # until close() cancels the task
            counts = await self._run_stages([name])
            if counts[name]:
                self.app.wake.set()
            await asyncio.sleep(relay.interval)

    async def _start_background(self) -> None:
        app = self.app
        self._spawn(app.listener.run(), "listen")
        for name, relay in app.relays.items():  # business databases: polled, no NOTIFY
            self._spawn(self._run_relay(name, relay), name)
        if app.stream is not None:
            self._spawn(app.stream.run(), "stream")
        if self._http_server is None:
            await self._serve_http()
        self.scheduler = self._schedule()
        self.scheduler.start()
        self.started.set()

    async def _serve_http(self) -> None:
        http = self.app.settings.http
        server = http_serve(self.app.http_app(self.starting), http.host, http.port)
        try:
            self.listening = await server.__aenter__()
        except OSError as exc:
            raise ConfigError(
                f"cannot serve [http] on {http.host}:{http.port}: {exc.strerror or exc}; "
                "another process may hold the port: stop it, or set http.port"
            ) from exc
        self._http_server = server
        logger.info(
            "serving health, metrics and callbacks",
            extra={"action": "http_listening", "url": self.listening.base_url},
        )

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))

    # --- scheduled jobs --------------------------------------------------------------

    def _schedule(self) -> Scheduler:
        app = self.app

        async def take_turn(name: str, period: timedelta) -> bool:
            now = app.clock.now()
            return await app.control.claim_turn(name, now, now + period)

        scheduler = Scheduler(app.clock, take_turn)
        if app.callback is not None:  # Stream mode has no failed-push list (contract §9.7)
            sweep_every = app.settings.polling.failed_list_interval
            scheduler.every("sweep_failed", sweep_every, lambda: self.sweep(backoff=sweep_every))
        scheduler.every("retention", 3600, self.purge)
        if app.callback is not None:
            # Replay claims outlive their pushes' freshness by at most one interval.
            max_age = app.settings.events.callback.max_age
            scheduler.every("callback_replay", max(max_age, 60.0), app.callback.forget_expired)
        listing = inbound_listing(app)
        if listing is not None:  # inbound kinds: instances whose start event was lost
            every = app.settings.polling.inbound_list_interval
            scheduler.every("inbound_list", every, listing.run_once)
        directory = app.directory_schedule
        if directory is not None:  # the directory's full syncs and forgetting leavers
            scheduler.every("directory_sync", DIRECTORY_TICK, directory.tick)
            scheduler.every("directory_forget", FORGET_EVERY, directory.forget)
        # the business databases' write-back ledgers (docs/mysql.md, "Ledger retention")
        ledger = ledger_retention(app.settings, app.pool, app.clock, owner=app.owner)
        if ledger is not None:
            scheduler.every("ledger_retention", LEDGER_RETENTION_EVERY, ledger)
        return scheduler

    async def sweep(self, backoff: float | None = None) -> int:
        """Move DingTalk's failed-push list into the inbox (skipped while paused); with
        ``backoff`` (the schedule's interval), only when the sweeper's backoff allows."""
        if await self.app.pause():
            return 0
        if backoff is not None:
            return await self.app.sweeper.run_due(backoff)
        return await self.app.sweeper.run_once()

    async def purge(self) -> int:
        """Delete what the retention period has passed."""
        days = self.app.settings.pipeline.retention_days
        return await self.app.control.purge(self.app.clock.now() - timedelta(days=days))

    async def close(self) -> None:
        """Stop the jobs, the Stream client, the HTTP server and the tasks; close the App."""
        if self.scheduler is not None:
            self.scheduler.shutdown()
        stream = self.app.stream
        if stream is not None:
            await stream.stop()
        if self._http_server is not None:
            await self._http_server.__aexit__(None, None, None)
            self._http_server = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.app.close()


async def _first(*events: asyncio.Event, seconds: float) -> None:
    """Wait until one of ``events`` is set, or ``seconds`` pass."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
