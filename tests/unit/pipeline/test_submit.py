"""Submit: a batch of creates, each its request built, its intent committed, its outcome
recorded; whatever happens to one create, the batch's others are seen through."""

# The stages change the rows a test holds: mypy would take a second `row.state is ...`
# for one that cannot be true after the first.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

import asyncio

import pytest

from syncd.domain import ApprovalState
from syncd.errors import DingTalkRejected, StoreError
from tests.fakes import PASS, Held, Meanwhile
from tests.unit.pipeline.support import leave, only, simulated_rig, submit

A = ApprovalState


async def test_a_create_whose_recording_fails_leaves_none_of_its_batch_in_flight() -> None:
    """The database fails recording one create while another is still on its way: the
    stage's run ends (with the error) only once every create it sent has ended, so the
    daemon never stops or goes on with creates of its batch still in flight."""
    async with simulated_rig() as (rig, sim, client):
        submit(rig, "7", leave())
        submit(rig, "8", leave())
        await rig.ingest.run_once()
        answered, failed = asyncio.Event(), asyncio.Event()
        client.script("create_instance", PASS, Held(answered))  # 8's answer is slow
        rig.db.fail("record_created", then=failed.set)  # recording 7's fails
        run = asyncio.create_task(rig.submit.run_once())
        await failed.wait()
        for _ in range(20):  # time for the stage to end, if it would
            await asyncio.sleep(0)
        assert not run.done(), "the stage ended with a create of its batch in flight"
        answered.set()
        with pytest.raises(StoreError):
            await run
        assert only(rig, "7").state is A.SUBMITTING  # its lease runs out, reconcile adopts
        assert only(rig, "8").state is A.RUNNING
        assert len(sim.instances()) == 2


async def test_a_form_refused_as_not_fitting_the_template_reads_the_schema_again() -> None:
    async with simulated_rig() as (rig, _, client):
        client.script("create_instance", DingTalkRejected("bad form", code="formConverterError"))
        submit(rig, "7", leave())
        submit(rig, "8", leave())
        await rig.ingest.run_once()
        rig.submit.concurrency = 1  # the creates in id order
        await rig.submit.run_once()
        assert client.count("get_form_schema") == 1  # cached for the batch
        assert only(rig, "7").state is A.INVALID
        assert "check the kind's form mapping" in (only(rig, "7").last_error_message or "")
        submit(rig, "9", leave())
        await rig.cycle()
        assert client.count("get_form_schema") == 2  # forgotten after the refusal


async def test_a_lease_lost_before_the_create_sends_nothing() -> None:
    """Another replica took the approval over while this one read the schema."""
    async with simulated_rig() as (rig, sim, client):
        submit(rig, "7", leave())
        await rig.ingest.run_once()
        row = only(rig, "7")

        def taken_over() -> None:
            row.lease_owner = "replica-2"

        client.script("get_form_schema", Meanwhile(taken_over))
        await rig.submit.run_once()
        assert client.count("create_instance") == 0 and sim.instances() == []
        assert row.state is A.SUBMITTING and row.process_code is None
