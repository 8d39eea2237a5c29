"""``syncd directory status`` and ``syncd directory sync``: the synced DingTalk directory.

``status`` reads ``syncd.directory_sync`` and the directory's size;
``sync`` runs (or resumes) a full sync now through the App's
:class:`~syncd.pipeline.directory_sync.DirectorySync`, with a progress line on a
terminal and log lines otherwise. The logic is in ``syncd.pipeline``; this module parses
and prints.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from datetime import datetime, timedelta
from typing import Any, TextIO

from syncd.app import App
from syncd.commands.common import database_dsn, out, settings_from
from syncd.commands.operator import actor, age, to_json, utcnow, when
from syncd.db.admin_store import open_pool
from syncd.db.directory_sync_store import PostgresDirectorySyncStore
from syncd.pipeline.directory_schedule import status_report
from syncd.ports.directory import SyncRun

logger = logging.getLogger(__name__)

#: Not on a terminal, a progress line is logged at most this often (seconds).
LOG_EVERY = 5.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "directory",
        help="the synced DingTalk directory: its syncs, or a full sync now",
        description="The DingTalk directory syncd keeps (people and departments, for kinds "
        "that name people by job number, mobile or email).",
    )
    commands = parser.add_subparsers(dest="directory_command", required=True, metavar="COMMAND")
    status = commands.add_parser(
        "status",
        help="the last and the running sync, and the directory's size",
        description="The last full sync and the running one (state, start, end, "
        "departments, users, DingTalk calls, last error), present and departed users and "
        "departments. Exit 0 when it could read, unless --check.",
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when the directory was never synced or its last sync finished more "
        "than twice directory.resync_interval ago",
    )
    status.add_argument("--dsn", help="database (default: database.dsn)")
    status.set_defaults(handler=run_status)
    sync = commands.add_parser(
        "sync",
        help="run (or resume) a full sync now, in the foreground",
        description="Resume the running full sync, or start one, and run it to its end. "
        "While a daemon runs it, follow it (and take it over if that daemon stops). "
        "Ctrl-C leaves it resumable. Exit 0 when done, 1 when it stopped on an error.",
    )
    sync.set_defaults(handler=run_sync)


# --- status ---------------------------------------------------------------------------


async def run_status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    interval = timedelta(seconds=settings.directory.resync_interval)
    async with open_pool(database_dsn(args)) as pool:
        store = PostgresDirectorySyncStore(pool, actor=actor())
        running, done = await store.latest()
        counts = await store.counts()
    report = status_report(
        running,
        done,
        counts,
        utcnow(),
        enabled=settings.directory_enabled,
        resync_interval=interval,
    )
    out(to_json(report) if args.json else render_status(report, utcnow()))
    return 1 if args.check and report["attention"] else 0


def render_status(report: dict[str, Any], now: datetime) -> str:
    every = age(timedelta(seconds=report["resync_interval_seconds"]))
    enabled = f"enabled, a full sync every {every}" if report["enabled"] else "not enabled"
    lines = [f"directory: {enabled}"]
    lines.append(_render_sync("last sync", report["last"], now))
    if report["running"] is not None:
        lines.append(_render_sync("running sync", report["running"], now))
    users = report["users"]
    lines.append(
        f"users: {users['present']} present, {users['departed']} departed; "
        f"departments: {report['departments']}"
    )
    attention = report["attention"]
    lines.append(
        "needs attention:\n" + "\n".join(f"  {a}" for a in attention)
        if attention
        else "nothing needs attention"
    )
    return "\n".join(lines)


def _render_sync(title: str, sync: dict[str, Any] | None, now: datetime) -> str:
    if sync is None:
        return f"{title}: none"
    head = f"{title}: #{sync['id']} {sync['state']} ({sync['trigger']})"
    head += f", started {when(sync['started_at'])}"
    if sync["finished_at"] is not None:
        head += f", finished {when(sync['finished_at'])} ({age(now - sync['finished_at'])} ago)"
    lines = [
        head,
        f"  departments {sync['departments']}, users {sync['users']}, calls {sync['calls']}"
        + (
            f", {sync['departments_queued']} departments queued"
            if sync["state"] == "running"
            else ""
        ),
    ]
    if sync["lease_owner"] is not None:
        lines.append(f"  run by {sync['lease_owner']} (lease until {when(sync['lease_until'])})")
    if sync["last_error"]:
        lines.append(f"  last error: {sync['last_error']}")
    if sync["state"] == "running" and sync["retry_at"] is not None:
        lines.append(
            f"  failed {sync['attempts']} time(s) in a row; next try {when(sync['retry_at'])}"
        )
    return "\n".join(lines)


# --- sync -----------------------------------------------------------------------------


class Progress:
    """How a sync stands: one line rewritten in place on a terminal, else a log line at
    most every :data:`LOG_EVERY` seconds."""

    def __init__(self, terminal: TextIO | None) -> None:
        self.terminal = terminal
        self.width = 0
        self.started = time.monotonic()
        self.first_users: int | None = None
        self.logged = 0.0

    def text(self, run: SyncRun) -> str:
        if self.first_users is None:
            self.first_users = run.users
        elapsed = max(time.monotonic() - self.started, 1e-3)
        rate = (run.users - self.first_users) / elapsed
        queued = len(run.queue)
        return (
            f"sync #{run.id}: departments {run.departments - queued} done, {queued} queued"
            f" · users {run.users} · {rate:.1f} users/s · calls {run.calls}"
        )

    def show(self, run: SyncRun) -> None:
        self._emit(self.text(run), run, "directory sync progress")

    def follow(self, run: SyncRun) -> None:
        owner = run.lease_owner or "nobody (waiting to retry)"
        self._emit(f"following {owner}: " + self.text(run), run, "following a running sync")

    def _emit(self, text: str, run: SyncRun, message: str) -> None:
        if self.terminal is not None:
            self.terminal.write("\r" + text.ljust(self.width))
            self.terminal.flush()
            self.width = max(self.width, len(text))
            return
        now = time.monotonic()
        if now - self.logged >= LOG_EVERY or run.state != "running":
            self.logged = now
            extra = {"action": "directory_sync_progress", "sync_id": run.id}
            logger.info("%s: %s", message, text, extra=extra)

    def close(self) -> None:
        if self.terminal is not None and self.width:
            self.terminal.write("\r" + " " * self.width + "\r")
            self.terminal.flush()
            self.width = 0


async def run_sync(args: argparse.Namespace) -> int:
    settings = settings_from(args).model_copy(update={"replica_name": actor()})
    progress = Progress(sys.stderr if sys.stderr.isatty() else None)
    async with App(settings) as app:
        try:
            outcome, run = await app.directory_sync.sync_now(
                progress.show, following=progress.follow
            )
        except asyncio.CancelledError:
            progress.close()
            sys.stderr.write(
                "syncd: interrupted; the sync resumes where it stopped "
                "(`syncd directory sync`, or a daemon with the directory enabled)\n"
            )
            raise
        finally:
            progress.close()
    took = age(timedelta(seconds=time.monotonic() - progress.started))
    counts = f"{run.departments} departments, {run.users} users, {run.calls} calls"
    if outcome == "done":
        out(f"directory sync #{run.id} done in {took}: {counts}")
        return 0
    if outcome == "lost":
        out(f"directory sync #{run.id} was taken over by another replica ({counts} so far)")
        return 1
    out(
        f"directory sync #{run.id} stopped on an error ({counts} so far): {run.last_error}\n"
        "it is resumable: `syncd directory sync`, or a daemon with the directory enabled "
        "retries it"
    )
    return 1
