"""In-memory twins of the pipeline's ports, for fast unit tests without PostgreSQL.

- :class:`MemoryDb` holds syncd's tables (:mod:`tests.fakes.tables`); the stores are
  views of it, one per port (``MemorySubmitStore`` implements ``SubmitStore``, ...),
  each mirroring its ``Postgres<Port>``: claims, leases, guarded moves, history, usage.
- :class:`MemoryTarget` is a business table written in the finishing transaction.
- :func:`simulated_client` is the real DingTalk client on the simulator, in process;
  :class:`ScriptedClient` fails chosen calls; :class:`EventFeed` carries the simulator's
  events into the inbox.
- :class:`Rig` wires the stages as the daemon does.
"""

from __future__ import annotations

from tests.fakes.apply import MemoryApplyStore, MemoryInbox, MemoryWriteBackStore
from tests.fakes.dingtalk import (
    PASS,
    EventFeed,
    Held,
    Lost,
    Meanwhile,
    ScriptedClient,
    simulated_client,
)
from tests.fakes.ingest import MemoryIngestStore
from tests.fakes.memory import MemoryDb
from tests.fakes.rig import ORDER, RecordingObserver, Rig
from tests.fakes.stores import MemoryCancelStore, MemoryControlStore, MemoryPollStore
from tests.fakes.submit import MemoryReconcileLookup, MemorySubmitStore
from tests.fakes.tables import ApprovalRow, Tables
from tests.fakes.target import MemoryTarget

__all__ = [
    "ORDER",
    "PASS",
    "ApprovalRow",
    "EventFeed",
    "Held",
    "Lost",
    "Meanwhile",
    "MemoryApplyStore",
    "MemoryCancelStore",
    "MemoryControlStore",
    "MemoryDb",
    "MemoryInbox",
    "MemoryIngestStore",
    "MemoryPollStore",
    "MemoryReconcileLookup",
    "MemorySubmitStore",
    "MemoryTarget",
    "MemoryWriteBackStore",
    "RecordingObserver",
    "Rig",
    "ScriptedClient",
    "Tables",
    "simulated_client",
]
