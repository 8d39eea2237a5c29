"""Running the demo: PostgreSQL, simulator, legacy app and daemon, then a clean stop.

Everything is started in order and stopped in reverse, on the natural end of the run,
on ``--duration``, or when ``stop`` is set (SIGINT/SIGTERM): the legacy app first, then
the daemon (finishing its cycle), the simulator's server, and PostgreSQL, whose temporary
data directory is removed unless ``keep``. The summary is read after the daemon stopped,
so its numbers are final.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pwd
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import psycopg

from syncd.app import App
from syncd.db import migrations
from syncd.db.connect import connect
from syncd.db.queries import QUERIES
from syncd.demo import stats
from syncd.demo.config import INBOUND, demo_settings
from syncd.demo.inbound import start_in_dingtalk
from syncd.demo.legacy_app import LegacyApp, prepare
from syncd.demo.stats import Snapshot
from syncd.demo.view import Links, LiveView, LogTail, PlainView, Progress, summary_lines
from syncd.demo.world import demo_world
from syncd.embedded import EmbeddedPostgres
from syncd.errors import SyncdError
from syncd.http import Listening
from syncd.runner import Runner
from syncd.simulator import Simulator, serve

if TYPE_CHECKING:
    from syncd.demo.mariadb import MariaDBBusiness

TICK = 0.25
LISTEN_TIMEOUT = 30.0
#: The longest the demo waits for the directory's first full sync (a dozen people).
DIRECTORY_TIMEOUT = 30.0


@dataclass(frozen=True)
class DemoOptions:
    requests: int = 40
    rate: float = 2.0
    duration: float | None = None
    keep: bool = False
    live: bool = False
    time_scale: float = 1.0
    #: Where the legacy app's tables are: ``postgresql`` (syncd's own) or ``mariadb``.
    business_db: str = "postgresql"

    @property
    def wait_for_people(self) -> bool:
        """Keep running after the rules are done, for someone to use the simulator page."""
        return self.live or self.duration is not None


class View(Protocol):
    def show(self, progress: Progress) -> None: ...

    def close(self) -> None: ...


def say(out: TextIO, *lines: str) -> None:
    out.write("".join(f"{line}\n" for line in lines))
    out.flush()


#: Called at the end of a run, before anything stops, with the simulator, the business
#: database and syncd's DSN (tests compare the business rows with the simulator's record).
Inspect = Callable[[Simulator, "MariaDBBusiness | None", str], Awaitable[None]]


async def run_demo(
    options: DemoOptions,
    stop: asyncio.Event,
    out: TextIO,
    logs: LogTail | None = None,
    inspect: Inspect | None = None,
) -> Snapshot:
    """Run the whole demo until it ends or ``stop`` is set; prints URLs and the summary."""
    business = None
    if options.business_db == "mariadb":
        from syncd.demo.mariadb import MariaDBBusiness

        business = MariaDBBusiness(keep=options.keep)  # says what to install, if missing
    pg = EmbeddedPostgres(keep=options.keep)
    kept: list[str] = []
    try:
        try:
            dsn = await asyncio.to_thread(pg.start)
        except RuntimeError as exc:
            raise SyncdError(f"cannot start the embedded PostgreSQL: {exc}") from exc
        if not options.live:
            say(out, f"PostgreSQL started, data in {pg.root}")
        if business is None:
            await prepare(dsn)
        else:
            await migrations.apply(dsn)
            await business.start()
            if not options.live:
                say(out, business.started)
            await business.prepare()
        snapshot = Snapshot()
        if not stop.is_set():
            snapshot = await _run_world(options, dsn, business, stop, out, logs, inspect)
        say(out, "", *summary_lines(snapshot))
        return snapshot
    finally:
        try:
            if business is not None:
                kept = await business.close()
        finally:
            await asyncio.to_thread(pg.close)
        if options.keep:
            say(out, "", *keep_lines(pg, app_tables=business is None), *kept)


async def _run_world(
    options: DemoOptions,
    dsn: str,
    business: MariaDBBusiness | None,
    stop: asyncio.Event,
    out: TextIO,
    logs: LogTail | None,
    inspect: Inspect | None,
) -> Snapshot:
    world = demo_world()
    sim = Simulator(world, time_scale=options.time_scale)
    count, rate = options.requests, options.rate
    app = (
        LegacyApp(dsn, count=count, rate=rate)
        if business is None
        else business.legacy_app(count=count, rate=rate)
    )
    business_url = None if business is None else business.url
    async with serve(sim) as server:
        runner = Runner(App(demo_settings(dsn, server.base_url, world, business_url)))
        async with runner, _running(runner) as (listening, daemon_task):
            shown = None if business is None else (business.label, business.shown)
            links = Links(server.base_url, listening.base_url, dsn, shown, business is None)
            view: View = LiveView(out, links, logs or LogTail()) if options.live else PlainView()
            if not options.live:
                say(out, *links.lines())
            try:
                # the receipts' uploads name the applicants by the directory's unionIds
                await _directory_synced(dsn, stop)
                if business is None and not stop.is_set():
                    await start_in_dingtalk(server.base_url, date.today())
                async with _task(app.run(), "legacy app") as app_task:
                    await _watch(
                        options, dsn, business, sim, app, view, stop, [app_task, daemon_task]
                    )
            finally:
                view.close()
    async with connect(dsn, autocommit=True, application_name="syncd demo") as conn:
        snapshot = await _take(conn, business, sim, app.inserted)
    if inspect is not None:
        await inspect(sim, business, dsn)
    return snapshot


async def _take(
    conn: psycopg.AsyncConnection[dict[str, Any]],
    business: MariaDBBusiness | None,
    sim: Simulator,
    inserted: int,
) -> Snapshot:
    """A snapshot, counting the business database's outbox rows not relayed yet."""
    snapshot = await stats.take(conn, sim, inserted, (INBOUND,) if business is None else ())
    if business is None:
        return snapshot
    unrelayed = await business.unrelayed()
    return dataclasses.replace(snapshot, unconsumed=snapshot.unconsumed + unrelayed)


