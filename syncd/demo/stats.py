"""What the demo shows: approvals by state, latencies and calls, read from syncd's tables.

A :class:`Snapshot` is taken from the database (named queries) and the simulator, which
the demo runs in the same process: only the simulator knows whether a running instance
waits for a rule or for a person. The counts by state, latencies and calls are the
legacy app's requests (outbound kinds); the leave requests started in DingTalk (the
inbound kind) are counted apart, with the latest rows imported for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from syncd.db.queries import QUERIES
from syncd.demo.inbound import Imported, imported_rows
from syncd.demo.world import LEAVE_IN
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
    #: Inbound: instances started in DingTalk (the demo's and the page's), their rounds
    #: by state, those finished and not written back, those waiting for a person, and
    #: the latest imported rows.
    started_in_dingtalk: int = 0
    inbound_states: dict[str, int] = field(default_factory=dict)
    inbound_unwritten: int = 0
    inbound_waiting: int = 0
    imported: tuple[Imported, ...] = ()

    @property
    def inbound_imported(self) -> int:
        return sum(self.inbound_states.values())

    @property
    def inbound_in_flight(self) -> int:
        return sum(self.inbound_states.get(s, 0) for s in IN_FLIGHT)

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
        """Every inserted request is an approval (no outbox row left to ingest), and every
        instance started in DingTalk is imported."""
        return (
            self.unconsumed == 0
            and self.approvals >= self.inserted
            and self.inbound_imported >= self.started_in_dingtalk
        )

    def rules_done(self) -> bool:
        """Everything the rules decide is decided and written back; the rest waits for people."""
        waiting = self.in_flight - self.waiting_for_person
        waiting_inbound = self.inbound_in_flight - self.inbound_waiting
        return (
            self.all_captured()
            and waiting == waiting_inbound == 0
            and self.unwritten == self.inbound_unwritten == 0
        )

    def all_done(self) -> bool:
        """Nothing is left to decide or write back."""
        return (
            self.all_captured()
            and self.in_flight == self.inbound_in_flight == 0
            and self.unwritten == self.inbound_unwritten == 0
        )


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
    conn: psycopg.AsyncConnection[dict[str, Any]],
    sim: Simulator,
    inserted: int,
    inbound: tuple[str, ...] = (),
) -> Snapshot:
    """Read a snapshot on an autocommit connection; ``inbound`` names the inbound kinds
    (none: the demo has no inbound part, and no table of imported rows)."""
    kinds = {"inbound": list(inbound)}
    rows = await (await conn.execute(QUERIES["select_demo_states"], kinds)).fetchall()
    latency = await (await conn.execute(QUERIES["select_demo_latencies"], kinds)).fetchone()
    running = await (await conn.execute(QUERIES["select_demo_running_instances"], kinds)).fetchall()
    assert latency is not None
    out = [row for row in rows if not row["inbound"]]
    into = [row for row in rows if row["inbound"]]
    return Snapshot(
        inserted=inserted,
        states={row["state"]: row["approvals"] for row in out},
        calls_spent=sum(row["calls_spent"] for row in out),
        unwritten=sum(row["unwritten"] for row in out),
        unconsumed=latency["unconsumed"],
        waiting_for_person=waiting_for_person(
            sim, [row["instance_id"] for row in running if not row["inbound"]]
        ),
        created_p50=latency["created_p50"],
        created_p95=latency["created_p95"],
        written_p50=latency["written_p50"],
        written_p95=latency["written_p95"],
        simulator_calls=sum(sim.calls.values()),
        started_in_dingtalk=len(sim.instances(LEAVE_IN)) if inbound else 0,
        inbound_states={row["state"]: row["approvals"] for row in into},
        inbound_unwritten=sum(row["unwritten"] for row in into),
        inbound_waiting=waiting_for_person(
            sim, [row["instance_id"] for row in running if row["inbound"]]
        ),
        imported=tuple(await imported_rows(conn)) if inbound else (),
    )
