"""``syncd capture --database``: capture triggers in a MariaDB/MySQL business database.

The application's user owns its database and writes its table; a DBA who is no
superuser (TRIGGER, LOCK TABLES and SELECT on the database, the grants the definer gets
with GRANT OPTION, CREATE USER and SET USER) installs the capture; the triggers run as
the locked ``syncd_capture`` account. Outbox rows are compared as data: the payload is
the row, every column, with the explicit forms of docs/mysql.md.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.cli import main
from syncd.db.mysql import capture, migrations
from syncd.db.mysql.capture_ddl import MySQLCaptureSpec, quote
from syncd.db.mysql.engine import create_engine
from syncd.db.mysql.url import MySQLDatabase
from syncd.errors import CaptureError
from tests.mysql import MySQLDb, mysql_run

ZONE = "+08:00"  # the application's DATETIME zone ([databases.erp] time_zone)
_tables = itertools.count(1)


@dataclass(frozen=True)
class Rig:
    db: MySQLDb
    dba: str  # the installer's URL

    def engine(self) -> Any:
        return create_engine(MySQLDatabase("erp", self.dba, time_zone=ZONE))

    def outbox(self) -> list[dict[str, Any]]:
        rows = mysql_run(
            self.db.app, "SELECT kind, business_key, action, payload FROM syncd_outbox ORDER BY id"
        )
        return [{**r, "payload": json.loads(r["payload"], parse_float=Decimal)} for r in rows]

    def clear(self) -> None:
        mysql_run(self.db.app, "DELETE FROM syncd_outbox")


@pytest.fixture
async def rig(mysql_database: MySQLDb) -> AsyncIterator[Rig]:
    engine = create_engine(MySQLDatabase("erp", mysql_database.app))
    await migrations.apply(engine, "erp")  # as the application's user, who owns the database
    await engine.dispose()
    name = mysql_database.daemon_account.split("'")[1].replace("_syncd", "_dba")
    password = "dba-" + name
    db = f"`{mysql_database.name}`"
    for statement in (
        f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'",
        f"GRANT SELECT, TRIGGER, LOCK TABLES ON {db}.* TO '{name}'@'%' WITH GRANT OPTION",
        f"GRANT INSERT ON {db}.`syncd_outbox` TO '{name}'@'%' WITH GRANT OPTION",
        f"GRANT CREATE USER, SET USER ON *.* TO '{name}'@'%'",
    ):
        mysql_run(mysql_database.admin, statement)
    dba = mysql_database.app.replace(mysql_database.app.split("//")[1].split("@")[0], "")
    dba = dba.replace("//@", f"//{name}:{password}@")
    try:
        yield Rig(mysql_database, dba)
    finally:
        mysql_run(mysql_database.admin, f"DROP USER IF EXISTS '{name}'@'%'")


async def install(rig: Rig, spec: MySQLCaptureSpec) -> None:
    engine = rig.engine()
    try:
        await capture.install(engine, spec, ZONE)
    finally:
        await engine.dispose()


# --- table shapes: the payload is the row ----------------------------------------------

TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12
) | st.sampled_from(["已提交", "😀 emoji", "O'Brien", "back\\slash"])
NAMES = st.sampled_from(
    ["状态", "申请人", "amount", "a b", "we`ird", 'quo"te', "it's", "NEW", "order", "日期"]
)
DATETIMES = st.datetimes(datetime(2001, 1, 1), datetime(2030, 12, 31))


def _iso(at: datetime, zone: str) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + zone


# column type -> (values drawn, how the payload carries one)
TYPES: dict[str, tuple[st.SearchStrategy[Any], Any]] = {
    "INT": (st.integers(-(2**31), 2**31 - 1), lambda v: v),
    "VARCHAR(40)": (TEXT, lambda v: v),
    "DECIMAL(12,2)": (
        st.decimals(-(10**9), 10**9, places=2, allow_nan=False, allow_infinity=False),
        lambda v: v,
    ),
    "DATETIME(6)": (DATETIMES, lambda v: _iso(v, ZONE)),
    # written in the session's +08:00: the payload is the instant in UTC
    "TIMESTAMP(6) NULL": (DATETIMES, lambda v: _iso(v - timedelta(hours=8), "+00:00")),
    "BIT(8)": (st.integers(0, 255), lambda v: v),
    "BLOB": (st.binary(max_size=80), lambda v: base64.b64encode(v).decode()),
    "ENUM('a','b','是')": (st.sampled_from(["a", "b", "是"]), lambda v: v),
    "SET('x','y')": (st.sampled_from(["", "x", "y", "x,y"]), lambda v: v),
    "JSON": (
        st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
        lambda v: v,
    ),
    "DATE": (st.dates(), lambda v: v.isoformat()),
    "BOOLEAN": (st.booleans(), int),
}


@st.composite
def shapes(draw: st.DrawFn) -> list[tuple[str, str, Any]]:
    """(column name, type, value or None) for each column but the key."""
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    columns = []
    for name in names:
        sql_type = draw(st.sampled_from(sorted(TYPES)))
        value = draw(st.none() | TYPES[sql_type][0])
        columns.append((name, sql_type, value))
    return columns


def _param(sql_type: str, value: Any) -> Any:
    if sql_type == "JSON" and value is not None:
        return json.dumps(value, ensure_ascii=False)
    if sql_type.startswith("DATETIME") or sql_type.startswith("TIMESTAMP"):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f") if value is not None else None
    return value


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(columns=shapes(), key=st.integers(1, 10**12))
async def test_the_payload_is_the_whole_row_for_any_table_shape(
    rig: Rig, columns: list[tuple[str, str, Any]], key: int
) -> None:
    table = f"申请_{next(_tables)}"
    ddl = ", ".join(f"{quote(n)} {t}" for n, t, _ in columns)
    mysql_run(rig.db.app, f"CREATE TABLE {quote(table)} (id BIGINT PRIMARY KEY, {ddl})")
    try:
        await install(rig, MySQLCaptureSpec("leave", table, "id"))
        names = ", ".join(["id", *(quote(n) for n, _, _ in columns)])
        marks = ", ".join(["%s"] * (len(columns) + 1))
        values = [key, *(_param(t, v) for _, t, v in columns)]
        rig.clear()
        mysql_run(rig.db.app, f"INSERT INTO {quote(table)} ({names}) VALUES ({marks})", *values)
        expected = {"id": key} | {n: None if v is None else TYPES[t][1](v) for n, t, v in columns}
        assert rig.outbox() == [
            {"kind": "leave", "business_key": str(key), "action": "submit", "payload": expected}
        ]
    finally:
        mysql_run(rig.db.app, f"DROP TABLE {quote(table)}")


# --- transitions: exactly the rows where a condition becomes true -----------------------

STATUSES = st.sampled_from(["draft", "submitted", "withdrawn", "已提交", None])
OPS = st.lists(
    st.tuples(
        st.sampled_from(["insert", "update", "note", "delete"]),
        st.integers(1, 3),
        STATUSES,
        st.booleans(),  # through a write-back session of syncd's
    ),
    max_size=14,
)
TRANSITION_TABLE = (
    "CREATE TABLE `leave request` (`编号` VARCHAR(20) PRIMARY KEY, status VARCHAR(20), "
    "note VARCHAR(20)) DEFAULT CHARSET=utf8mb4"
)
WHEN = "NEW.status IN ('submitted', '已提交')"
CANCEL = "NEW.status = 'withdrawn' AND NEW.`编号` NOT LIKE 'x%'"


@pytest.fixture
async def transitions(rig: Rig) -> AsyncIterator[Rig]:
    mysql_run(rig.db.app, TRANSITION_TABLE)
    rig.db.grant(
        f"GRANT SELECT, UPDATE, DELETE, INSERT ON `leave request` TO {rig.db.daemon_account}"
    )
    await install(rig, MySQLCaptureSpec("leave", "leave request", "编号", WHEN, CANCEL))
    yield rig


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=OPS)
async def test_rows_appear_exactly_when_a_condition_becomes_true(
    transitions: Rig, ops: list[tuple[str, int, str | None, bool]]
) -> None:
    rig = transitions
    mysql_run(rig.db.app, "DELETE FROM `leave request`")
    rig.clear()
    # syncd's own sessions (as the write-back target opens them) set @syncd_writing_back
    syncd = create_engine(MySQLDatabase("erp", rig.db.daemon))
    rows: dict[str, dict[str, Any]] = {}
    expected: list[dict[str, Any]] = []
    try:
        for op, n, status, by_syncd in ops:
            key = f"k{n}"
            old = rows.get(key)
            new = None
            if op == "insert" and old is None:
                new = {"编号": key, "status": status, "note": None}
                statement = "INSERT INTO `leave request` VALUES (%s, %s, NULL)"
                params: tuple[Any, ...] = (key, status)
            elif op in ("update", "note") and old is not None:
                column = "status" if op == "update" else "note"
                new = {**old, column: status}
                statement = f"UPDATE `leave request` SET {column} = %s WHERE `编号` = %s"
                params = (status, key)
            elif op == "delete" and old is not None:
                statement, params = "DELETE FROM `leave request` WHERE `编号` = %s", (key,)
            else:
                continue
            if by_syncd:
                async with syncd.begin() as conn:
                    await conn.exec_driver_sql(statement, params)
            else:
                mysql_run(rig.db.app, statement, *params)
            if new is None:
                rows.pop(key)
                continue
            rows[key] = new
            if by_syncd:
                continue
            for action, values in (("submit", ("submitted", "已提交")), ("cancel", ("withdrawn",))):
                if new["status"] in values and (old is None or old["status"] not in values):
                    expected.append(
                        {"kind": "leave", "business_key": key, "action": action, "payload": new}
                    )
    finally:
        await syncd.dispose()
    assert rig.outbox() == expected


# --- refusals ---------------------------------------------------------------------------


async def test_refusals_name_what_is_wrong(rig: Rig) -> None:
    mysql_run(rig.db.app, "CREATE TABLE t (id INT PRIMARY KEY, status VARCHAR(9))")
    mysql_run(rig.db.app, "CREATE TABLE u (id INT PRIMARY KEY)")
    cases = [
        (MySQLCaptureSpec("k", "nope", "id"), "table 'nope' does not exist"),
        (MySQLCaptureSpec("k", "t", "idd"), "column 'idd' does not exist in"),
        (MySQLCaptureSpec("k", "t", "id", "NEW.stat = 1"), "Unknown column 'NEW.stat'"),
        (MySQLCaptureSpec("k", "t", "id", "NEW.status = "), "not a valid condition"),
        (MySQLCaptureSpec("k", "t", "id", "1; DROP TABLE u"), "without ';'"),
        (MySQLCaptureSpec("k", "t", "id", "1) OR (1"), "parentheses do not balance"),
        (MySQLCaptureSpec("k", "t", "id", None, "NEW.status = 'x' -- c"), "without comments"),
        (MySQLCaptureSpec("k", "syncd_outbox", "id"), "syncd's own tables"),
    ]
    for spec, message in cases:
        with pytest.raises(CaptureError, match=message.replace("(", r"\(")):
            await install(rig, spec)
    await install(rig, MySQLCaptureSpec("k", "t", "id", "NEW.status = 'on'"))
    with pytest.raises(CaptureError, match=r"kind 'k' is already captured on .*\.t "):
        await install(rig, MySQLCaptureSpec("k", "u", "id"))
    mysql_run(
        rig.db.admin,
        "CREATE TRIGGER syncd_capture_j_insert AFTER INSERT ON u FOR EACH ROW SET @x = 1",
    )
    with pytest.raises(CaptureError, match="syncd_capture_j_insert that is not a syncd capture"):
        await install(rig, MySQLCaptureSpec("j", "u", "id"))
    mysql_run(rig.db.app, "INSERT INTO t VALUES (1, 'on')")  # the capture of t still works
    assert [r["business_key"] for r in rig.outbox()] == ["1"]


# --- privileges -------------------------------------------------------------------------


async def test_the_application_gains_nothing_through_the_trigger(rig: Rig, mysql_server) -> None:
    """The triggers run as a locked account that holds nothing but INSERT on the outbox
    and SELECT, TRIGGER on captured tables: an invoker's-rights function of the
    application's that a condition calls cannot read what the application may not."""
    secret = f"{rig.db.name}_secret"
    mysql_run(mysql_server, f"CREATE DATABASE `{secret}`")
    try:
        mysql_run(mysql_server, f"CREATE TABLE `{secret}`.s (v INT)")
        mysql_run(mysql_server, f"INSERT INTO `{secret}`.s VALUES (42)")
        mysql_run(rig.db.app, "CREATE TABLE t (id INT PRIMARY KEY, status VARCHAR(9))")
        mysql_run(
            rig.db.app,
            "CREATE FUNCTION peek() RETURNS INT SQL SECURITY INVOKER READS SQL DATA RETURN 1",
        )
        # a condition calling a function: the installer and the definer may execute it
        dba = rig.dba.split("//")[1].split(":")[0]
        mysql_run(rig.db.admin, f"GRANT EXECUTE ON FUNCTION peek TO '{dba}'@'%'")
        mysql_run(rig.db.admin, "GRANT EXECUTE ON FUNCTION peek TO 'syncd_capture'@'localhost'")
        await install(rig, MySQLCaptureSpec("k", "t", "id", "NEW.status = 'on' AND peek() = 1"))
        mysql_run(rig.db.app, "INSERT INTO t VALUES (1, 'on')")
        assert len(rig.outbox()) == 1
        shown = mysql_run(mysql_server, "SHOW GRANTS FOR 'syncd_capture'@'localhost'")
        grants = {g for row in shown for g in row.values()}
        db = rig.db.name
        assert f"GRANT SELECT, TRIGGER ON `{db}`.`t` TO `syncd_capture`@`localhost`" in grants
        assert f"GRANT INSERT ON `{db}`.`syncd_outbox` TO `syncd_capture`@`localhost`" in grants
        assert not [g for g in grants if " ON *.* " in g and "USAGE" not in g]
        # the application swaps in a body reading the secret (keeping the grant name)
        mysql_run(
            rig.db.app,
            "CREATE OR REPLACE FUNCTION peek() RETURNS INT SQL SECURITY INVOKER READS SQL DATA "
            f"RETURN (SELECT v FROM `{secret}`.s)",
        )
        with pytest.raises(Exception, match="denied to user 'syncd_capture'"):
            mysql_run(rig.db.app, "INSERT INTO t VALUES (2, 'on')")
        assert len(rig.outbox()) == 1
        locked = mysql_run(
            mysql_server,
            "SELECT JSON_VALUE(priv, '$.account_locked') AS locked FROM mysql.global_priv "
            "WHERE user = 'syncd_capture'",
        )
        assert locked[0]["locked"] in ("1", "true")
    finally:
        mysql_run(mysql_server, f"DROP DATABASE `{secret}`")


