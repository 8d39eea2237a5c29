"""``syncd status`` counts a business database's outbox rows not relayed yet, and says
when it cannot reach the database (without its password)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from syncd.cli import main
from syncd.commands.config import render_toml
from tests.mysql import MySQLDb

from .conftest import Roles
from .test_mysql_relay import Business, relay_all


@pytest.fixture
def business(mysql_database: MySQLDb) -> Business:
    return Business(mysql_database)


def _config(path: Path, roles: Roles, erp_dsn: str) -> str:
    data = {
        "database": {"dsn": roles.app},
        "dingtalk": {"app_key": "dingstatus", "app_secret": "status-secret"},
        "databases": {"erp": {"dsn": erp_dsn, "connect_timeout": 2.0}},
        "kinds": {"leave": {"process_code": "PROC-LEAVE", "database": "erp"}},
    }
    path.write_text(render_toml(data), encoding="utf-8")
    return str(path)


def _status(config: str, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    capsys.readouterr()
    assert main(["--config", config, "status", "--json"]) in (0, 1)
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_status_counts_rows_not_relayed_per_database(
    business: Business, roles: Roles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path / "syncd.toml", roles, business.db.daemon)
    rows = [{"kind": "leave", "key": f"L-{n}", "payload": "{}"} for n in range(3)]
    assert business.insert(rows) == [True] * 3
    report = _status(config, capsys)
    assert report["databases"]["erp"]["waiting"] == 3
    assert report["databases"]["erp"]["age_seconds"] >= 0
    asyncio.run(relay_all(business, roles.app))
    assert _status(config, capsys)["databases"]["erp"]["waiting"] == 0


def test_status_names_an_unreachable_database_without_its_password(
    roles: Roles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path / "syncd.toml", roles, "mysql://syncd:s3cr3t-pw@127.0.0.1:9/erp")
    capsys.readouterr()
    code = main(["--config", config, "status"])
    out = capsys.readouterr().out
    assert code == 0
    assert "business database erp: cannot count its outbox" in out
    assert "s3cr3t-pw" not in out
    capsys.readouterr()
    assert main(["--config", config, "status", "--check"]) == 1
