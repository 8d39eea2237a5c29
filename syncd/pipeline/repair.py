"""An operator's hand on approvals: ``syncd retry``, ``dismiss``, ``replay`` and ``cancel``.

Every command names approvals the same way (:class:`Which`): by id, or by business key
and round (``KIND KEY [--round N]``; without a round, the latest one, or for a cancel
the round still on its way). Each change is a guarded transition in the store, written
to the approval's history with the operator as actor; the daemon does the rest. What
cannot be done is refused with the reason and the way forward, never half done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, timedelta

from syncd.domain import BUSINESS_KEY_MAX, FINISHED, PARKED, ApprovalState
from syncd.errors import SyncdError
from syncd.ports import Clock, WriteBackStore
from syncd.ports.operator import ApprovalBrief, CancelRequest, OperatorStore

#: How long a replay keeps the daemon's own write-back retry away from the approval.
HOLD = timedelta(minutes=5)
#: When the daemon retries a replay whose write-back failed.
RETRY_AFTER = timedelta(minutes=5)
#: The longest reason a dismissal keeps.
REASON_MAX = 500


@dataclass(frozen=True)
class Which:
    """The approvals a command names: ``ids``, or one round of a business key (``round``
    None: the latest, or for a cancel the one still on its way)."""

    ids: tuple[int, ...] = ()
    kind: str | None = None
    key: str | None = None
    round: int | None = None

    def __str__(self) -> str:
        if self.ids:
            return "approval " + ", ".join(str(i) for i in self.ids)
        which = f" round {self.round}" if self.round is not None else ""
        return f"{self.kind} {self.key}{which}"


@dataclass
class Moves:
    """What a retry or a dismissal did: the approvals moved (each as it was before), those
    already where the move would take them, and why the others were refused."""

    moved: list[ApprovalBrief] = field(default_factory=list)
    already: list[ApprovalBrief] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Replayed:
    """One write-back an operator ran: where to, whether again, and its error if any."""

    approval: ApprovalBrief
    target: str
    error: str | None

    @property
    def again(self) -> bool:
        return self.approval.written_back_at is not None


@dataclass
class Replays:
    done: list[Replayed] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.refused) + sum(1 for r in self.done if r.error)


def not_found(which: Which) -> str:
    return (
        f"no approval for {which}: check the kind and the key; "
        "an outbox row not ingested yet shows in `syncd status`"
    )


#: Parked rounds that stand for an outbox row that was not a request (what it was).
NOT_REQUESTS = {"nothing_to_cancel": "cancel", "nothing_to_comment": "comment"}


def refusal(brief: ApprovalBrief | None, approval_id: int, allowed: str) -> str:
    """Why an approval cannot take an operator's move, with the way forward."""
    if brief is None:
        return f"approval {approval_id} does not exist"
    name, state = brief.name, brief.state
    show = f"`syncd show {brief.kind} {brief.business_key}`"
    if state is ApprovalState.INVALID and brief.last_error_code == "key_too_long":
        return (
            f"{name}: its business_key was too long to store (it holds a shortened one), so "
            "it can never be submitted; the application must write the request again with a "
            f"key of at most {BUSINESS_KEY_MAX} characters (`syncd dismiss` closes this one)"
        )
    if state is ApprovalState.INVALID and brief.last_error_code in NOT_REQUESTS:
        return (
            f"{name} records a {NOT_REQUESTS[brief.last_error_code]} for a key never "
            "submitted, not a request: retrying it would submit the wrong payload; "
            f"`syncd dismiss {brief.id} --reason ...` closes it"
        )
    if state is ApprovalState.INVALID and brief.last_error_code == "inbound_refused":
        return (
            f"{name} is an instance started in DingTalk whose business row was refused: "
            "syncd submits nothing for it; fix the table or mapping and write the row "
            f"yourself ({show} has the instance), or `syncd dismiss {brief.id} --reason ...`"
        )
    if brief.superseded and state in PARKED:
        return (
            f"{name} was replaced by a newer round of the same key; {show} shows the rounds, "
            f"`syncd dismiss {brief.id} --reason ...` closes this one"
        )
    if state is ApprovalState.DISMISSED:
        return (
            f"{name} was dismissed ({show} says by whom and why) and is never sent again; "
            "a new outbox row for the key starts a new round"
        )
    return f"{name} is {state.value}, not {allowed}"