# --- the commands -----------------------------------------------------------------------


async def test_capture_commands_round_trip(rig: Rig, tmp_path, capsys) -> None:
    mysql_run(rig.db.app, "CREATE TABLE leave_request (id INT PRIMARY KEY, status VARCHAR(9))")
    config = tmp_path / "syncd.toml"
    (tmp_path / "erp.dsn").write_text(rig.dba)
    config.write_text(
        f'[databases.erp]\ndsn_file = "{tmp_path / "erp.dsn"}"\ntime_zone = "{ZONE}"\n\n'
        '[kinds.leave]\nprocess_code = "PROC-LEAVE"\ndatabase = "erp"\n'
    )

    async def cli(*args: str) -> int:
        return await asyncio.to_thread(main, ["--config", str(config), "capture", *args])

    target = ["--database", "erp", "--kind", "leave", "--table", "leave_request"]
    when = ["--key", "id", "--when", "NEW.status = 'sent'"]
    assert await cli("sql", *target, *when) == 0
    ddl = capsys.readouterr().out
    assert "CREATE DEFINER = 'syncd_capture'@'localhost' TRIGGER" in ddl
    assert "AFTER UPDATE" in ddl and "DELIMITER //" in ddl
    assert await cli("list", "--database", "erp") == 0
    assert "no capture triggers installed" in capsys.readouterr().out
    assert await cli("add", *target, *when) == 0
    assert "syncd_capture_leave_update" in capsys.readouterr().out
    assert await cli("list", "--database", "erp") == 0
    listed = capsys.readouterr().out
    assert "leave: " in listed and "key=id when=NEW.status = 'sent'" in listed
    assert "MISSING" not in listed
    mysql_run(rig.db.admin, f"DROP TRIGGER `{rig.db.name}`.syncd_capture_leave_update")
    assert await cli("list", "--database", "erp") == 0
    assert "TRIGGER MISSING: update" in capsys.readouterr().out
    assert await cli("add", *target[:2], "--kind", "other", *target[4:], "--key", "id") == 2
    assert "not a kind of the configuration" in capsys.readouterr().err
    assert await cli("add", *target[:4], "--table", "nope", "--key", "id") == 2
    assert await cli("remove", *target) == 0
    assert await cli("list", "--database", "erp") == 0
    assert "no capture triggers installed" in capsys.readouterr().out
    assert await cli("remove", *target) == 2
