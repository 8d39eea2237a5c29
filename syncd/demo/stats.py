"""What the demo shows: approvals by state, latencies and calls, read from syncd's tables.

A :class:`Snapshot` is taken from the database (named queries) and the simulator, which
the demo runs in the same process: only the simulator knows whether a running instance
waits for a rule or for a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from syncd.db.queries import QUERIES
from syncd.simulator import Simulator
from syncd.simulator.rules import decide

FINAL = ("approved", "rejected", "canceled")
PARKED = ("invalid", "dead")
IN_FLIGHT = ("pending", "submitting", "running", "unknown")


@dataclass(frozen=True)
class Snapshot:
    """The state of a demo run at one moment."""

    inserted: int = 0
    states: dict[str, int] = field(default_factory=dict)
    calls_spent: int = 0
    unwritten: int = 0
    unconsumed: int = 0
    waiting_for_person: int = 0
    created_p50: float | None = None
    created_p95: float | None = None
    written_p50: float | None = None
    written_p95: float | None = None
    simulator_calls: int = 0

    def count(self, *states: str) -> int:
        return sum(self.states.get(s, 0) for s in states)

    @property
    def approvals(self) -> int:
        return sum(self.states.values())

    @property
    def in_flight(self) -> int:
        return self.count(*IN_FLIGHT)

    @property
    def with_instance(self) -> int:
        """Approvals that reached DingTalk: finished or running."""
        return self.count(*FINAL, "running")

    @property
    def calls_per_approval(self) -> float | None:
        return self.calls_spent / self.with_instance if self.with_instance else None

    def all_captured(self) -> bool:
        """Every inserted request is an approval (no outbox row left to ingest)."""
        return self.unconsumed == 0 and self.approvals >= self.inserted

    def rules_done(self) -> bool:
        """Everything the rules decide is decided and written back; the rest waits for people."""
        waiting = self.in_flight - self.waiting_for_person
        return self.all_captured() and waiting == 0 and self.unwritten == 0

    def all_done(self) -> bool:
        """Nothing is left to decide or write back."""
        return self.all_captured() and self.in_flight == 0 and self.unwritten == 0


def waiting_for_person(sim: Simulator, instance_ids: list[str]) -> int:
    """How many of these instances run with no rule to decide them."""
    waiting = 0
    for instance_id in instance_ids:
        instance = sim.workflow.instances.get(instance_id)
        if instance is None or instance.status != "RUNNING":
            continue
        if decide(sim.world.rules, instance) is None:
            waiting += 1
    return waiting


async def take(
    conn: psycopg.AsyncConnection[dict[str, Any]], sim: Simulator, inserted: int
) -> Snapshot:
    """Read a snapshot on an autocommit connection."""
    rows = await (await conn.execute(QUERIES["select_demo_states"])).fetchall()
    latency = await (await conn.execute(QUERIES["select_demo_latencies"])).fetchone()
    running = await (await conn.execute(QUERIES["select_demo_running_instances"])).fetchall()
    assert latency is not None
    return Snapshot(
        inserted=inserted,
        states={row["state"]: row["approvals"] for row in rows},
        calls_spent=sum(row["calls_spent"] for row in rows),
        unwritten=sum(row["unwritten"] for row in rows),
        unconsumed=latency["unconsumed"],
        waiting_for_person=waiting_for_person(sim, [row["instance_id"] for row in running]),
        created_p50=latency["created_p50"],
        created_p95=latency["created_p95"],
        written_p50=latency["written_p50"],
        written_p95=latency["written_p95"],
        simulator_calls=sum(sim.calls.values()),
    )
