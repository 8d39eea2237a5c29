"""The composition root: ``Settings`` in, the daemon's parts out.

``App`` reads the settings once and builds the adapters (pool, stores, DingTalk client,
Stream client, callback endpoint, LISTEN connection) and the stages. It runs nothing:
:class:`syncd.runner.Runner` does (``syncd run``); commands, the web layer, the demo and
the benchmarks take the App for its parts. Only the App, the Runner and the CLI see
``Settings``; everything the App builds receives plain values.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import timedelta
from types import TracebackType
from typing import Any, Protocol

import httpx
from prometheus_client import CollectorRegistry
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette

from syncd.app_directory import DirectoryParts
from syncd.app_relay import build_relays, metric_sets
from syncd.attach_build import build_attacher
from syncd.clock import SystemClock
from syncd.db import business, migrations, writeback
from syncd.db.admin_store import AdminStore
from syncd.db.apply_store import PostgresApplyStore
from syncd.db.cancel_store import PostgresCancelStore
from syncd.db.directory_lookup import PostgresDirectoryLookup
from syncd.db.directory_store import PostgresDirectoryStore
from syncd.db.inbox import PostgresInbox, WakingInbox
from syncd.db.ingest_store import PostgresIngestStore
from syncd.db.listen import Listener
from syncd.db.pacing import pacer_for
from syncd.db.poll_store import PostgresPollStore
from syncd.db.store import Conn, PostgresControlStore
from syncd.db.submit_store import PostgresSubmitStore
from syncd.db.writeback_store import PostgresWriteBackStore
from syncd.dingtalk.callback import CallbackEndpoint
from syncd.dingtalk.calls import ObservedClient
from syncd.dingtalk.client import KEEPALIVE_EXPIRY, HttpxApprovalClient, build_http_client
from syncd.dingtalk.contacts import HttpxContactClient
from syncd.dingtalk.crypto import CallbackCrypto
from syncd.dingtalk.failed import FailedPushList
from syncd.dingtalk.pacing import Pacer
from syncd.dingtalk.stream import StreamClient
from syncd.errors import ConfigError, StoreError
from syncd.held import HELD_LEASE, HeldEvents
from syncd.metrics import Metrics
from syncd.metrics.lookups import LookupMetrics
from syncd.pipeline.apply import Apply
from syncd.pipeline.cancel import Cancel
from syncd.pipeline.directory_events import DirectoryEvents
from syncd.pipeline.ingest import Ingest
from syncd.pipeline.lookup import People
from syncd.pipeline.pauses import Pause, Pauses
from syncd.pipeline.reconcile import Reconcile
from syncd.pipeline.reconcile_window import ReconcileProgress, ReconcileWindow
from syncd.pipeline.retry import RetryPolicy
from syncd.pipeline.schemas import SchemaCache
from syncd.pipeline.submit import Submit, Timing
from syncd.pipeline.track import Poll, PollingBudget, SweepFailed
from syncd.pipeline.writeback import WriteBackRetry
from syncd.ports import BusinessTarget, Clock, Observer
from syncd.settings import Settings
from syncd.web import DaemonWeb, Starting

logger = logging.getLogger(__name__)


class Stage(Protocol):
    async def run_once(self) -> int: ...


def replica_name(settings: Settings) -> str:
    return settings.replica_name or f"{socket.gethostname()}-{os.getpid()}"


class App:
    """The parts of one syncd process. ``async with`` checks the schema, builds every part
    and closes them all at the end (also when opening fails half-way); it starts no work
    and logs no daemon start. The keywords replace parts for tests and benchmarks."""

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
            self.registry, monthly_quota=settings.dingtalk.monthly_quota, **metric_sets(settings)
        )
        self.observer: Observer = observer or self.metrics
        self.lookup_metrics = LookupMetrics(self.registry)
        self.clock = clock or SystemClock()
        self.transport = transport
        self.pacer = pacer
        self.owner = replica_name(settings)
        # What wakes each lane of the Runner: NOTIFY the way in, a stored event the way back.
        self.wake = asyncio.Event()
        self.wake_back = asyncio.Event()
        self.stages: dict[str, Stage] = {}
        self.relays: dict[str, Any] = {}
        self._closers: list[Any] = []
        self.stream: StreamClient | None = None
        self.callback: CallbackEndpoint | None = None

    @property
    def dsn(self) -> str:
        return self.settings.database.dsn.get_secret_value()

    async def __aenter__(self) -> App:
        try:
            await self.open()
        except BaseException:
            await self.close()
            raise
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
        own = {n: k.write_back for n, k in kinds.items() if k.write_back and not k.database}
        writebacks: dict[str, BusinessTarget[Conn]] = {
            **await writeback.build(self.dsn, own),
            **await business.open_all(self.settings, self._closers),
        }
        self.http = self._http_client()
        self._closers.append(self.http.aclose)
        self.client = HttpxApprovalClient(self.http, pacer=self._pacer(), clock=self.clock)
        self.control = PostgresControlStore(self.pool, actor=self.owner)
        stores = {"actor": self.owner, "corp_id": self.settings.dingtalk.corp_id}
        self.apply_store = PostgresApplyStore(self.pool, writebacks, **stores)
        self.writeback_store = PostgresWriteBackStore(self.pool, writebacks, **stores)
        self.poll_store = PostgresPollStore(self.pool, actor=self.owner)
        self.cancel_store = PostgresCancelStore(self.pool, actor=self.owner)
        held_lease = min(HELD_LEASE, timedelta(seconds=self.settings.pipeline.lease_seconds))
        inbox = PostgresInbox(self.pool, HeldEvents(self.clock, lease=held_lease))
        self._closers.append(inbox.release)  # before the pool closes: closed last first
        self.inbox = WakingInbox(inbox, self.wake_back, self.observer)
        self.pauses = Pauses(self.control)
        self.listener = Listener(self.dsn, ("syncd_outbox",), lambda _channel: self.wake.set())
        self._build_events()
        self._build_stages()
        self.relays = build_relays(
            self.settings, self.pool, self.clock, self.registry,
            owner=self.owner, closers=self._closers,
        )  # fmt: skip
        from syncd.app_inbound import later_stages  # after the metrics' error classes

        self.stages = {**self.relays, **self.stages, **await later_stages(self)}  # relays 1st
        # the directory's full sync and its schedule
        parts = DirectoryParts.build(
            self.settings, self.pool, self.contacts, self.clock, self.retry,
            owner=self.owner, lease=self.timing.lease, metrics=self.metrics,
        )  # fmt: skip
        self._closers.append(parts.aclose)
        self.directory_sync, self.directory_schedule = parts.sync, parts.schedule

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
        self.oapi = oapi = ObservedClient(
            base_url=dt.oapi_url,
            auth=self.http.auth,
            timeout=dt.timeout,
            transport=self.transport,
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY),
            observer=self.metrics,
        )
        self._closers.append(oapi.aclose)
        # The directory (issue 17): contact reads on the old API, the directory's tables.
        self.contacts = HttpxContactClient(oapi, pacer=self._pacer(), clock=self.clock)
        self.directory = PostgresDirectoryStore(self.pool, actor=self.owner)
        # Look-ups of people named by job number, mobile or email, at submit.
        self.lookup = PostgresDirectoryLookup(self.pool, actor=self.owner)
        self.people = People(self.lookup, self.contacts, self.clock, observer=self.lookup_metrics)
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
        return self.pacer or pacer_for(self.pool, self.clock, self.settings.dingtalk)

    def _build_stages(self) -> None:
        s, p = self.settings, self.settings.pipeline
        self.retry = RetryPolicy(base=p.retry_base, cap=p.retry_cap, max_attempts=p.max_attempts)
        self.timing = Timing(
            lease=timedelta(seconds=p.lease_seconds),
            unknown_grace=timedelta(seconds=p.unknown_grace),
            quiet_after=timedelta(seconds=s.polling.quiet_after),
            # a create's answer, or its timeout (and a token fetch's), before the lease ends
            send_margin=timedelta(seconds=2 * s.dingtalk.timeout + 1),
        )
        directory = DirectoryEvents(
            self.directory, self.contacts, self.clock,
            enabled=s.directory_enabled, observer=self.metrics,
        )  # fmt: skip
        apply = Apply(
            self.apply_store, self.client, self.clock,
            quiet_after=self.timing.quiet_after, batch_size=p.batch_size, lease=self.timing.lease,
            needs={name: k.write_back.sources for name, k in s.kinds.items() if k.write_back},
            observer=self.observer, directory=directory, held=self.inbox.inner.held,
        )  # fmt: skip
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
                people=self.people,
                attacher=build_attacher(self),
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
        polling, lease, kinds = self.settings.polling, self.timing.lease, self.settings.kinds
        live = {name: k.write_back.progress_states for name, k in kinds.items() if k.write_back}
        return {
            "apply": apply,
            "writeback": WriteBackRetry(
                self.writeback_store, self.clock, lease=lease, progress=live, observer=self.observer
            ),
            "poll": Poll(
                self.poll_store,
                self.control,
                self.pauses,
                self.client,
                apply,
                self.clock,
                quiet_after=self.timing.quiet_after,
                max_interval=timedelta(seconds=polling.max_interval),
                monthly_budget=PollingBudget.of(self.settings),
                lease=lease,
            ),
        }

    def http_app(self, starting: Starting | None = None) -> Starlette:
        """The daemon's HTTP surface: health, readiness, metrics and the callback."""
        return DaemonWeb(self, starting).app()

    async def pause(self) -> Pause | None:
        """The cluster-wide pause of DingTalk calls in force now, if any."""
        return await self.pauses.active(self.clock.now())

    def reconcile_window(self, *, dry_run: bool, progress: ReconcileProgress) -> ReconcileWindow:
        """``syncd reconcile``'s comparison, over this app's client, stores and apply stage."""
        return ReconcileWindow(
            self.client,
            AdminStore(self.pool, actor=self.owner),
            PostgresSubmitStore(self.pool, actor=self.owner),
            self.control,
            self.pauses,
            self.apply,
            self.clock,
            quiet_after=self.timing.quiet_after,
            dry_run=dry_run,
            progress=progress,
        )

    async def close(self) -> None:
        """Close what :meth:`open` opened, last first."""
        for closer in reversed(self._closers):
            await closer()
        self._closers.clear()
