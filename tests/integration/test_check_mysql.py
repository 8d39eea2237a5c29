"""``syncd check`` on a MariaDB/MySQL business database, on the real server: syncd's
user missing one grant at a time (drawn) is told exactly that one, with the GRANT
statement that fixes it (run here, after which the check passes); a footprint that is
behind names ``syncd migrate --database``; a server out of reach is exit 1 and a refused
login exit 2, neither repeating the password."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.cli import main
from syncd.commands.config import render_toml
from syncd.db.mysql import migrations
from syncd.db.mysql.engine import create_engine
from syncd.db.mysql.grants import FOOTPRINT
from syncd.db.mysql.url import MySQLDatabase
from syncd.db.mysql.verify import DatabaseCheck, verify
from syncd.settings_kinds import WriteBackSettings
from tests.mysql import MySQLDb, mysql_run

TABLE = (
    "CREATE TABLE expense_claim (id BIGINT PRIMARY KEY, approval_status VARCHAR(20), "
    "approver TEXT, decided_at DATETIME(6)) DEFAULT CHARSET=utf8mb4"
)
PROCEDURE = (
    "CREATE PROCEDURE on_trip_result(business_key VARCHAR(255), outcome JSON) "
    "BEGIN UPDATE expense_claim SET approver = business_key WHERE FALSE; END"
)
CONFIGS = {
    "expense": WriteBackSettings(
        table="expense_claim",
        key_column="id",
        columns={"approval_status": "status", "approver": "approver", "decided_at": "finished_at"},
    ),
    "trip": WriteBackSettings(procedure="on_trip_result"),
}
SECRET = "s3cr3t-pw-4711"


def every_grant(db: MySQLDb) -> list[str]:
    """Each privilege syncd's user needs, one GRANT each, as the check words them."""
    account, d = db.daemon_account, f"`{db.name}`"
    grants = [
        f"GRANT {privilege} ON {d}.`{table}` TO {account}"
        for table, privileges in FOOTPRINT.items()
        for privilege in privileges.split(", ")
    ]
    grants.append(f"GRANT SELECT (`id`) ON {d}.`expense_claim` TO {account}")
    grants += [
        f"GRANT UPDATE (`{column}`) ON {d}.`expense_claim` TO {account}"
        for column in CONFIGS["expense"].columns
    ]
    grants.append(f"GRANT EXECUTE ON PROCEDURE {d}.`on_trip_result` TO {account}")
    return grants


def _run(coroutine: Any) -> Any:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def check(dsn: str, configs: Mapping[str, WriteBackSettings] = CONFIGS) -> DatabaseCheck:
    async def run() -> DatabaseCheck:
        database = MySQLDatabase("erp", dsn, connect_timeout=2.0)
        engine = create_engine(database)
        try:
            return await verify(engine, database, configs)
        finally:
            await engine.dispose()

    return _run(run())  # type: ignore[no-any-return]


def migrate(db: MySQLDb) -> None:
    async def run() -> None:
        async with migrations.opened(MySQLDatabase("erp", db.app)) as engine:
            await migrations.apply(engine, "erp")

    _run(run())


@pytest.fixture
def business(mysql_database: MySQLDb) -> MySQLDb:
    mysql_run(mysql_database.app, TABLE)
    mysql_run(mysql_database.app, PROCEDURE)
    migrate(mysql_database)
    return mysql_database


def regrant(db: MySQLDb, grants: list[str]) -> None:
    mysql_run(db.admin, f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {db.daemon_account}")
    db.grant(*grants)


def test_every_grant_given_the_check_passes(business: MySQLDb) -> None:
    regrant(business, every_grant(business))
    found = check(business.daemon)
    assert found.fine, found
    assert found.version == "0001"


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_missing_grant_is_named_with_the_grant_that_fixes_it(
    business: MySQLDb, data: st.DataObject
) -> None:
    grants = every_grant(business)
    missing = data.draw(st.sampled_from(grants), label="missing")
    regrant(business, [g for g in grants if g != missing])
    found = check(business.daemon)
    assert found.unreachable is None
    [problem] = found.problems
    assert problem.endswith(missing), problem
    business.grant(problem[problem.index("GRANT ") :])  # the statement as printed
    assert check(business.daemon).fine


def test_a_footprint_behind_names_syncd_migrate(mysql_database: MySQLDb) -> None:
    mysql_run(mysql_database.app, TABLE)
    found = check(mysql_database.app, {"expense": CONFIGS["expense"]})
    assert found.unreachable is None
    assert found.problems == [
        "business database erp: syncd's tables there are behind (0001_initial): "
        "run `syncd migrate --database erp`"
    ]


def test_a_table_or_column_that_is_not_there_is_named(business: MySQLDb) -> None:
    configs = {
        "gone": WriteBackSettings(table="no_such", key_column="id", columns={"x": "status"}),
        "typo": WriteBackSettings(
            table="expense_claim", key_column="id", columns={"stat": "status"}
        ),
    }
    found = check(business.app, configs)
    assert found.problems == [
        "[kinds.gone.write_back] table 'no_such' does not exist in business database erp",
        "[kinds.typo.write_back] column 'stat' does not exist in table 'expense_claim' of "
        "business database erp",
    ]


def _config(path: Path, dsn: str, pg_dsn: str) -> list[str]:
    data = {
        "database": {"dsn": pg_dsn},
        "dingtalk": {"app_key": "dingcheck", "app_secret": "check-secret"},
        "databases": {"erp": {"dsn": dsn, "connect_timeout": 2.0}},
        "kinds": {
            "expense": {
                "process_code": "PROC-EXPENSE",
                "database": "erp",
                "write_back": CONFIGS["expense"].model_dump(exclude_defaults=True),
            }
        },
    }
    path.write_text(render_toml(data), encoding="utf-8")
    return ["--config", str(path), "check"]


def test_exit_codes(business: MySQLDb, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pg = "postgresql://nobody@127.0.0.1:9/none"  # never reached: the business check fails first
    regrant(business, every_grant(business)[1:])
    assert main(_config(tmp_path / "a.toml", business.daemon, pg)) == 2
    err = capsys.readouterr().err
    assert every_grant(business)[0] in err

    nowhere = f"mysql://syncd:{SECRET}@127.0.0.1:9/erp"
    assert main(_config(tmp_path / "b.toml", nowhere, pg)) == 1
    captured = capsys.readouterr()
    assert "cannot reach business database erp" in captured.err
    assert SECRET not in captured.out + captured.err

    refused = business.daemon.replace("@", "x@", 1)  # a wrong password
    password = refused.split("//", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert main(_config(tmp_path / "c.toml", refused, pg)) == 2
    captured = capsys.readouterr()
    assert "business database erp refused syncd's login" in captured.err
    assert password not in captured.out + captured.err
