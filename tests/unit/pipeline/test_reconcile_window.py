"""``syncd reconcile``'s comparison of a window (``ReconcileWindow``) over the fakes:
DingTalk's finished instances are applied, lost creates adopted, duplicates and
foreign instances reported; a dry run reports the same and changes nothing."""

# The stages change the rows a test holds: mypy would take a second `row.state is ...`
# for one that cannot be true after the first.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from syncd.domain import ApprovalState
from syncd.errors import DingTalkOutcomeUnknown
from syncd.pipeline.reconcile_window import KindReport, ReconcileWindow
from syncd.simulator import Simulator
from tests.fakes import Lost, MemoryReconcileLookup, Rig, ScriptedClient
from tests.unit.pipeline.support import (
    EXAMPLES,
    LEAVE,
    instance_of,
    leave,
    only,
    simulated_rig,
    submit,
)
from tests.unit.pipeline.test_reconcile import leave_request

A = ApprovalState
SITUATIONS = ("finished", "lost", "duplicate", "foreign")


class Quiet:
    """A ``ReconcileProgress`` that shows nothing."""

    def listing(self, kind: str, since: datetime) -> None:
        pass

    def reading(self, kind: str, which: str, number: int, total: int) -> None:
        pass


def window(rig: Rig, *, dry_run: bool) -> ReconcileWindow:
    return ReconcileWindow(
        rig.client,
        MemoryReconcileLookup(rig.db),
        rig.submit_store,
        rig.control,
        rig.pauses,
        rig.apply,
        rig.clock,
        quiet_after=rig.timing.quiet_after,
        dry_run=dry_run,
        progress=Quiet(),
    )


async def arrange(rig: Rig, sim: Simulator, client: ScriptedClient, situations: list[str]) -> None:
    """Each situation under its own business key (its name and number)."""
    for n, what in enumerate(situations):
        key = f"{what}-{n}"
        submit(rig, key, leave())
        if what == "lost":
            client.script("create_instance", Lost(DingTalkOutcomeUnknown("read timeout")))
        await rig.cycle()
        if what == "finished":  # DingTalk decided; its events were lost
            sim.refuse(instance_of(only(rig, key)))
        elif what == "duplicate":  # a second instance carries the approval's key
            await client.create_instance(leave_request(2, f"syncd:leave/{key}/1"))
        elif what == "foreign":
            await client.create_instance(leave_request(9))


def categories(reports: list[KindReport]) -> list[str]:
    return sorted(f.category for report in reports for f in report.findings)


@EXAMPLES
@given(situations=st.lists(st.sampled_from(SITUATIONS), min_size=1, max_size=6))
async def test_a_dry_run_reports_what_the_run_then_does(situations: list[str]) -> None:
    async with simulated_rig() as (rig, sim, client):
        await arrange(rig, sim, client, situations)
        states = {a.id: a.state for a in rig.db.t.approvals.values()}
        seen = await window(rig, dry_run=True).run({LEAVE: rig.kinds[LEAVE]}, timedelta(days=1))
        assert {a.id: a.state for a in rig.db.t.approvals.values()} == states
        done = await window(rig, dry_run=False).run({LEAVE: rig.kinds[LEAVE]}, timedelta(days=1))
        expected = sorted("adopted" if s == "lost" else s for s in situations)
        assert categories(seen) == categories(done) == expected
        assert [f.category for r in done for f in r.findings if f.remains] == [
            "duplicate"
        ] * situations.count("duplicate")
        for n, what in enumerate(situations):
            row = only(rig, f"{what}-{n}")
            assert row.state is {"finished": A.REJECTED, "lost": A.RUNNING}.get(what, A.RUNNING)
        again = await window(rig, dry_run=False).run({LEAVE: rig.kinds[LEAVE]}, timedelta(days=1))
        assert categories(again) == sorted(s for s in situations if s in ("duplicate", "foreign"))
