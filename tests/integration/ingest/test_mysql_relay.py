"""The relay from a MariaDB/MySQL business database's ``syncd_outbox`` into
``syncd.outbox``, on real servers, as the roles of a deployment: the application's MySQL
user may only INSERT into ``syncd_outbox``, syncd's MySQL user has the grants of
docs/mysql.md, and syncd's PostgreSQL role is ``syncd_daemon`` (least_privilege.sql).

- rows drawn from the input space (Chinese, emoji, NULL originators, payloads of every
  JSON shape, unknown kinds and actions) end as the same decisions ingest makes for the
  same rows written into ``syncd.outbox``;
- a lost mark (syncd's commit made, the MySQL UPDATE refused) reads the rows again and
  inserts nothing twice;
- a row whose transaction commits after a higher id was relayed is relayed, once;
- two relays at once (two replicas) relay each row once, in id order;
- rows PostgreSQL refuses are quarantined, the rows behind them relayed; a row of a kind
  another database holds is parked.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import asyncmy
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.db.admin_store import open_pool
from syncd.db.mysql import migrations as mysql_migrations
from syncd.db.mysql.engine import create_engine
from syncd.db.mysql.grants import footprint_grants
from syncd.db.mysql.outbox import MySQLOutboxSource
from syncd.db.mysql.url import MySQLDatabase
from syncd.db.relay_store import PostgresRelayStore
from syncd.pipeline.relay import Relay
from syncd.settings_kinds import KindSettings
from syncd.testing import FakeClock
from tests.mysql import MySQLDb, mysql_run

from .conftest import KINDS, Roles, ingest_all, query, write

#: The same kinds, with their outbox in the business database ``erp``.
ERP_KINDS = {
    name: KindSettings(**{**kind.model_dump(exclude_unset=True), "database": "erp"})
    for name, kind in KINDS.items()
}
INSERT = (
    "INSERT INTO syncd_outbox (kind, business_key, action, payload, originator, request_id) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)


class Business:
    """The business database: syncd's footprint migrated, syncd's grants given, and an
    application user that may only INSERT into syncd_outbox."""

    def __init__(self, db: MySQLDb) -> None:
        self.db = db
        with ThreadPoolExecutor(1) as thread:  # usable from a test's event loop too
            thread.submit(asyncio.run, self._migrate()).result()
        db.grant(*footprint_grants(db.daemon_account))
        user, password = f"w{secrets.token_hex(6)}", secrets.token_hex(8)
        mysql_run(db.admin, f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        mysql_run(db.admin, f"GRANT INSERT ON `{db.name}`.`syncd_outbox` TO '{user}'@'%'")
        url = sa.make_url(db.admin).set(username=user, password=password)
        self.writer = url.render_as_string(hide_password=False)
        self.writer_account = f"'{user}'@'%'"

    async def _migrate(self) -> None:
        async with mysql_migrations.opened(MySQLDatabase("erp", self.db.app)) as engine:
            await mysql_migrations.apply(engine, "erp")

    def insert(self, rows: Sequence[Mapping[str, Any]]) -> list[bool]:
        """As the application, one statement each; False where MySQL refused the row."""
        done = []
        for row in rows:
            params = (
                row["kind"],
                row["key"],
                row.get("action", "submit"),
                row["payload"],
                row.get("originator"),
                row.get("request_id"),
            )
            try:
                mysql_run(self.writer, INSERT, *params)
            except Exception:  # MySQL refused the row: the application sees it
                done.append(False)
                continue
            done.append(True)
        return done

    def database(self) -> MySQLDatabase:
        return MySQLDatabase("erp", self.db.daemon)


@pytest.fixture
def business(mysql_database: MySQLDb) -> Business:
    return Business(mysql_database)


@asynccontextmanager
async def relay(business: Business, pg_dsn: str, **kw: Any) -> AsyncIterator[Relay]:
    engine = create_engine(business.database())
    try:
        async with open_pool(pg_dsn) as pool:
            source = MySQLOutboxSource("erp", engine, 30.0)
            yield Relay("erp", source, PostgresRelayStore(pool, actor="test"), FakeClock(), **kw)
    finally:
        await engine.dispose()


async def relay_all(business: Business, pg_dsn: str, **kw: Any) -> int:
    handled = 0
    async with relay(business, pg_dsn, **kw) as r:
        while done := await r.run_once():
            handled += done
    return handled


def unconsumed(business: Business) -> int:
    [row] = mysql_run(
        business.db.admin, "SELECT count(*) AS n FROM syncd_outbox WHERE consumed_at IS NULL"
    )
    return int(row["n"])


def relayed(roles: Roles) -> list[tuple[Any, ...]]:
    return query(
        roles.admin,
        "SELECT source_id, kind, business_key, payload, originator, request_id "
        "FROM syncd.outbox ORDER BY id",
    )


# --- the same decisions as rows written into syncd.outbox -----------------------------

CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
TEXT = st.one_of(
    st.text(CHARS, max_size=20), st.sampled_from(["请假", "年假 🏖️", "报销单 #12", "😀" * 5])
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
GOOD_PAYLOAD = st.fixed_dictionaries(
    {
        "applicant": st.sampled_from(["u1", "u2"]),
        "leave_type": TEXT,
        "start_date": st.just("2026-01-10"),
        "end_date": st.just("2026-01-11"),
        "days": st.integers(1, 5),
        "reason": TEXT,
        "amount": st.integers(1, 10**6),
        "note": TEXT,
        "dept": st.integers(1, 3),
    }
)
ROW = st.fixed_dictionaries(
    {
        "kind": st.one_of(st.sampled_from(["leave", "po"]), st.text(CHARS, max_size=12)),
        "key": st.one_of(st.sampled_from(["k1", "k2", "键三"]), st.text(CHARS, max_size=12)),
        "action": st.one_of(st.sampled_from(["submit", "cancel"]), TEXT),
        "payload": st.one_of(GOOD_PAYLOAD, JSON).map(lambda v: json.dumps(v, ensure_ascii=False)),
        "originator": st.one_of(st.none(), st.sampled_from(["u1", "u9"]), TEXT),
    }
)
DECISIONS = """
SELECT o.id, a.kind, a.business_key, a.round, a.state, a.last_error_code,
       a.last_error_message, a.payload, a.originator, a.dept_id, q.error_code
  FROM syncd.outbox o
  LEFT JOIN syncd.approval a ON a.outbox_id = o.id
  LEFT JOIN syncd.outbox_quarantine q ON q.outbox_id = o.id
 ORDER BY o.id, a.round
