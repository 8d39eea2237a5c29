"""The DBA views name the database each row came from: a business database's name for
rows relayed from its ``syncd_outbox``, ``syncd`` for rows written into syncd.outbox
(the metrics' label), also after retention deleted the outbox rows."""

from __future__ import annotations

import asyncio

from syncd.testing import FakeClock  # noqa: F401  (the relay's clock, via relay_all)

from .conftest import Roles, ingest_all, query, write
from .test_mysql_relay import ERP_KINDS, Business, business, relay_all  # noqa: F401


def test_the_views_name_each_rows_database(roles: Roles, business: Business) -> None:  # noqa: F811
    erp = [
        {"kind": "leave", "key": "e1", "payload": "[1]"},  # not an object: parked
        {"kind": "leave", "key": "e2", "payload": "{}"},  # no required fields: parked
        {"kind": "leave", "key": "nul\x00", "payload": "{}"},  # PostgreSQL refuses it
    ]
    assert all(business.insert(erp))
    assert write(roles.writer, [{"kind": "leave", "key": "s1", "payload": "[1]"}]) == [True]
    asyncio.run(relay_all(business, roles.app))
    backlog = query(
        roles.admin,
        "SELECT database, sum(items)::int FROM syncd.backlog WHERE stage = 'outbox' "
        "GROUP BY database ORDER BY database",
    )
    assert backlog == [("erp", 2), ("syncd", 1)]
    [quarantined] = query(
        roles.admin, "SELECT business_key, database, source_id FROM syncd.quarantined"
    )
    assert quarantined == ("nul\ufffd", "erp", 3)

    asyncio.run(ingest_all(roles.app, kinds=ERP_KINDS))
    parked = query(roles.admin, "SELECT business_key, database FROM syncd.parked ORDER BY 1")
    assert parked == [("e1", "erp"), ("e2", "erp"), ("s1", "syncd")]
    query(
        roles.admin,
        "DELETE FROM syncd.outbox WHERE consumed_at IS NOT NULL "
        "AND id NOT IN (SELECT outbox_id FROM syncd.outbox_quarantine)",
    )  # retention
    summary = query(
        roles.admin,
        "SELECT database, sum(approvals)::int FROM syncd.summary GROUP BY 1 ORDER BY 1",
    )
    assert summary == [("erp", 2), ("syncd", 1)]
    assert query(
        roles.admin, "SELECT count(*)::int FROM syncd.outbox WHERE consumed_at IS NOT NULL"
    ) == [(1,)]
