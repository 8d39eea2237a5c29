"""What the pipeline's unit tests share: the demo's kinds, requests, a world without
decision rules (people decide, when a test says so) and a rig on the simulator."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from hypothesis import HealthCheck, settings

from syncd.demo.config import KINDS
from syncd.domain import ApprovalState
from syncd.settings_kinds import KindSettings
from syncd.simulator import Simulator, World
from syncd.simulator.state import Instance
from syncd.testing import FakeClock
from tests.fakes import (
    ApprovalRow,
    MemoryDb,
    MemoryTarget,
    Rig,
    ScriptedClient,
    simulated_client,
)

#: Hypothesis for these tests: few examples (each is a small world), no deadline;
#: ``SYNCD_TEST_EXAMPLES=1000`` searches deeper.
EXAMPLES = settings(
    max_examples=int(os.environ.get("SYNCD_TEST_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

LEAVE = "leave"
EXPENSE = "expense"
#: The demo's kinds, as an integrator configures them (a correlation field each).
DEMO_KINDS = {name: KindSettings.model_validate(kind) for name, kind in KINDS.items()}
#: The leave kind without a correlation field: reconcile matches every form value sent.
UNCORRELATED = {LEAVE: DEMO_KINDS[LEAVE].model_copy(update={"correlation_field": None})}


def leave(days: int = 2, applicant: str = "u1", reason: str = "rest") -> dict[str, Any]:
    """A leave request's outbox payload, as the demo's capture trigger writes it."""
    return {
        "applicant": applicant,
        "leave_type": "年假",
        "start_date": "2026-01-10",
        "end_date": "2026-01-11",
        "days": days,
        "reason": reason,
    }


def quiet_world() -> World:
    """The simulator's default world without its decision rules."""
    return World.default().model_copy(update={"rules": []})


@asynccontextmanager
async def simulated_rig(
    kinds: dict[str, KindSettings] | None = None, **options: Any
) -> AsyncIterator[tuple[Rig, Simulator, ScriptedClient]]:
    """A rig whose client is a :class:`ScriptedClient` around the real client on a
    simulator of :func:`quiet_world`, all on one fake clock; the kinds write back to a
    :class:`MemoryTarget` each."""
    clock = FakeClock()
    sim = Simulator(quiet_world(), clock=clock)
    async with simulated_client(sim, clock) as real:
        client = ScriptedClient(real)
        kinds = kinds or {LEAVE: DEMO_KINDS[LEAVE]}
        targets = {name: MemoryTarget(f"app.{name}") for name in kinds}
        rig = Rig(MemoryDb(), clock, client, kinds, targets=targets, **options)
        yield rig, sim, client


def submit(rig: Rig, business_key: str, payload: Any, *, kind: str = LEAVE) -> int:
    """The application inserts its business row and an outbox row for it."""
    if kind in rig.targets:
        rig.targets[kind].add_row(rig.db, business_key)
    return rig.db.add_outbox(kind, business_key, payload, at=rig.clock.now())


def only(rig: Rig, business_key: str, round_: int = 1) -> ApprovalRow:
    """The approval of ``business_key``'s round (there is exactly one)."""
    [row] = [
        a
        for a in rig.db.t.approvals.values()
        if a.business_key == business_key and a.round == round_
    ]
    return row


def instance_of(row: ApprovalRow) -> str:
    """The approval's DingTalk instance (it has one by now)."""
    assert row.instance_id is not None, f"approval {row.id} has no instance"
    return row.instance_id


def correlation(instance: Instance) -> str | None:
    """What the instance carries in the demo kinds' correlation field."""
    return {v["name"]: v["value"] for v in instance.form}.get("业务编号")


def decided_state(instance: Instance) -> ApprovalState | None:
    """The final state syncd must give an approval with this instance (None: running)."""
    if instance.status == "COMPLETED":
        return ApprovalState.APPROVED if instance.result == "agree" else ApprovalState.REJECTED
    return ApprovalState.CANCELED if instance.status == "TERMINATED" else None
