"""The pipeline's in-process world, plus the command line run in-process against it.

``cli(...)`` runs ``syncd.cli.main`` in a worker thread (it starts its own event loop)
with a config file for the world's database, so the test's loop stays free to serve
the simulator; it returns the exit code, stdout and stderr. ``dingtalk`` serves the
simulator on loopback HTTP for the commands that call DingTalk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from syncd.cli import main
from syncd.commands.config import render_toml
from syncd.simulator import serve
from tests.integration.pipeline.conftest import (  # noqa: F401  (env is a fixture)
    APP_KEY,
    APP_SECRET,
    LEAVE_KIND,
    Env,
    env,
    settings_for,
)


def config_data(dsn: str, **sections: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "database": {"dsn": dsn},
        "dingtalk": {"app_key": APP_KEY, "app_secret": APP_SECRET},
        "kinds": {"leave": LEAVE_KIND},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return data


@dataclass
class Cli:
    capsys: pytest.CaptureFixture[str]
    config: Path
    calls: list[list[str]] = field(default_factory=list)

    def configure(self, data: dict[str, Any]) -> None:
        self.config.write_text(render_toml(data), encoding="utf-8")

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        args = ["--config", str(self.config), *argv]
        self.calls.append(args)
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        try:
            code = await asyncio.to_thread(main, args)
        finally:  # main() routes logging to this test's stderr; give pytest its own back
            for handler in list(root.handlers):
                root.removeHandler(handler)
            for handler in handlers:
                root.addHandler(handler)
            root.setLevel(level)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err


@pytest.fixture
async def world(env: Env) -> AsyncIterator[Env]:  # noqa: F811  (the fixture above)
    """The world with its fake clock moved to the wall clock, so the command line (which
    reads the wall clock) and the daemon under test (the fake one) agree on "now"."""
    await env.advance((datetime.now(UTC) - env.clock.now()).total_seconds())
    yield env


@pytest.fixture
def cli(world: Env, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    runner = Cli(capsys, tmp_path / "syncd.toml")
    runner.configure(config_data(world.daemon_dsn))
    return runner


@pytest.fixture
async def dingtalk(world: Env, cli: Cli) -> AsyncIterator[dict[str, str]]:
    """The world's simulator on a loopback port, and the command line pointed at it;
    yields the ``[dingtalk]`` URLs."""
    async with serve(world.sim) as server:
        urls = {"api_url": server.base_url, "oapi_url": server.base_url}
        cli.configure(config_data(world.daemon_dsn, dingtalk=urls))
        yield urls