async def _directory_synced(dsn: str, stop: asyncio.Event) -> None:
    """Wait for the daemon's first full sync of the directory (it starts at once)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DIRECTORY_TIMEOUT
    async with connect(dsn, autocommit=True, application_name="syncd demo") as conn:
        while not stop.is_set():
            cursor = await conn.execute(QUERIES["directory_last_full_sync"])
            row = await cursor.fetchone()
            if row is not None and row["finished_at"] is not None:
                return
            if loop.time() > deadline:
                raise SyncdError("the directory's first full sync did not finish in time")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK):
                    await stop.wait()


@contextlib.asynccontextmanager
async def _task(work: Any, name: str) -> AsyncIterator[asyncio.Task[Any]]:
    """Run ``work`` in a task for the block; cancelled and awaited when the block ends."""
    task = asyncio.create_task(work, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def _running(runner: Runner) -> AsyncIterator[tuple[Listening, asyncio.Task[None]]]:
    """Run the daemon for the block, yielding where it serves HTTP; stop it gracefully."""
    done = asyncio.Event()
    task = asyncio.create_task(runner.run(done), name="daemon")
    try:
        started = asyncio.create_task(runner.started.wait())
        await asyncio.wait({started, task}, timeout=LISTEN_TIMEOUT, return_when="FIRST_COMPLETED")
        if not runner.started.is_set() or runner.listening is None:
            started.cancel()
            if task.done():
                await task  # raises what stopped it
            raise SyncdError("the daemon did not start serving HTTP in time")
        yield runner.listening, task
    finally:
        done.set()
        await task


async def _watch(
    options: DemoOptions,
    dsn: str,
    business: MariaDBBusiness | None,
    sim: Simulator,
    app: LegacyApp,
    view: View,
    stop: asyncio.Event,
    workers: list[asyncio.Task[Any]],
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with connect(dsn, autocommit=True, application_name="syncd demo") as conn:
        while True:
            snapshot = await _take(conn, business, sim, app.inserted)
            elapsed = loop.time() - started
            finished, status = progress_status(options, snapshot, app.done.is_set(), elapsed)
            view.show(Progress(snapshot, options.requests, options.rate, elapsed, status))
            if finished or stop.is_set():
                return
            _check(workers, app.done.is_set())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK):
                    await stop.wait()


def _check(workers: list[asyncio.Task[Any]], app_done: bool) -> None:
    """Raise what stopped a worker (legacy app, daemon) before its time."""
    for task in workers:
        if task.done():
            task.result()
            if task.get_name() == "daemon" or not app_done:
                raise SyncdError(f"the {task.get_name()} stopped unexpectedly")


def progress_status(
    options: DemoOptions, s: Snapshot, submitted_all: bool, elapsed: float
) -> tuple[bool, str]:
    """Whether the run is over, and a line saying what it waits for."""
    if options.duration is not None and elapsed >= options.duration:
        return True, "the time is up (--duration)"
    if not submitted_all:
        return False, "the legacy app is submitting requests…"
    if s.all_done():
        return True, "every request is decided and written back"
    if not s.rules_done():
        return False, "waiting for decisions and write-backs…"
    if not options.wait_for_people:
        return True, "every request the rules decide is done"
    return False, (
        # at most 75 columns with the view's indent (counts up to 99,999): the line read
        # 80 from 10,000 waiting and lost its end to the clip on an 80-column terminal
        f"the rules are done; {s.waiting_for_person} wait for a person: decide on the"
        " simulator page"
    )


def keep_lines(pg: EmbeddedPostgres, *, app_tables: bool = True) -> list[str]:
    """How to start the kept server again and connect with psql."""
    binaries = pg.bin_path
    owner = pwd.getpwuid(pg.home.stat().st_uid).pw_name
    as_owner = f"runuser -u {owner} -- " if pg.home.stat().st_uid != os.geteuid() else ""
    options = f"-h 127.0.0.1 -p {pg.port} -k {pg.home}"
    start = [str(binaries / "pg_ctl"), "-D", str(pg.data_dir), "-l", str(pg.home / "postgres.log")]
    return [
        f"The database is kept in {pg.root} (the server is stopped). To look around:",
        f"  {as_owner}{shlex.join([*start, '-o', options, 'start'])}",
        f"  {shlex.join([str(binaries / 'psql'), pg.dsn()])}",
        "  then e.g.: "
        + ("SELECT * FROM app.leave_request; " if app_tables else "")
        + "SELECT * FROM syncd.summary;",
        f"  {as_owner}{shlex.join([str(binaries / 'pg_ctl'), '-D', str(pg.data_dir), 'stop'])}",
    ]
