"""``syncd run`` waits for a database it cannot reach at start: /healthz and /readyz answer
meanwhile (unready: database unreachable), every attempt is logged with its reason and
the next delay, and once PostgreSQL answers the daemon starts. A DSN that does not parse
or a login PostgreSQL refuses ends it at once (exit 2). No sleeping: the waits between
attempts are the test's own."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from syncd.commands.config import render_toml
from syncd.embedded import free_port
from syncd.runner import Runner, StartWait

from .conftest import config_data

DEADLINE = 20.0


class Gate:
    """A port that refuses connections until :meth:`open`, then forwards them to
    PostgreSQL: a database that is not up yet, and then is."""

    def __init__(self, dsn: str) -> None:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
        self.target = (str(info.get("host") or "127.0.0.1"), int(info.get("port") or 5432))
        self.port = free_port()
        self.dsn = psycopg.conninfo.make_conninfo(dsn, host="127.0.0.1", port=str(self.port))
        self.server: asyncio.Server | None = None

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            finally:
                dst.close()

        await asyncio.gather(
            pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True
        )


class Waits:
    """The runner's sleep between attempts: records the delay, tells the test, and
    returns when the test says so."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.asleep = asyncio.Event()
        self.wake = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.asleep.set()
        await self.wake.wait()
        self.wake.clear()

    async def next(self) -> None:
        """Let the runner try again, and wait until that attempt failed too."""
        self.asleep.clear()
        self.wake.set()
        async with asyncio.timeout(DEADLINE):
            await self.asleep.wait()


def actions(caplog: pytest.LogCaptureFixture, action: str) -> list[Any]:
    return [r for r in caplog.records if getattr(r, "action", None) == action]


async def test_run_waits_for_the_database_and_says_why(env, caplog):
    caplog.set_level(logging.INFO, logger="syncd.runner")
    gate, waits, stop = Gate(env.daemon_dsn), Waits(), asyncio.Event()
    settings = env.settings(events={"stream": False}, http={"port": 0}, database={"dsn": gate.dsn})
    runner = Runner(env.daemon(settings).app, wait=StartWait(stop, sleep=waits.sleep))
    entering = asyncio.create_task(runner.__aenter__())
    try:
        async with asyncio.timeout(DEADLINE):
            await waits.asleep.wait()
        await waits.next()
        assert runner.listening is not None and not runner.opened
        async with httpx.AsyncClient(base_url=runner.listening.base_url) as http:
            assert (await http.get("/healthz")).json()["status"] == "ok"
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["status"] == "unready"
            check = ready.json()["checks"]["database"]
            assert check["reason"] == "database unreachable" and check["attempts"] == 2
            assert "Connection refused" in check["error"]
            assert check["next_attempt_in"] == waits.delays[-1]
            metrics = (await http.get("/metrics")).text
            assert "\nsyncd_database_up 0.0\n" in metrics  # SyncdDatabaseUnreachable fires

        logged = actions(caplog, "database_wait")
        assert [(r.attempt, r.retry_in) for r in logged] == [
            (1, waits.delays[0]),
            (2, waits.delays[1]),
        ]
        assert all("cannot connect to PostgreSQL" in r.reason for r in logged)
        assert 0.5 <= waits.delays[0] <= 1.0 <= waits.delays[1] <= 2.0  # backoff
        assert not actions(caplog, "daemon_start")

        await gate.open()
        waits.wake.set()
        async with asyncio.timeout(DEADLINE):
            await entering
        assert runner.opened
        [reachable] = actions(caplog, "database_reachable")
        assert reachable.attempts == 3 and actions(caplog, "daemon_start")
        async with httpx.AsyncClient(base_url=runner.listening.base_url) as http:
            assert (await http.get("/readyz")).status_code == 200
    finally:
        entering.cancel()
        await runner.close()
        await gate.close()


async def test_stopped_while_waiting_it_opens_nothing(env):
    gate, stop = Gate(env.daemon_dsn), asyncio.Event()

    async def sleep(seconds: float) -> None:
        stop.set()  # SIGTERM while it waits

    settings = env.settings(events={"stream": False}, http={"port": 0}, database={"dsn": gate.dsn})
    async with Runner(env.daemon(settings).app, wait=StartWait(stop, sleep=sleep)) as runner:
        assert not runner.opened
        await runner.run(stop)  # returns at once


def run_syncd(tmp_path: Path, dsn: str, port: int = 0) -> subprocess.CompletedProcess[str]:
    """``syncd run`` in a process of its own (it installs signal handlers)."""
    config = tmp_path / "syncd.toml"
    config.write_text(render_toml(config_data(dsn, http={"port": port})), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "syncd", "--config", str(config), "run"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_dsn_that_cannot_work_or_a_refused_login_exits_2_at_once(tmp_path, daemon_dsn):
    wrong = {
        "postgresql://syncd@[::1/x": "database.dsn is not a valid connection string",
        "host=127.0.0.1 dbname": "database.dsn is not a valid connection string",
        psycopg.conninfo.make_conninfo(daemon_dsn, user="no_such_role_here"): (
            'PostgreSQL refused the login: .*role "no_such_role_here" does not exist'
        ),
        psycopg.conninfo.make_conninfo(daemon_dsn, dbname="no_such_database"): (
            'PostgreSQL refused the login: .*database "no_such_database" does not exist'
        ),
    }
    for dsn, message in wrong.items():
        result = run_syncd(tmp_path, dsn)
        assert result.returncode == 2, result.stderr
        assert re.search(message, result.stderr), result.stderr
        assert "database_wait" not in result.stderr


def test_a_port_held_by_another_process_exits_2_naming_it(tmp_path, env):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = run_syncd(tmp_path, env.daemon_dsn, port)
    assert result.returncode == 2, result.stderr
    assert f"cannot serve [http] on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
