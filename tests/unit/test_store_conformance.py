"""Each PostgreSQL store and business target is assignable to its port (mypy checks
these lines), and no two of them share a name."""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

import syncd.db.apply_store
import syncd.db.cancel_store
import syncd.db.ingest_store
import syncd.db.poll_store
import syncd.db.store
import syncd.db.submit_store
import syncd.db.writeback_store
import syncd.ports
from syncd.db.apply_store import PostgresApplyStore
from syncd.db.cancel_store import PostgresCancelStore
from syncd.db.ingest_store import PostgresIngestStore
from syncd.db.poll_store import PostgresPollStore
from syncd.db.store import Conn, PostgresControlStore
from syncd.db.submit_store import PostgresSubmitStore
from syncd.db.writeback import PostgresProcedureTarget, PostgresTableTarget
from syncd.db.writeback_store import PostgresWriteBackStore
from syncd.ports import (
    ApplyStore,
    BusinessTarget,
    CancelStore,
    ControlStore,
    IngestStore,
    PollStore,
    SubmitStore,
    WriteBackStore,
)

ADAPTERS = [
    syncd.db.apply_store,
    syncd.db.cancel_store,
    syncd.db.ingest_store,
    syncd.db.poll_store,
    syncd.db.store,
    syncd.db.submit_store,
    syncd.db.writeback_store,
]


def test_stores_and_targets_fit_their_ports() -> None:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool("dbname=none", open=False)
    table = PostgresTableTarget("k", "app.t", "id", "UPDATE", {}, False, {})
    procedure = PostgresProcedureTarget("k", "app.p", sql.SQL("CALL app.p()").format())
    targets: dict[str, BusinessTarget[Conn]] = {"table": table, "procedure": procedure}
    ports: list[object] = []
    apply: ApplyStore = PostgresApplyStore(pool, targets)
    write_back: WriteBackStore = PostgresWriteBackStore(pool, targets)
    poll: PollStore = PostgresPollStore(pool)
    cancel: CancelStore = PostgresCancelStore(pool)
    ingest: IngestStore = PostgresIngestStore(pool)
    submit: SubmitStore = PostgresSubmitStore(pool)
    control: ControlStore = PostgresControlStore(pool)
    ports += [apply, write_back, poll, cancel, ingest, submit, control]
    assert len(ports) == 7


def test_no_adapter_shares_a_name_with_a_port() -> None:
    defined = {
        name
        for module in ADAPTERS
        for name, value in vars(module).items()
        if isinstance(value, type) and value.__module__ == module.__name__
    }
    ports = {name for name, value in vars(syncd.ports).items() if isinstance(value, type)}
    assert {"PostgresApplyStore", "PostgresControlStore"} <= defined
    assert defined & ports == set()


def test_the_directory_store_fits_the_contact_events_port() -> None:
    from syncd.db.directory_store import PostgresDirectoryStore
    from syncd.ports.directory import DirectoryEventStore

    pool: AsyncConnectionPool[Any] = AsyncConnectionPool("dbname=none", open=False)
    store: DirectoryEventStore = PostgresDirectoryStore(pool)
    assert store is not None
