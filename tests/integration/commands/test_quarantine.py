"""Quarantined outbox rows in ``syncd status``, back to ingest with ``syncd retry
--quarantined``; an approval holding a shortened key is never retried."""

from __future__ import annotations

import json

from tests.integration.ingest.test_bad_rows import LEAVE

RULE = "ALTER TABLE syncd.approval ADD CONSTRAINT dba_rule CHECK (business_key <> 'no')"


def outbox(world, key, payload=LEAVE, kind="leave"):
    world.sql(
        "INSERT INTO syncd.outbox (kind, business_key, payload) VALUES (%s, %s, %s)",
        kind,
        key,
        json.dumps(payload),
    )


async def test_status_shows_quarantined_rows_and_retry_sends_them_back(world, cli):
    world.sql(RULE)
    outbox(world, "no")
    outbox(world, "yes")
    async with world.daemon() as daemon:
        await daemon.drain()
    [(outbox_id,)] = world.sql("SELECT outbox_id FROM syncd.quarantined")

    code, out, _ = await cli("status")
    assert code == 0
    assert "leave: 1 outbox rows quarantined: the database refused to store them" in out
    assert "(SELECT * FROM syncd.quarantined)" in out and "`syncd retry --quarantined`" in out
    code, out, _ = await cli("status", "--json")
    assert json.loads(out)["kinds"]["leave"]["quarantined"] == 1

    code, out, _ = await cli("retry", "--quarantined", str(outbox_id + 100))
    assert code == 1 and f"refused: outbox row {outbox_id + 100} is not quarantined" in out
    code, _, err = await cli("retry", "--quarantined", "--all-parked", "--kind", "leave")
    assert code == 2 and "does not go with --all-parked" in err

    world.sql("ALTER TABLE syncd.approval DROP CONSTRAINT dba_rule")
    code, out, _ = await cli("retry", "--quarantined", "--kind", "leave")
    assert code == 0
    assert f"outbox row {outbox_id} (leave no): back to ingest (was 23514: " in out
    assert "requeued 1, refused 0" in out
    async with world.daemon() as daemon:
        await daemon.drain()
    assert world.sql("SELECT state FROM syncd.approval WHERE business_key = 'no'") == [("running",)]
    code, out, _ = await cli("status")
    assert "quarantined" not in out


async def test_retry_refuses_an_approval_whose_key_was_too_long(world, cli):
    outbox(world, "k" * 600)
    async with world.daemon() as daemon:
        await daemon.drain()
    [(approval_id, key)] = world.sql(
        "SELECT id, business_key FROM syncd.approval WHERE last_error_code = 'key_too_long'"
    )
    assert len(key) == 512 and key.startswith("kkk") and "…[600 characters, sha256 " in key

    code, out, _ = await cli("retry", str(approval_id))
    assert code == 1
    assert "its business_key was too long to store" in out
    assert "with a key of at most 512 characters" in out
    assert world.sql("SELECT state FROM syncd.approval WHERE id = %s", approval_id) == [
        ("invalid",)
    ]