class Repair:
    """The operator's moves over an :class:`OperatorStore`; ``targets`` maps each
    configured kind to its write-back target's name (None: it has none), and
    ``writeback`` writes an outcome (both for :meth:`replay` only)."""

    def __init__(
        self,
        store: OperatorStore,
        clock: Clock,
        *,
        writeback: WriteBackStore | None = None,
        targets: Mapping[str, str | None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.writeback = writeback
        self.targets = dict(targets or {})

    async def named(self, which: Which, *, active: bool = False) -> list[int]:
        """The ids of the approvals ``which`` names (ids are taken as given: a missing one
        is refused by the move); a key without such a round raises, naming it."""
        if which.ids:
            return list(which.ids)
        assert which.kind is not None and which.key is not None
        if active and which.round is None:
            found = await self.store.active_round_id(which.kind, which.key)
            if found is None:
                raise SyncdError(
                    f"no active approval for {which.kind} {which.key}, nothing to cancel: "
                    f"`syncd show {which.kind} {which.key}` shows its rounds"
                )
        else:
            found = await self.store.round_id(which.kind, which.key, which.round)
        if found is None:
            raise SyncdError(not_found(which))
        return [found]

    async def parked(
        self, kind: str, states: Sequence[ApprovalState] = (), *, superseded: bool = False
    ) -> list[int]:
        """Every parked approval of ``kind`` (in ``states``; default: invalid and dead)."""
        chosen = states or (ApprovalState.INVALID, ApprovalState.DEAD)
        return await self.store.parked_ids(kind, chosen, superseded=superseded)

    async def unwritten(self, kind: str) -> list[int]:
        return await self.store.unwritten_ids(kind)

    # --- retry and dismiss -------------------------------------------------------------

    async def retry(self, approval_ids: Sequence[int]) -> Moves:
        """Parked approvals back to pending: the daemon submits them again at once."""
        done = await self.store.retry(self.clock.now(), approval_ids)
        return await self._moves(done.moved, done.refused, ApprovalState.PENDING)

    async def dismiss(self, approval_ids: Sequence[int], reason: str) -> Moves:
        """Parked approvals closed for good, with the operator's ``reason``."""
        text = " ".join(reason.split())
        if not text:
            raise SyncdError("a dismissal needs a reason (--reason TEXT): the history keeps it")
        done = await self.store.dismiss(self.clock.now(), approval_ids, text[:REASON_MAX])
        return await self._moves(done.moved, done.refused, ApprovalState.DISMISSED)

    async def _moves(
        self, moved: list[ApprovalBrief], refused: list[int], to: ApprovalState
    ) -> Moves:
        result = Moves(moved=moved)
        briefs = await self.store.briefs(refused) if refused else {}
        for approval_id in refused:
            brief = briefs.get(approval_id)
            if brief is not None and brief.state is to and to is ApprovalState.DISMISSED:
                result.already.append(brief)
            else:
                result.refused.append(refusal(brief, approval_id, "invalid or dead"))
        return result

    # --- replay ------------------------------------------------------------------------

    async def replay(self, approval_ids: Sequence[int], *, force: bool = False) -> Replays:
        """Write finished approvals' outcomes to their business targets now (written ones
        again only with ``force``), the daemon's own retry held off meanwhile."""
        assert self.writeback is not None, "Repair(writeback=...) replays"
        result = Replays()
        briefs = await self.store.briefs(approval_ids)
        for approval_id in approval_ids:
            brief = briefs.get(approval_id)
            reason = self._replay_refusal(brief, approval_id, force=force)
            if reason is None and brief is not None:
                now = self.clock.now()
                if not await self.store.hold_writeback(approval_id, now, now + HOLD, force=force):
                    reason = f"{brief.name} changed meanwhile; run the command again"
            if reason is not None or brief is None:
                result.refused.append(reason or refusal(None, approval_id, ""))
                continue
            now = self.clock.now()
            error = await self.writeback.write_back(
                approval_id, now, now + RETRY_AFTER, force=force
            )
            result.done.append(Replayed(brief, self.targets[brief.kind] or "", error))
        return result

    def _replay_refusal(
        self, brief: ApprovalBrief | None, approval_id: int, *, force: bool
    ) -> str | None:
        if brief is None:
            return refusal(None, approval_id, "")
        if brief.kind not in self.targets:
            return (
                f"{brief.name}: kind {brief.kind!r} is not in the configuration "
                "(is --config right?); nothing would be written"
            )
        if self.targets[brief.kind] is None:
            return f"{brief.name}: kind {brief.kind!r} has no write-back configured"
        if brief.state not in FINISHED:
            return f"{brief.name} is {brief.state.value}, not approved, rejected or canceled"
        if brief.written_back_at is not None and not force:
            return (
                f"{brief.name} was already written back at "
                f"{brief.written_back_at.astimezone(UTC):%Y-%m-%d %H:%M:%SZ}; "
                "--force writes it again"
            )
        return None

    # --- cancel ------------------------------------------------------------------------

    async def cancel(self, which: Which) -> CancelRequest:
        """Ask for the round ``which`` names (by default the one on its way) to be
        canceled; the daemon terminates its instance, or drops it if never submitted."""
        [approval_id] = await self.named(which, active=True)
        request = await self.store.request_cancel(approval_id, self.clock.now())
        if request is not None:
            return request
        briefs = await self.store.briefs([approval_id])
        active = "pending, submitting, running or unknown: nothing to cancel"
        raise SyncdError(refusal(briefs.get(approval_id), approval_id, active))