"""
EMPTY_PG = (
    "TRUNCATE syncd.outbox_quarantine, syncd.approval_event, syncd.approval, syncd.outbox, "
    "syncd.outbox_source RESTART IDENTITY CASCADE"
)


def test_relayed_rows_make_the_decisions_rows_written_into_syncd_outbox_make(
    roles: Roles, business: Business
) -> None:
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(ROW, min_size=1, max_size=6))
    def check(rows: list[dict[str, Any]]) -> None:
        query(roles.admin, EMPTY_PG)
        mysql_run(business.db.admin, "TRUNCATE TABLE syncd_outbox")
        written = business.insert(rows)
        kept = [row for row, ok in zip(rows, written, strict=True) if ok]
        asyncio.run(relay_all(business, roles.app))
        assert unconsumed(business) == 0
        asyncio.run(ingest_all(roles.app, kinds=ERP_KINDS))
        from_mysql = query(roles.admin, DECISIONS)
        query(roles.admin, EMPTY_PG)
        assert all(write(roles.writer, kept))
        asyncio.run(ingest_all(roles.app, kinds=KINDS))
        assert from_mysql == query(roles.admin, DECISIONS)

    check()


# --- exactly once -------------------------------------------------------------------


def test_a_lost_mark_reads_the_rows_again_and_inserts_nothing_twice(
    roles: Roles, business: Business
) -> None:
    rows = [{"kind": "leave", "key": f"k{n}", "payload": "{}"} for n in range(5)]
    assert all(business.insert(rows))
    table = f"`{business.db.name}`.`syncd_outbox`"
    # syncd's commit is made, the MySQL mark then refused (a real privilege error).
    mysql_run(business.db.admin, f"REVOKE UPDATE ON {table} FROM {business.db.daemon_account}")
    with pytest.raises(Exception, match="UPDATE command denied"):
        asyncio.run(relay_all(business, roles.app))
    assert len(relayed(roles)) == 5 and unconsumed(business) == 5
    for _ in range(2):  # lost twice: still once
        with pytest.raises(Exception, match="UPDATE command denied"):
            asyncio.run(relay_all(business, roles.app))
    mysql_run(business.db.admin, f"GRANT UPDATE ON {table} TO {business.db.daemon_account}")
    assert asyncio.run(relay_all(business, roles.app)) == 5
    assert [r[0] for r in relayed(roles)] == [1, 2, 3, 4, 5]
    assert unconsumed(business) == 0
    [(last_id, count)] = query(roles.admin, "SELECT last_id, relayed FROM syncd.outbox_source")
    assert (last_id, count) == (5, 5)


async def _connect(url: str) -> Any:
    u = sa.make_url(url)
    return await asyncmy.connect(
        host=u.host, port=u.port or 3306, user=u.username, password=u.password or "",
        database=u.database, charset="utf8mb4", autocommit=False,
    )  # fmt: skip


async def test_a_row_committed_after_a_higher_id_was_relayed_is_relayed_once(
    roles: Roles, business: Business
) -> None:
    slow, quick = await _connect(business.writer), await _connect(business.writer)
    try:
        async with slow.cursor() as cursor:  # takes id 1, commits last
            await cursor.execute(INSERT, ("leave", "slow", "submit", "{}", None, None))
        async with quick.cursor() as cursor:  # takes id 2, commits first
            await cursor.execute(INSERT, ("leave", "quick", "submit", "{}", None, None))
        await quick.commit()
        assert await relay_all(business, roles.app) == 1
        await slow.commit()
        assert await relay_all(business, roles.app) == 1
    finally:
        for conn in (slow, quick):
            await conn.ensure_closed()
    assert [(r[0], r[2]) for r in relayed(roles)] == [(2, "quick"), (1, "slow")]
    assert unconsumed(business) == 0


async def test_two_replicas_relay_each_row_once_in_id_order(
    roles: Roles, business: Business
) -> None:
    rows = [{"kind": "po", "key": f"k{n % 7}", "payload": json.dumps({"n": n})} for n in range(60)]
    async with relay(business, roles.app, batch_size=7) as one:
        async with relay(business, roles.app, batch_size=5) as two:
            for start in range(0, 60, 12):
                await asyncio.to_thread(business.insert, rows[start : start + 12])
                for _ in range(3):
                    await asyncio.gather(one.run_once(), two.run_once())
            while sum(await asyncio.gather(one.run_once(), two.run_once())):
                pass
    ids = [r[0] for r in relayed(roles)]
    assert ids == list(range(1, 61))  # each once, in the order of the business database
    assert unconsumed(business) == 0


# --- bad rows -----------------------------------------------------------------------


def test_rows_postgresql_refuses_are_quarantined_and_the_rows_behind_go_on(
    roles: Roles, business: Business
) -> None:
    rows = [
        {"kind": "leave", "key": "a", "payload": "{}"},
        {"kind": "leave", "key": "nul\x00key", "payload": "{}"},
        {"kind": "leave", "key": "b", "payload": '{"reason": "a\\u0000b"}'},
        {"kind": "leave", "key": "c", "payload": json.dumps({"reason": "回家 🏠"})},
    ]
    assert all(business.insert(rows))
    assert asyncio.run(relay_all(business, roles.app)) == 4
    assert unconsumed(business) == 0
    got = query(
        roles.admin,
        "SELECT o.source_id, o.business_key, o.consumed_at IS NOT NULL, q.error_code, "
        "q.error_message FROM syncd.outbox o "
        "LEFT JOIN syncd.outbox_quarantine q ON q.outbox_id = o.id ORDER BY o.source_id",
    )
    assert [(r[0], r[1], r[2], r[3]) for r in got] == [
        (1, "a", False, None),
        (2, "nul\ufffdkey", True, "22P05"),
        (3, "b", True, "22P05"),
        (4, "c", False, None),
    ]
    assert got[1][4].startswith("row 2 of [databases.erp] syncd_outbox: PostgreSQL refused")
    asyncio.run(ingest_all(roles.app, kinds=ERP_KINDS))
    states = query(roles.admin, "SELECT business_key, state FROM syncd.approval ORDER BY id")
    assert [key for key, _ in states] == ["a", "c"]


def test_a_row_of_a_kind_another_database_holds_is_parked_with_the_fix(
    roles: Roles, business: Business
) -> None:
    assert all(business.insert([{"kind": "leave", "key": "x", "payload": "{}"}]))
    asyncio.run(relay_all(business, roles.app))
    asyncio.run(ingest_all(roles.app, kinds=KINDS))  # leave: syncd's own outbox
    [(state, code, message)] = query(
        roles.admin, "SELECT state, last_error_code, last_error_message FROM syncd.approval"
    )
    assert (state, code) == ("invalid", "wrong_database")
    assert "came from the syncd_outbox of [databases.erp]" in message
    assert "syncd's own syncd.outbox" in message


def test_the_application_user_may_only_insert(business: Business) -> None:
    with pytest.raises(Exception, match="SELECT command denied"):
        mysql_run(business.writer, "SELECT * FROM syncd_outbox")
