"""Submit: create DingTalk instances for due pending approvals.

Claim a batch (lease, commit) → build each request from the payload and the template's
form schema → commit the batch's intents (what will be sent; one statement) → create,
outside any transaction, ``concurrency`` at a time → record each outcome in one statement.
A create whose outcome is unknown is never retried blindly: the approval goes to
``unknown`` and the reconciler decides. Transient errors retry with backoff, throttling
waits the hinted time, a rejected request is parked with DingTalk's code and message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from syncd.dingtalk.models import (
    ApproverRule,
    CreateInstanceRequest,
    FormComponentValue,
)
from syncd.domain import ApprovalState, CallRecord, Intent, SubmitItem
from syncd.errors import (
    DingTalkAuthError,
    DingTalkError,
    DingTalkNotSent,
    DingTalkOutcomeUnknown,
    DingTalkQuotaExhausted,
    DingTalkRejected,
    DingTalkThrottled,
)
from syncd.logging import approval_fields
from syncd.pipeline.attach import Attacher, AttachmentProblem
from syncd.pipeline.calls import call
from syncd.pipeline.lookup import DirectoryNotReady, LookupProblem, People, directory_wait
from syncd.pipeline.mapping import MappingError, encode, resolve_row
from syncd.pipeline.pauses import Pauses
from syncd.pipeline.retry import RetryPolicy
from syncd.pipeline.schemas import SchemaCache
from syncd.ports import ApprovalClient, Clock, NullObserver, Observer, SubmitStore
from syncd.settings_kinds import KindSettings

logger = logging.getLogger(__name__)

#: Codes meaning the form did not fit the template: the cached schema may be stale.
SCHEMA_CODES = frozenset({"formConverterError", "illegalComponent"})


def correlation_key(kind: str, business_key: str, round_: int) -> str:
    """The value syncd writes into a kind's correlation field, unique per approval round."""
    return f"syncd:{kind}/{business_key}/{round_}"


#: DingTalk codes that name a person or department it does not know (contract §3.1).
PEOPLE_CODES = frozenset({"processInstanceInvalidParameter", "invalidParameter", "userNotExist"})


def explain(exc: DingTalkError, item: SubmitItem) -> str:
    """DingTalk's message, with what to check when the request itself was refused."""
    if not isinstance(exc, DingTalkRejected):
        return exc.message
    if exc.code in PEOPLE_CODES:
        hint = (
            f"check the originator {item.originator!r}, its dept_id {item.dept_id} and any "
            "approvers or cc users against the DingTalk directory"
        )
    elif exc.code in SCHEMA_CODES:
        hint = "check the kind's form mapping against the template (syncd check)"
    else:
        hint = "fix the request or the kind's configuration, then syncd retry"
    return f"DingTalk refused the create ({exc.code}): {exc.message}; {hint}"


@dataclass(frozen=True)
class Timing:
    lease: timedelta
    unknown_grace: timedelta
    quiet_after: timedelta
    #: A create must be sent at least this long before its lease ends, so that its answer
    #: (or its timeout) comes before another replica may take the approval over.
    send_margin: timedelta = timedelta(seconds=20)


@dataclass(frozen=True)
class _Prepared:
    """A claimed approval ready to be created: its request and the intent to commit first."""

    item: SubmitItem
    request: CreateInstanceRequest
    intent: Intent
    calls: list[CallRecord]


