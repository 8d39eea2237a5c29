"""Ingest: outbox rows become approval rounds; bad rows are parked, never blocking.

Each row is decided by a pure function of the row, the kind's configuration and the
business key's latest round. The store claims the rows, applies the decisions and marks
the rows consumed in one transaction. Whatever an application wrote, the decision is a
pending round or an ``invalid`` one whose message names the field and the fix; a row the
database still refuses to store is quarantined by the store, on its own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from syncd.domain import (
    ACTIVE,
    BUSINESS_KEY_MAX,
    PAYLOAD_MAX_DEPTH,
    ApprovalState,
    CancelRound,
    IngestDecision,
    IngestResult,
    LatestRound,
    NewRound,
    NoteOnRound,
    OutboxRow,
    Unreadable,
)
from syncd.domain_comments import CommentOnRound
from syncd.pipeline.comment_rows import decide_comment
from syncd.pipeline.mapping import MappingError, resolve_row
from syncd.ports import Clock, IngestStore, NullObserver, Observer
from syncd.settings_kinds import KindSettings

logger = logging.getLogger(__name__)

#: Error messages are cut to this many characters (they quote the row's values).
MESSAGE_MAX = 2000
_SHOWN = 60
_KIND_NAME = re.compile(r"[a-z0-9_]{1,40}")


def show(text: str) -> str:
    """A value of the row as messages quote it: in full when short, else its start."""
    if len(text) <= _SHOWN:
        return repr(text)
    return f"{text[:_SHOWN]!r}… ({len(text)} characters)"


def _invalid(code: str, message: str) -> list[IngestDecision]:
    if len(message) > MESSAGE_MAX:
        message = message[: MESSAGE_MAX - 1] + "…"
    return [NewRound(ApprovalState.INVALID, error_code=code, error_message=message)]


def decide(
    row: OutboxRow, latest: LatestRound | None, kinds: Mapping[str, KindSettings]
) -> list[IngestDecision]:
    """What one outbox row does, given the latest round of its business key.

    An invalid round keeps the row's payload unless syncd could not read it or it nests
    too deeply (then the round's payload is ``{}`` and the outbox row has the original):
    every stored payload can be read again by ``syncd retry`` and ``syncd show``.
    """
    decisions = _decide(row, latest, kinds)
    parked = any(isinstance(d, NewRound) and d.state is ApprovalState.INVALID for d in decisions)
    if not parked or storable(row.payload):
        return decisions
    return [replace(d, keep_payload=False) if isinstance(d, NewRound) else d for d in decisions]


def storable(payload: Any) -> bool:
    """Whether a payload is kept in its approval round (read, and not nested too deeply)."""
    return not isinstance(payload, Unreadable) and not too_deep(payload, PAYLOAD_MAX_DEPTH)


def _decide(
    row: OutboxRow, latest: LatestRound | None, kinds: Mapping[str, KindSettings]
) -> list[IngestDecision]:
    kind = kinds.get(row.kind)
    if kind is None:
        known = ", ".join(sorted(kinds)) or "none"
        section = row.kind if _KIND_NAME.fullmatch(row.kind) else "<name>"
        return _invalid(
            "unknown_kind",
            f"outbox row {row.id}: kind {show(row.kind)} is not configured (configured kinds: "
            f"{known}); add [kinds.{section}] to the config or fix the row",
        )
    if row.source_database is not None and kind.database != row.source_database:
        return _wrong_database(row, kind)
    if not row.business_key.strip():
        return _invalid("empty_key", f"outbox row {row.id}: business_key is empty")
    if len(row.business_key) > BUSINESS_KEY_MAX:
        return _invalid(
            "key_too_long",
            f"outbox row {row.id}: business_key has {len(row.business_key)} characters, more "
            f"than the {BUSINESS_KEY_MAX} syncd takes; use the business record's id (or a "
            "hash of a longer natural key) as business_key",
        )
    active = latest is not None and latest.state in ACTIVE
    if row.action != "submit":
        return _other_action(row, latest, active)
    if kind.direction == "inbound":
        return _invalid(
            "inbound_kind",
            f"outbox row {row.id}: kind {show(row.kind)} is inbound (its approvals start in "
            "DingTalk): syncd submits nothing for it; use an outbound kind",
        )
    if (problem := payload_problem(row.payload)) is not None:
        return _invalid("bad_payload", f"outbox row {row.id}: {problem}")
    if active and latest is not None:
        if kind.on_resubmit == "reject":
            return _invalid(
                "still_running",
                f"outbox row {row.id}: approval {latest.id} for {row.kind} "
                f"{show(row.business_key)} is still {latest.state.value}; wait for it to "
                "finish, cancel it, or set on_resubmit = 'supersede'",
            )
        decisions: list[IngestDecision] = [CancelRound(latest.id)]
        return decisions + _submit(row, kind)
    return _submit(row, kind)


def _wrong_database(row: OutboxRow, kind: KindSettings) -> list[IngestDecision]:
    """A row relayed from a business database whose kind takes its rows elsewhere."""
    where = f"[databases.{kind.database}]" if kind.database else "syncd's own syncd.outbox"
    return _invalid(
        "wrong_database",
        f"outbox row {row.id}: came from the syncd_outbox of [databases.{row.source_database}]"
        f", but kind {show(row.kind)} takes its rows from {where}; write the row there, or "
        f'set database = "{row.source_database}" in [kinds.<kind>] if the kind lives there',
    )


_JSON_TYPES = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string"}


def payload_problem(payload: Any) -> str | None:
    """Why a payload cannot make a request (not readable, not an object, nested too
    deeply), naming the fix; None when it is a JSON object ingest can map."""
    if isinstance(payload, Unreadable):
        return payload.reason
    if not isinstance(payload, dict):
        what = "array" if isinstance(payload, list) else _JSON_TYPES.get(type(payload), "value")
        return (
            f"payload: expected a JSON object, got a JSON {what}; write the business data "
            'as an object of named values, such as {"days": 3}'
        )
    if too_deep(payload, PAYLOAD_MAX_DEPTH):
        return (
            f"payload: nested more than {PAYLOAD_MAX_DEPTH} levels deep; flatten it (the form "
            "only reads a few levels)"
        )
    return None


def too_deep(value: Any, limit: int) -> bool:
    """Whether objects and arrays nest more than ``limit`` levels (without recursion)."""
    todo: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while todo:
        item, depth = todo.pop()
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                todo.append((child, depth + 1))
    return False


def _submit(row: OutboxRow, kind: KindSettings) -> list[IngestDecision]:
    try:
        resolved = resolve_row(kind, row)
    except MappingError as exc:
        return _invalid(exc.code, f"outbox row {row.id}: {exc.message}")
    return [NewRound(ApprovalState.PENDING, resolved.originator, resolved.dept_id)]


def _other_action(row: OutboxRow, latest: LatestRound | None, active: bool) -> list[IngestDecision]:
    """A row whose action is not ``submit``: a cancel, a comment, or a mistake."""
    if row.action == "cancel":
        return _decide_cancel(row, latest, active)
    if row.action == "comment":
        never = f"outbox row {row.id}: comment for {row.kind} {show(row.business_key)}"
        return decide_comment(row, latest, _invalid("nothing_to_comment", f"{never}, never sent"))
    return _invalid(
        "unknown_action",
        f"outbox row {row.id}: action {show(row.action)} is not 'submit', 'cancel' or 'comment'",
    )


def _decide_cancel(
    row: OutboxRow, latest: LatestRound | None, active: bool
) -> list[IngestDecision]:
    if latest is None:
        return _invalid(
            "nothing_to_cancel",
            f"outbox row {row.id}: cancel for {row.kind} {show(row.business_key)}, which was "
            "never submitted",
        )
    if not active:
        return [
            NoteOnRound(
                latest.id,
                f"outbox row {row.id}: cancel ignored, approval is already {latest.state.value}",
            )
        ]
    return [CancelRound(latest.id)]


def _outbox_fields(row: OutboxRow) -> dict[str, Any]:
    """What a log line about one outbox row carries (the kind and key as stored)."""
    return {"outbox_id": row.id, "kind": row.key[0], "business_key": row.key[1]}


class Ingest:
    """Claims outbox rows in batches (one replica at a time) and records the decisions."""

    def __init__(
        self,
        store: IngestStore,
        kinds: Mapping[str, KindSettings],
        clock: Clock,
        *,
        batch_size: int = 50,
        observer: Observer | None = None,
    ) -> None:
        self.observer = observer or NullObserver()
        self.store = store
        self.kinds = kinds
        self.clock = clock
        self.batch_size = batch_size
        self._decided: dict[int, tuple[OutboxRow, Sequence[IngestDecision]]] = {}

    def _decide(self, row: OutboxRow, latest: LatestRound | None) -> Sequence[IngestDecision]:
        try:
            decisions = decide(row, latest, self.kinds)
        except Exception as exc:  # a defect must not hold up the rows behind this one
            logger.exception(
                "ingest could not decide an outbox row",
                extra={"action": "ingest_error", **_outbox_fields(row)},
            )
            decisions = _invalid(
                "internal_error",
                f"outbox row {row.id}: syncd failed while reading this row "
                f"({type(exc).__name__}); this is a defect in syncd: report it with the "
                "ingest_error log line, and `syncd retry` the approval once fixed",
            )
        # A batch the store retries row by row is decided again: the last decision counts.
        self._decided[row.id] = (row, decisions)
        return decisions

    def _report(self, result: IngestResult) -> None:
        """Log and count what a committed batch parked and quarantined (rows decided in
        an attempt that was rolled back, or quarantined in the end, are not parked)."""
        stored = set(result.consumed) - {q.outbox_id for q in result.quarantined}
        for row, decisions in self._decided.values():
            if row.id not in stored:
                continue
            for decision in decisions:
                if isinstance(decision, CommentOnRound) and decision.error:
                    decision = NewRound(
                        ApprovalState.INVALID, None, None, "bad_comment", decision.error
                    )
                if isinstance(decision, NewRound) and decision.state is ApprovalState.INVALID:
                    code = decision.error_code or "invalid"
                    self.observer.approval_parked(row.kind, "invalid", code)
                    logger.warning(
                        "outbox row parked",
                        extra={
                            "action": "ingest_invalid",
                            **_outbox_fields(row),
                            "error_code": decision.error_code,
                            "error": decision.error_message,
                        },
                    )
        for q in result.quarantined:
            self.observer.outbox_quarantined(q.kind, q.sqlstate)
            logger.error(
                "outbox row quarantined: the database refused to store it",
                extra={
                    "action": "ingest_quarantined",
                    "outbox_id": q.outbox_id,
                    "kind": q.kind,
                    "business_key": q.business_key,
                    "sqlstate": q.sqlstate,
                    "error": q.error,
                },
            )

    async def run_once(self) -> int:
        self._decided = {}
        try:
            result = await self.store.ingest(self.batch_size, self.clock.now(), self._decide)
            self._report(result)
        finally:
            self._decided = {}
        return result.handled
