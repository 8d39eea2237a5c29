"""``MemorySubmitStore``: claims and outcomes of creates and reconciliations, as
``PostgresSubmitStore`` records them: a claim takes a lease, the intent is kept only for
the lease's owner, an outcome moves only from ``submitting`` or ``unknown`` and only an
approval without an instance (and, where the query checks it, by the lease's owner)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from syncd.domain import (
    ApprovalRef,
    ApprovalState,
    CallRecord,
    Intent,
    SubmitItem,
)
from syncd.errors import StoreError
from tests.fakes.memory import MemoryDb
from tests.fakes.tables import ApprovalRow, Tables, lease_free

_ACTIVE = {
    ApprovalState.PENDING,
    ApprovalState.SUBMITTING,
    ApprovalState.RUNNING,
    ApprovalState.UNKNOWN,
}


def _submit_item(row: ApprovalRow, *, unknown: bool = False) -> SubmitItem:
    """What ``claim_submit_batch`` (or, ``unknown``, ``claim_unknown_batch``) returns."""
    extra: dict[str, Any] = {}
    if unknown:
        extra = {
            "process_code": row.process_code,
            "form_values": row.form_values,
            "submitted_at": row.submitted_at,
            "originator_user_id": row.originator_user_id,
        }
    return SubmitItem(
        id=row.id,
        kind=row.kind,
        business_key=row.business_key,
        round=row.round,
        payload=row.payload,
        originator=row.originator,
        dept_id=row.dept_id,
        attempts=row.attempts,
        captured_at=row.captured_at,
        **extra,
    )


class MemorySubmitStore:
    """``SubmitStore`` over a :class:`MemoryDb` (see ``PostgresSubmitStore``)."""

    def __init__(self, db: MemoryDb) -> None:
        self.db = db

    async def claim_submits(
        self, limit: int, now: datetime, owner: str, lease_until: datetime
    ) -> list[SubmitItem]:
        with self.db.transaction("claim_submits") as t:
            due = [
                a
                for a in t.approvals.values()
                if a.state is ApprovalState.PENDING
                and a.next_attempt_at <= now
                and a.cancel_requested_at is None
                and not _earlier_round_active(t, a)
            ]
            due.sort(key=lambda a: (a.next_attempt_at, a.id))
            claimed = sorted(due[:limit], key=lambda a: a.id)
            for a in claimed:
                a.attempts += 1
                self.db.move(a, ApprovalState.SUBMITTING, now, f"attempt {a.attempts}")
                a.lease_owner, a.lease_expires_at = owner, lease_until
                a.submitted_at = a.submitted_at or now
            return [_submit_item(a) for a in claimed]

    async def record_intents(
        self, intents: Sequence[Intent], owner: str, now: datetime
    ) -> set[int]:
        if not intents:
            return set()
        with self.db.transaction("record_intents") as t:
            kept = set()
            for intent in intents:
                a = t.approvals.get(intent.approval_id)
                if a and a.state is ApprovalState.SUBMITTING and a.lease_owner == owner:
                    a.process_code, a.form_values = intent.process_code, intent.form_values
                    if intent.note and a.originator_user_id != intent.originator_user_id:
                        self.db.log(a.id, now, "note", message=intent.note)
                    a.originator_user_id = intent.originator_user_id or a.originator_user_id
                    a.dept_id = intent.dept_id if intent.dept_id is not None else a.dept_id
                    a.updated_at = now
                    kept.add(a.id)
            return kept

    async def record_created(
        self,
        approval_id: int,
        *,
        instance_id: str,
        process_code: str,
        form_values: Any,
        now: datetime,
        next_poll_at: datetime,
        created_at: datetime | None = None,
        calls: Sequence[CallRecord] = (),
    ) -> bool:
        with self.db.transaction("record_created") as t:
            a = t.approvals[approval_id]
            # The calls are recorded even when the approval had moved on.
            self.db.record_calls(approval_id, now, list(calls))
            if a.state not in (ApprovalState.SUBMITTING, ApprovalState.UNKNOWN) or a.instance_id:
                return False
            if self.db.by_instance(instance_id) is not None:  # approval_instance_idx
                raise StoreError(f"database error: instance {instance_id} belongs to another")
            self.db.move(a, ApprovalState.RUNNING, now, f"instance {instance_id}")
            a.instance_id, a.process_code = instance_id, process_code
            a.form_values = form_values if form_values is not None else a.form_values
            a.instance_created_at = created_at or now
            a.lease_owner = a.lease_expires_at = None
            a.last_error_code = a.last_error_message = None
            a.calls_spent += len(calls)
            a.next_poll_at = next_poll_at
            return True

    async def record_failed(
        self,
        approval_id: int,
        *,
        to_state: ApprovalState,
        now: datetime,
        next_attempt_at: datetime,
        error_code: str,
        error_message: str,
        refund: bool = False,
        process_code: str | None = None,
        form_values: Any = None,
        calls: Sequence[CallRecord] = (),
        owner: str | None = None,
    ) -> bool:
        with self.db.transaction("record_failed") as t:
            a = t.approvals[approval_id]
            if (
                a.state not in (ApprovalState.SUBMITTING, ApprovalState.UNKNOWN)
                or a.instance_id is not None
                or (owner is not None and a.lease_owner != owner)
            ):
                return False
            self.db.record_calls(approval_id, now, list(calls))
            self.db.move(a, to_state, now, f"{error_code}: {error_message}"[:2000])
            a.next_attempt_at = next_attempt_at
            a.attempts = max(a.attempts - (1 if refund else 0), 0)
            a.lease_owner = a.lease_expires_at = None
            a.process_code = process_code if process_code is not None else a.process_code
            a.form_values = form_values if form_values is not None else a.form_values
            a.last_error_code, a.last_error_message = error_code, error_message[:2000]
            a.calls_spent += len(calls)
            return True

    async def expire_leases(self, now: datetime) -> list[int]:
        with self.db.transaction("expire_leases") as t:
            expired = [
                a
                for a in t.approvals.values()
                if a.state is ApprovalState.SUBMITTING
                and a.lease_expires_at is not None
                and a.lease_expires_at < now
            ]
            message = "lease expired during a create; reconciling before any retry"
            for a in expired:
                self.db.move(a, ApprovalState.UNKNOWN, now, message)
                a.lease_owner = a.lease_expires_at = None
                a.next_attempt_at = now
                a.last_error_code = "lease_expired"
                a.last_error_message = "the worker submitting this approval stopped; reconciling"
            return [a.id for a in expired]

    async def claim_unknowns(
        self, limit: int, now: datetime, owner: str, lease_until: datetime
    ) -> list[SubmitItem]:
        with self.db.transaction("claim_unknowns") as t:
            due = [
                a
                for a in t.approvals.values()
                if a.state is ApprovalState.UNKNOWN
                and a.next_attempt_at <= now
                and lease_free(a, now)
            ]
            due.sort(key=lambda a: (a.next_attempt_at, a.id))
            claimed = sorted(due[:limit], key=lambda a: a.id)
            for a in claimed:
                a.lease_owner, a.lease_expires_at, a.updated_at = owner, lease_until, now
            return [_submit_item(a, unknown=True) for a in claimed]

    async def known_instances(self, instance_ids: Sequence[str]) -> set[str]:
        with self.db.transaction("known_instances") as t:
            ids = set(instance_ids)
            return {a.instance_id for a in t.approvals.values() if a.instance_id in ids}

    async def record_calls(
        self, approval_id: int, now: datetime, calls: Sequence[CallRecord]
    ) -> None:
        if not calls:
            return
        with self.db.transaction("record_calls") as t:
            t.approvals[approval_id].calls_spent += len(calls)
            self.db.record_calls(approval_id, now, list(calls))


def _earlier_round_active(t: Tables, a: ApprovalRow) -> bool:
    return any(
        p.kind == a.kind
        and p.business_key == a.business_key
        and p.round < a.round
        and p.state in _ACTIVE
        for p in t.approvals.values()
    )


class MemoryReconcileLookup:
    """``ReconcileLookup`` over a :class:`MemoryDb` (see ``AdminStore``'s
    ``select_instance_owners``, ``select_running_since``, ``select_unknown_rounds`` and
    ``select_rounds``)."""

    def __init__(self, db: MemoryDb) -> None:
        self.db = db

    async def approvals_by_instances(self, instance_ids: Sequence[str]) -> dict[str, ApprovalRef]:
        with self.db.transaction("lookup.approvals_by_instances") as t:
            wanted = set(instance_ids)
            return {
                a.instance_id: a.ref()
                for a in t.approvals.values()
                if a.instance_id is not None and a.instance_id in wanted
            }

    async def running_since(
        self, kind: str, process_code: str, since: datetime
    ) -> list[ApprovalRef]:
        with self.db.transaction("lookup.running_since") as t:
            return [
                a.ref()
                for a in sorted(t.approvals.values(), key=lambda a: a.id)
                if a.kind == kind
                and a.state is ApprovalState.RUNNING
                and a.process_code == process_code
                and a.instance_created_at is not None
                and a.instance_created_at >= since
            ]

    async def unknown_rounds(self, kind: str) -> list[SubmitItem]:
        with self.db.transaction("lookup.unknown_rounds") as t:
            return [
                _submit_item(a, unknown=True)
                for a in sorted(t.approvals.values(), key=lambda a: a.id)
                if a.kind == kind and a.state is ApprovalState.UNKNOWN and a.instance_id is None
            ]

    async def round_of(self, kind: str, business_key: str, round_: int) -> ApprovalRef | None:
        with self.db.transaction("lookup.round_of") as t:
            for a in t.approvals.values():
                if (a.kind, a.business_key, a.round) == (kind, business_key, round_):
                    return a.ref()
            return None
