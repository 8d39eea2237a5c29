"""The composition root: ``Settings`` in, a running daemon out.

``Daemon`` reads the settings once, builds the adapters (pool, stores, DingTalk client,
Stream client, callback endpoint, HTTP server) and the stages, and either runs them until
asked to stop (``run``) or until a whole cycle finds nothing to do (``drain``, the basis
of ``syncd run --once`` and of sleep-free tests). Only this module and the CLI see
``Settings``; everything it builds receives plain values.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol

import httpx
from prometheus_client import CollectorRegistry
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette

from syncd import __version__
from syncd.clock import SystemClock
from syncd.db import migrations, writeback
from syncd.db.apply_store import PostgresApplyStore
from syncd.db.cancel_store import PostgresCancelStore
from syncd.db.inbox import PostgresInbox
from syncd.db.ingest_store import PostgresIngestStore
from syncd.db.listen import Listener
from syncd.db.pacing import PostgresPacer
from syncd.db.poll_store import PostgresPollStore
from syncd.db.store import PostgresControlStore
from syncd.db.submit_store import PostgresSubmitStore
from syncd.db.writeback_store import PostgresWriteBackStore
from syncd.dingtalk.callback import CallbackEndpoint
from syncd.dingtalk.calls import ObservedClient
from syncd.dingtalk.client import KEEPALIVE_EXPIRY, HttpxApprovalClient, build_http_client
from syncd.dingtalk.crypto import CallbackCrypto
from syncd.dingtalk.events import InboundEvent
from syncd.dingtalk.failed import FailedPushList
from syncd.dingtalk.pacing import Pacer
from syncd.dingtalk.stream import StreamClient
from syncd.errors import ConfigError, StoreError, SyncdError
from syncd.http import Listening
from syncd.http import serve as http_serve
from syncd.metrics import Metrics
from syncd.pipeline.apply import Apply, WriteBackRetry
from syncd.pipeline.cancel import Cancel
from syncd.pipeline.ingest import Ingest
from syncd.pipeline.pauses import Pause, Pauses
from syncd.pipeline.reconcile import Reconcile
from syncd.pipeline.retry import RetryPolicy
from syncd.pipeline.schemas import SchemaCache
from syncd.pipeline.submit import Submit, Timing
from syncd.pipeline.track import Poll, SweepFailed
from syncd.ports import Clock, Observer, SignedPut
from syncd.scheduler import Scheduler
from syncd.settings import Settings
from syncd.web import DaemonWeb

logger = logging.getLogger(__name__)

#: Stages that ``run`` keeps in order within a lane while the lanes run side by side:
#: the way in (outbox to DingTalk instance) and the way back (outcome to business row).
LANES = (("ingest", "submit", "reconcile", "cancel"), ("apply", "writeback", "poll"))


class Stage(Protocol):
    async def run_once(self) -> int: ...


def replica_name(settings: Settings) -> str:
    return settings.replica_name or f"{socket.gethostname()}-{os.getpid()}"


class WakingInbox:
    """Stores events, then wakes the daemon so they are applied at once."""

    def __init__(self, inner: PostgresInbox, wake: asyncio.Event, observer: Observer) -> None:
        self.inner = inner
        self.wake = wake
        self.observer = observer

    async def put(self, event: InboundEvent) -> bool:
        [new] = await self.put_many([event])
        return new

    async def put_many(self, events: Sequence[InboundEvent]) -> list[bool]:
        news = await self.inner.put_many(events)
        for event, new in zip(events, news, strict=True):
            self.observer.event_stored(event.channel, new)
        if any(news):
            self.wake.set()
        return news

    async def put_signed(
        self, signature: str, expires_at: datetime, event: InboundEvent | None
    ) -> SignedPut:
        outcome = await self.inner.put_signed(signature, expires_at, event)
        if event is not None and outcome != "replay":
            self.observer.event_stored(event.channel, outcome == "new")
            if outcome == "new":
                self.wake.set()
        return outcome

    async def forget_signatures(self, now: datetime) -> int:
        return await self.inner.forget_signatures(now)


@dataclass
class Summary:
    """Items handled per stage over a drain, and the cycles it took."""

    handled: dict[str, int] = field(default_factory=dict)
    cycles: int = 0

    def add(self, counts: Mapping[str, int]) -> None:
        for name, count in counts.items():
            self.handled[name] = self.handled.get(name, 0) + count
        self.cycles += 1


class Daemon:
    """Build with settings; ``async with`` opens and closes everything it owns."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        pacer: Pacer | None = None,
        observer: Observer | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = Metrics(
            self.registry, kinds=settings.kinds, monthly_quota=settings.dingtalk.monthly_quota
        )
        self.observer: Observer = observer or self.metrics
        self.clock = clock or SystemClock()
        self.transport = transport
        self.pacer = pacer
        self.owner = replica_name(settings)
        # What wakes each lane of run(): NOTIFY the way in, a stored event the way back.
        self.wake = asyncio.Event()
        self.wake_back = asyncio.Event()
        self.started = asyncio.Event()  # set once run() serves HTTP (self.listening)
        self.stages: dict[str, Stage] = {}
        self._closers: list[Any] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._http_server: AbstractAsyncContextManager[Listening] | None = None
        self.scheduler: Scheduler | None = None
        self.stream: StreamClient | None = None
        self.callback: CallbackEndpoint | None = None

    @property
    def dsn(self) -> str:
        return self.settings.database.dsn.get_secret_value()

    async def __aenter__(self) -> Daemon:
        await self.open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect, check the schema and the write-back targets, build the stages."""
        state = await migrations.status(self.dsn)
        if not state.current:
            pending = ", ".join(m.label for m in state.pending)
            raise ConfigError(
                f"the database schema is behind ({pending}): "
                "run `syncd migrate` (or `syncd run --migrate`)"
            )
        self.pool = await self._open_pool()
        kinds = self.settings.kinds
        writebacks = await writeback.build(
            self.dsn, {name: k.write_back for name, k in kinds.items() if k.write_back}
        )
        self.http = self._http_client()
        self._closers.append(self.http.aclose)
        self.client = HttpxApprovalClient(self.http, pacer=self._pacer(), clock=self.clock)
        self.control = PostgresControlStore(self.pool, actor=self.owner)
        self.apply_store = PostgresApplyStore(self.pool, writebacks, actor=self.owner)
        self.writeback_store = PostgresWriteBackStore(self.pool, writebacks, actor=self.owner)
        self.poll_store = PostgresPollStore(self.pool, actor=self.owner)
        self.cancel_store = PostgresCancelStore(self.pool, actor=self.owner)
        self.inbox = WakingInbox(PostgresInbox(self.pool), self.wake_back, self.observer)
        self.pauses = Pauses(self.control)
        self._build_events()
        self._build_stages()
        logger.info(
            "daemon ready",
            extra={
                "action": "daemon_start",
                "replica": self.owner,
                "version": __version__,
                "kinds": sorted(kinds),
            },
        )

    async def _open_pool(self) -> AsyncConnectionPool[Any]:
        db = self.settings.database
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.dsn,
            min_size=db.pool_min_size,
            max_size=db.pool_max_size,
            kwargs={
                "autocommit": True,  # see BaseStore.connection
                "row_factory": dict_row,
                "application_name": f"syncd {self.owner}",
                "options": f"-c statement_timeout={int(db.statement_timeout * 1000)}",
            },
            open=False,
            timeout=db.connect_timeout,
        )
        try:
            await pool.open(wait=True, timeout=db.connect_timeout)
        except Exception as exc:
            await pool.close()
            raise StoreError(f"cannot open the connection pool: {exc}") from exc
        self._closers.append(pool.close)
        return pool

    def _build_events(self) -> None:
        dt = self.settings.dingtalk
        events = self.settings.events
        oapi = ObservedClient(
            base_url=dt.oapi_url,
            auth=self.http.auth,
            timeout=dt.timeout,
            transport=self.transport,
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY),
            observer=self.metrics,
        )
        self._closers.append(oapi.aclose)
        self.sweeper = SweepFailed(FailedPushList(oapi), self.inbox, self.control, self.clock)
        if events.stream:
            self.stream = StreamClient(
                self.http,
                dt.app_key,
                dt.app_secret,
                self.inbox,
                silence_timeout=events.stream_silence_timeout,
            )
        callback = events.callback
        if callback.enabled:
            crypto = CallbackCrypto(
                callback.token.get_secret_value(),
                callback.aes_key.get_secret_value(),
                callback.owner_key or dt.app_key,
            )
            self.callback = CallbackEndpoint(
                crypto,
                self.inbox,
                clock=self.clock,
                max_age=callback.max_age,
                max_body_bytes=callback.max_body_bytes,
                observer=self.observer,
            )

    def _http_client(self) -> httpx.AsyncClient:
        dt = self.settings.dingtalk
        return build_http_client(
            dt.app_key,
            dt.app_secret,
            base_url=dt.api_url,
            clock=self.clock,
            timeout=dt.timeout,
            transport=self.transport,
            observer=self.metrics,
        )

    def _pacer(self) -> Pacer:
        if self.pacer is not None:
            return self.pacer
        return PostgresPacer(
            self.pool, clock=self.clock, rate=self.settings.dingtalk.rate_per_second
        )

    def _build_stages(self) -> None:
        s = self.settings
        p = s.pipeline
        self.retry = RetryPolicy(base=p.retry_base, cap=p.retry_cap, max_attempts=p.max_attempts)
        self.timing = Timing(
            lease=timedelta(seconds=p.lease_seconds),
            unknown_grace=timedelta(seconds=p.unknown_grace),
            quiet_after=timedelta(seconds=s.polling.quiet_after),
            # a create's answer, or its timeout (and a token fetch's), before the lease ends
            send_margin=timedelta(seconds=2 * s.dingtalk.timeout + 1),
        )
        apply = Apply(
            self.apply_store,
            self.client,
            self.clock,
            quiet_after=self.timing.quiet_after,
            batch_size=p.batch_size,
            lease=self.timing.lease,
            needs={name: k.write_back.sources for name, k in s.kinds.items() if k.write_back},
            observer=self.observer,
        )
        self.apply = apply
        self.stages = {**self._way_in(apply), **self._way_back(apply)}

    def _way_in(self, apply: Apply) -> dict[str, Stage]:
        """The stages that take requests to DingTalk: ingest, submit, reconcile, cancel."""
        s, p, kinds, timing = (
            self.settings,
            self.settings.pipeline,
            self.settings.kinds,
            self.timing,
        )
        submit_store = PostgresSubmitStore(self.pool, actor=self.owner)
        return {
            "ingest": Ingest(
                PostgresIngestStore(self.pool, actor=self.owner),
                kinds,
                self.clock,
                batch_size=p.batch_size,
                observer=self.observer,
            ),
            "submit": Submit(
                submit_store,
                self.pauses,
                self.client,
                SchemaCache(self.client, self.clock),
                kinds,
                self.clock,
                self.retry,
                timing,
                owner=self.owner,
                batch_size=p.batch_size,
                agent_id=s.dingtalk.agent_id,
                concurrency=p.concurrency,
                observer=self.observer,
            ),
            "reconcile": Reconcile(
                submit_store,
                self.pauses,
                self.client,
                apply,
                kinds,
                self.clock,
                self.retry,
                owner=self.owner,
                quiet_after=timing.quiet_after,
                lease=timing.lease,
            ),
            "cancel": Cancel(
                self.cancel_store,
                self.pauses,
                self.client,
                apply,
                kinds,
                self.clock,
                self.retry,
                owner=self.owner,
                lease=timing.lease,
            ),
        }

    def _way_back(self, apply: Apply) -> dict[str, Stage]:
        """The stages that bring outcomes back: apply, write-back retries, polling."""
        polling, lease = self.settings.polling, self.timing.lease
        return {
            "apply": apply,
            "writeback": WriteBackRetry(self.writeback_store, self.clock, lease=lease),
            "poll": Poll(
                self.poll_store,
                self.control,
                self.pauses,
                self.client,
                apply,
                self.clock,
                quiet_after=self.timing.quiet_after,
                max_interval=timedelta(seconds=polling.max_interval),
                monthly_budget=polling.monthly_budget,
                lease=lease,
            ),
        }

    async def cycle(self) -> dict[str, int]:
        """Run every stage once, in order; a failing stage is logged and counted, the
        others go on."""
        return await self._run_stages(list(self.stages))

    def _lanes(self) -> tuple[list[str], list[str]]:
        """The way in and the way back (:data:`LANES`); any other stage joins the way back."""
        way_in, way_back = ([name for name in lane if name in self.stages] for lane in LANES)
        way_back += [name for name in self.stages if name not in way_in + way_back]
        return way_in, way_back

    async def _run_stages(self, names: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name in names:
            stage = self.stages[name]
            started = time.monotonic()
            try:
                counts[name] = await stage.run_once()
            except Exception as exc:  # the top of the loop: log, count, go on
                counts[name] = 0
                self._stage_failed(name, exc)
            self.observer.stage_run(name, counts[name], time.monotonic() - started)
        return counts

    def _stage_failed(self, name: str, exc: Exception) -> None:
        self.observer.stage_failed(name, type(exc).__name__)
        extra = {"action": "stage_error", "stage": name, "error_class": type(exc).__name__}
        if isinstance(exc, SyncdError):  # expected trouble (database down, ...): one line
            logger.error("stage failed: %s", exc, extra=extra)
        else:  # a bug: the traceback matters
            logger.exception("stage crashed", extra=extra)

    async def drain(self, max_cycles: int = 10_000) -> Summary:
        """Run cycles until one handles nothing; returns what was done."""
        summary = Summary()
        while summary.cycles < max_cycles:
            counts = await self.cycle()
            summary.add(counts)
            if not any(counts.values()):
                break
        return summary

    async def pause(self) -> Pause | None:
        return await self.pauses.active(self.clock.now())

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
        await self._start_background()
        way_in, way_back = self._lanes()
        passed = asyncio.Event()  # set at the end of every pass of the way back
        try:
            await asyncio.gather(
                self._run_way_in(way_in, stop, passed), self._run_way_back(way_back, stop, passed)
            )
        finally:
            logger.info("daemon stopping", extra={"action": "daemon_stop", "replica": self.owner})

    async def _run_way_in(
        self, names: list[str], stop: asyncio.Event, passed: asyncio.Event
    ) -> None:
        interval = self.settings.pipeline.outbox_poll_interval
        while not stop.is_set():
            if self.apply.behind:  # back pressure: one batch per pass of the way back
                passed.clear()
                await _first(passed, stop, seconds=interval)
            # Cleared before the stages run, so a wake-up while they run is not lost.
            self.wake.clear()
            counts = await self._run_stages(names)
            if not any(counts.values()):
                await _first(self.wake, stop, seconds=interval)

    async def _run_way_back(
        self, names: list[str], stop: asyncio.Event, passed: asyncio.Event
    ) -> None:
        interval = self.settings.pipeline.outbox_poll_interval
        while not stop.is_set():
            self.wake_back.clear()
            counts = await self._run_stages(names)
            passed.set()
            if any(counts.values()):
                self.wake.set()  # a finished round may free the next round of its key
            else:
                await _first(self.wake_back, stop, seconds=interval)

    async def _start_background(self) -> None:
        listener = Listener(self.dsn, ("syncd_outbox",), lambda _channel: self.wake.set())
        self.listener = listener
        self._spawn(listener.run(), "listen")
        if self.stream is not None:
            self._spawn(self.stream.run(), "stream")
        http = self.settings.http
        self._http_server = http_serve(self.http_app(), http.host, http.port)
        self.listening = await self._http_server.__aenter__()
        logger.info(
            "serving health, metrics and callbacks",
            extra={"action": "http_listening", "url": self.listening.base_url},
        )
        self.scheduler = self._schedule()
        self.scheduler.start()
        self.started.set()

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))

    def _schedule(self) -> Scheduler:
        control = self.control

        async def take_turn(name: str, period: timedelta) -> bool:
            now = self.clock.now()
            return await control.claim_turn(name, now, now + period)

        scheduler = Scheduler(self.clock, take_turn)
        scheduler.every("sweep_failed", self.settings.polling.failed_list_interval, self.sweep)
        scheduler.every("retention", 3600, self.purge)
        if self.callback is not None:
            # Replay claims outlive their pushes' freshness by at most one interval.
            max_age = self.settings.events.callback.max_age
            scheduler.every("callback_replay", max(max_age, 60.0), self.callback.forget_expired)
        return scheduler

    async def sweep(self) -> int:
        """Move DingTalk's failed-push list into the inbox (skipped while paused)."""
        if await self.pause():
            return 0
        return await self.sweeper.run_once()

    async def purge(self) -> int:
        days = self.settings.pipeline.retention_days
        return await self.control.purge(self.clock.now() - timedelta(days=days))

    def http_app(self) -> Starlette:
        """The daemon's HTTP surface: health, readiness, metrics and the callback."""
        return DaemonWeb(self).app()

    async def readiness(self) -> dict[str, Any]:
        """Each readiness check with whether it passes (database, migrations, events, pause)."""
        return await DaemonWeb(self).readiness()

    async def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()
        if self.stream is not None:
            await self.stream.stop()
        if self._http_server is not None:
            await self._http_server.__aexit__(None, None, None)
            self._http_server = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for closer in reversed(self._closers):
            await closer()
        self._closers.clear()


async def _first(*events: asyncio.Event, seconds: float) -> None:
    """Wait until one of ``events`` is set, or ``seconds`` pass."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
