"""A kind whose business table is in a MariaDB/MySQL business database, through the
whole daemon: ``syncd migrate --database``, the App's start checks, and outcomes and live
status written into the MySQL row as syncd_daemon's MySQL user (only the grants of
docs/mysql.md). Outbox rows still enter through syncd's own PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from syncd.cli import main
from syncd.db.mysql.grants import footprint_grants, write_back_grants
from syncd.errors import ConfigError
from syncd.settings_kinds import WriteBackSettings
from tests.mysql import MySQLDb, mysql_run

from .conftest import LEAVE_KIND, Env

TABLE = (
    "CREATE TABLE leave_request (id BIGINT PRIMARY KEY, approval_status VARCHAR(20), "
    "instance_id VARCHAR(64), decided_at DATETIME(6), waiting_for TEXT, remark TEXT) "
    "DEFAULT CHARSET=utf8mb4"
)
WRITE_BACK = {
    "table": "leave_request",
    "key_column": "id",
    "columns": {
        "approval_status": "status",
        "instance_id": "instance_id",
        "decided_at": "finished_at",
        "waiting_for": "pending_approvers",
        "remark": "remark",
    },
    "status_map": {"approved": "APPROVED", "rejected": "REJECTED", "submitted": "已提交"},
    "progress": ["submitted"],
}


def kind() -> dict[str, Any]:
    return {**LEAVE_KIND, "database": "erp", "write_back": WRITE_BACK}


def config_file(tmp_path, mysql_database: MySQLDb) -> str:
    path = tmp_path / "syncd.toml"
    (tmp_path / "erp.dsn").write_text(mysql_database.app)
    path.write_text(f'[databases.erp]\ndsn_file = "{tmp_path / "erp.dsn"}"\n')
    return str(path)


def settings(env: Env, mysql_database: MySQLDb) -> Any:
    return env.settings(databases={"erp": {"dsn": mysql_database.daemon}}, kinds={"leave": kind()})


async def test_a_kind_in_a_business_database_is_written_back_there(
    env: Env, mysql_database: MySQLDb, tmp_path, capsys
) -> None:
    mysql_run(mysql_database.app, TABLE)
    config = config_file(tmp_path, mysql_database)

    async def migrate(*args: str) -> int:  # the command runs its own event loop
        return await asyncio.to_thread(
            main, ["--config", config, "migrate", "--database", "erp", *args]
        )

    assert await migrate("--check") == 1
    assert "pending: 0001_initial" in capsys.readouterr().out
    assert await migrate("--dry-run") == 0
    assert "CREATE TABLE IF NOT EXISTS syncd_outbox" in capsys.readouterr().out
    assert await migrate() == 0
    assert "applied 0001_initial" in capsys.readouterr().out
    assert await migrate("--check") == 0
    account = mysql_database.daemon_account
    mysql_database.grant(
        *footprint_grants(account), *write_back_grants(account, WriteBackSettings(**WRITE_BACK))
    )
    key = env.submit_leave(days=2, reason="回家 🏠")
    mysql_run(mysql_database.app, "INSERT INTO leave_request (id) VALUES (%s)", key)
    async with env.daemon(settings(env, mysql_database)) as daemon:
        await daemon.drain()
        [row] = mysql_run(mysql_database.admin, "SELECT * FROM leave_request")
        assert row["approval_status"] == "已提交" and row["instance_id"]
        await env.advance(120)
        await daemon.drain()
    [row] = mysql_run(mysql_database.admin, "SELECT * FROM leave_request")
    [(instance_id, state, written)] = env.sql(
        "SELECT instance_id, state, written_back_at IS NOT NULL FROM syncd.approval"
    )
    assert (state, written) == ("approved", True)
    assert row["approval_status"] == "APPROVED" and row["instance_id"] == instance_id
    assert row["decided_at"] is not None and row["waiting_for"] is None
    [ledger] = mysql_run(mysql_database.admin, "SELECT status, written FROM syncd_writeback")
    assert (ledger["status"], ledger["written"]) == ("approved", 1)


async def test_the_daemon_refuses_to_start_before_the_business_database_is_migrated(
    env: Env, mysql_database: MySQLDb
) -> None:
    mysql_run(mysql_database.app, TABLE)
    owner = env.settings(databases={"erp": {"dsn": mysql_database.app}}, kinds={"leave": kind()})
    with pytest.raises(ConfigError, match=r"behind \(0001_initial\): run `syncd migrate --da"):
        async with env.daemon(owner):
            pass


def test_migrate_database_needs_a_declared_database_or_a_dsn(tmp_path, capsys) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text("")
    assert main(["--config", str(config), "migrate", "--database", "erp"]) == 2
    assert "no [databases.erp] in the configuration" in capsys.readouterr().err
    assert main(["migrate", "--database", "erp", "--dsn", "postgresql://u:pw-9@h/x"]) == 2
    err = capsys.readouterr().err
    assert "only mysql:// and mariadb://" in err and "pw-9" not in err