class Submit:
    def __init__(
        self,
        store: SubmitStore,
        pauses: Pauses,
        client: ApprovalClient,
        schemas: SchemaCache,
        kinds: Mapping[str, KindSettings],
        clock: Clock,
        retry: RetryPolicy,
        timing: Timing,
        *,
        owner: str,
        batch_size: int = 20,
        concurrency: int = 8,
        agent_id: int | None = None,
        observer: Observer | None = None,
        people: People | None = None,
        attacher: Attacher | None = None,
    ) -> None:
        self.attacher = attacher
        self.observer = observer or NullObserver()
        self.people = people
        self.store = store
        self.pauses = pauses
        self.client = client
        self.schemas = schemas
        self.kinds = kinds
        self.clock = clock
        self.retry = retry
        self.timing = timing
        self.owner = owner
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.agent_id = agent_id

    async def run_once(self) -> int:
        """Claim a batch, build every request, commit their intents in one statement, then
        create the instances, ``concurrency`` at a time; a failure (the database failing to
        record one) is raised once every create of the batch has ended."""
        now = self.clock.now()
        await self.store.expire_leases(now)
        if await self.pauses.active(now):
            return 0
        lease_until = now + self.timing.lease
        items = await self.store.claim_submits(self.batch_size, now, self.owner, lease_until)
        prepared = [p for p in [await self._prepare(item) for item in items] if p is not None]
        kept = await self.store.record_intents(
            [p.intent for p in prepared], self.owner, self.clock.now()
        )
        gate = asyncio.Semaphore(self.concurrency)
        send_before = lease_until - self.timing.send_margin

        async def one(p: _Prepared) -> None:
            async with gate:
                await self._create(p, send_before)

        for p in prepared:
            if p.intent.approval_id not in kept:
                logger.warning(
                    "lease lost before create",
                    extra={"action": "claim_lost", **approval_fields(p.item)},
                )
        ended = await asyncio.gather(
            *(one(p) for p in prepared if p.intent.approval_id in kept), return_exceptions=True
        )
        for failure in ended:
            if isinstance(failure, BaseException):
                raise failure
        return len(items)

    async def build(
        self,
        item: SubmitItem,
        kind: KindSettings,
        calls: list[CallRecord],
        notes: list[str] | None = None,
    ) -> CreateInstanceRequest:
        """The create request for one approval; ``MappingError`` if the row does not fit,
        ``LookupProblem`` or ``DirectoryNotReady`` if its people do not translate (how
        they did goes into ``notes``)."""
        resolved = resolve_row(kind, item)
        if kind.uses_directory:
            if self.people is None:
                raise DirectoryNotReady("no DingTalk directory is configured for look-ups")
            resolved, note = await self.people.translate(resolved, calls)
            if notes is not None:
                notes.append(note)
        schema = await self.schemas.get(kind.process_code, calls)
        table_columns = {
            label: src.columns for label, src in kind.form.items() if src.columns is not None
        }
        values = encode(
            resolved.form, schema, columns=table_columns, process_code=kind.process_code
        )
        if kind.attachments:  # uploaded once, before the create (pipeline/attach.py)
            if self.attacher is None:
                raise AttachmentProblem("attachments are not configured", code="bad_config")
            values += await self.attacher.values(item, kind.attachments, resolved.originator, calls)
        if kind.correlation_field:
            key = correlation_key(item.kind, item.business_key, item.round)
            values.append(FormComponentValue(name=kind.correlation_field, value=key))
        approvers = [ApproverRule(action_type=a, user_ids=u) for a, u in resolved.approvers]
        return CreateInstanceRequest(
            process_code=kind.process_code,
            originator_user_id=resolved.originator,
            form_component_values=values,
            dept_id=resolved.dept_id,
            microapp_agent_id=self.agent_id,
            approvers=approvers or None,
            cc_list=resolved.cc or None,
            cc_position=kind.cc.position if kind.cc and resolved.cc else None,
        )

    async def _prepare(self, item: SubmitItem) -> _Prepared | None:
        """The request for one claimed approval, or None when it was parked or deferred."""
        kind = self.kinds.get(item.kind)
        calls: list[CallRecord] = []
        if kind is None:
            await self._park(
                item, "unknown_kind", f"kind {item.kind!r} is no longer configured", calls
            )
            return None
        notes: list[str] = []
        try:
            request = await self.build(item, kind, calls, notes)
        except (MappingError, LookupProblem, AttachmentProblem) as exc:
            await self._park(item, exc.code, exc.message, calls)
            return None
        except DirectoryNotReady as exc:
            await self._wait(item, exc.message, calls)
            return None
        except DingTalkError as exc:
            await self._failed(item, exc, calls)
            return None
        form = [v.to_wire() for v in request.form_component_values]
        intent = Intent(
            approval_id=item.id,
            process_code=kind.process_code,
            form_values=form,
            originator_user_id=request.originator_user_id,
            dept_id=request.dept_id,
            note=notes[0] if notes else None,
        )
        return _Prepared(item, request, intent, calls)

    async def _wait(self, item: SubmitItem, message: str, calls: list[CallRecord]) -> None:
        """Back to pending without spending an attempt: the directory is not ready."""
        now = self.clock.now()
        waited = (now - item.captured_at).total_seconds()
        delay = directory_wait(waited, self.retry.base)
        await self.store.record_failed(
            item.id,
            to_state=ApprovalState.PENDING,
            now=now,
            next_attempt_at=now + timedelta(seconds=delay),
            error_code="directory_not_synced",
            error_message=message,
            refund=True,
            calls=calls,
            owner=self.owner,
        )
        logger.info(
            "waiting for the directory",
            extra={"action": "push_waiting", **approval_fields(item), "error": message},
        )

    async def _create(self, p: _Prepared, send_before: datetime) -> None:
        """Create the instance of a prepared approval (its intent committed) and record it."""
        item, calls, process_code = p.item, p.calls, p.intent.process_code
        try:
            instance_id = await call(
                calls,
                "create",
                "create",
                self.client.create_instance(p.request, send_before=send_before),
            )
        except DingTalkError as exc:
            if exc.code in SCHEMA_CODES:
                self.schemas.forget(process_code)
            await self._failed(
                item, exc, calls, process_code=process_code, form=p.intent.form_values
            )
            return
        now = self.clock.now()
        await self.store.record_created(
            item.id,
            instance_id=instance_id,
            process_code=process_code,
            form_values=p.intent.form_values,
            now=now,
            next_poll_at=now + self.timing.quiet_after,
            calls=calls,
        )
        self.observer.approval_created(item.kind, (now - item.captured_at).total_seconds())
        logger.info(
            "approval instance created",
            extra={
                "action": "push_created",
                **approval_fields(item),
                "instance_id": instance_id,
                "attempt": item.attempts,
            },
        )

    async def _park(
        self, item: SubmitItem, code: str, message: str, calls: list[CallRecord]
    ) -> None:
        now = self.clock.now()
        await self.store.record_failed(
            item.id,
            to_state=ApprovalState.INVALID,
            now=now,
            next_attempt_at=now,
            error_code=code,
            error_message=message,
            calls=calls,
            owner=self.owner,
        )
        self.observer.approval_parked(item.kind, ApprovalState.INVALID.value, code)
        logger.warning(
            "approval parked",
            extra={
                "action": "push_rejected",
                **approval_fields(item),
                "error_code": code,
                "error": message,
            },
        )

    async def _failed(
        self,
        item: SubmitItem,
        exc: DingTalkError,
        calls: list[CallRecord],
        *,
        process_code: str | None = None,
        form: Any = None,
    ) -> None:
        now = self.clock.now()
        state, retry_at, refund = await self._classify(item, exc, now)
        await self.store.record_failed(
            item.id,
            to_state=state,
            now=now,
            next_attempt_at=retry_at,
            error_code=exc.code or type(exc).__name__,
            error_message=explain(exc, item),
            refund=refund,
            process_code=process_code,
            form_values=form,
            calls=calls,
            owner=self.owner,
        )
        if state in (ApprovalState.INVALID, ApprovalState.DEAD):
            self.observer.approval_parked(item.kind, state.value, type(exc).__name__)
        logger.warning(
            "create failed",
            extra={
                "action": "push_retry" if state is ApprovalState.PENDING else f"push_{state.value}",
                **approval_fields(item),
                "attempt": item.attempts,
                "error_class": type(exc).__name__,
                "error_code": exc.code,
            },
        )

    async def _classify(
        self, item: SubmitItem, exc: DingTalkError, now: datetime
    ) -> tuple[ApprovalState, datetime, bool]:
        """Next state, when to try again, and whether the attempt is refunded."""
        if isinstance(exc, DingTalkOutcomeUnknown):
            return ApprovalState.UNKNOWN, now + self.timing.unknown_grace, False
        if isinstance(exc, DingTalkNotSent):  # nothing reached DingTalk: try again at once
            return ApprovalState.PENDING, now, True
        if isinstance(exc, DingTalkRejected):
            return ApprovalState.INVALID, now, False
        if isinstance(exc, DingTalkQuotaExhausted):
            await self.pauses.quota_exhausted(now)  # the pause holds every claim back
            return ApprovalState.PENDING, now, True
        if isinstance(exc, DingTalkAuthError):
            await self.pauses.auth_failed(now, exc.message)
            return ApprovalState.PENDING, now, True
        if self.retry.exhausted(item.attempts):
            return ApprovalState.DEAD, now, False
        if isinstance(exc, DingTalkThrottled):
            return ApprovalState.PENDING, now + timedelta(seconds=exc.retry_after), True
        return (
            ApprovalState.PENDING,
            now + timedelta(seconds=self.retry.delay(item.attempts)),
            False,
        )
