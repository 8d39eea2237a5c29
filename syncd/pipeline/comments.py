"""The comment stage: outbox comments added to their rounds' instances, each exactly once.

A comment waits (``syncd.comment``, state ``waiting``) until its round runs in DingTalk,
then goes out in order with the round's other comments. DingTalk's comment call is not
idempotent (a retry adds a second comment), so a send is an intent first: the claim
commits ``in_doubt = true`` before the call, and only an answer that proves DingTalk did
not add it (throttled, refused, never sent) clears it. A comment claimed again while in
doubt (a crash after the call, a lost answer) is not sent before the instance is read:
if DingTalk's records hold more comments by that user with that text than syncd knows
it sent, this one arrived, and it is marked sent without a second call.

A comment's files (:mod:`syncd.pipeline.comment_files`) are uploaded into the commenting
user's approval space before the comment call, each recorded as it is committed (a retry
reuses them); a file that cannot be had fails the comment with a message naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from syncd.domain import CallRecord
from syncd.domain_comments import CommentItem
from syncd.errors import (
    DingTalkAuthError,
    DingTalkError,
    DingTalkNotSent,
    DingTalkQuotaExhausted,
    DingTalkRejected,
    DingTalkThrottled,
    DingTalkTransient,
)
from syncd.pipeline.attach import AttachmentProblem
from syncd.pipeline.calls import call
from syncd.pipeline.comment_files import CommentFiles
from syncd.pipeline.lookup import DirectoryNotReady, match
from syncd.pipeline.pauses import Pauses
from syncd.pipeline.retry import RetryPolicy
from syncd.ports import ApprovalClient, Clock, CommentStore
from syncd.ports.lookup import PeopleDirectory
from syncd.settings_kinds import KindSettings

logger = logging.getLogger(__name__)

#: Answers that prove the call did not add the comment.
NOT_ADDED = (DingTalkThrottled, DingTalkNotSent, DingTalkAuthError, DingTalkQuotaExhausted)
#: DingTalk's refusal while the instance cannot take comments (finished, say): wait for it.
NOT_NOW = frozenset({"aflowProcessInstCanNotBeExecuted", "aflowProcessInstStatusException"})


class NoCommenter(Exception):
    """Who should comment cannot be named as a DingTalk userId."""


class Comments:
    def __init__(
        self,
        store: CommentStore,
        pauses: Pauses,
        client: ApprovalClient,
        kinds: Mapping[str, KindSettings],
        clock: Clock,
        retry: RetryPolicy,
        *,
        owner: str,
        directory: PeopleDirectory | None = None,
        files: CommentFiles | None = None,
        batch_size: int = 20,
        lease: timedelta = timedelta(minutes=2),
    ) -> None:
        self.store = store
        self.pauses = pauses
        self.client = client
        self.kinds = kinds
        self.clock = clock
        self.retry = retry
        self.owner = owner
        self.directory = directory
        self.files = files
        self.batch_size = batch_size
        self.lease = lease
        self._finished = False  # what the last read of an instance said

    async def run_once(self) -> int:
        now = self.clock.now()
        handled = await self.store.drop_finished(now)
        if await self.pauses.active(now):
            return handled
        items = await self.store.claim_comments(self.batch_size, now, self.owner, now + self.lease)
        for item in items:
            await self.send_one(item)
        return handled + len(items)

    async def commenter(self, item: CommentItem) -> str:
        """The userId to comment as: the row's user, else the kind's ``comment_user`` (both
        named as the kind names its originator), else the round's originator."""
        kind = self.kinds.get(item.kind)
        named = item.user_id or (kind.comment_user if kind else None)
        if named is None:
            if not item.originator_user_id:
                raise NoCommenter("the round has no originator to comment as")
            return item.originator_user_id
        by = kind.originator_by if kind else "userid"
        if by == "userid":
            return named
        if self.directory is None:
            raise NoCommenter(f"user {named!r} is named by {by}, and no directory is set up")
        found = match((await self.directory.holders(by, [named])).get(named, []))
        if found.outcome != "found":
            raise NoCommenter(f"user {named!r} ({by}) is {found.outcome} in the directory")
        return found.holder.user_id

    async def send_one(self, item: CommentItem) -> None:
        calls: list[CallRecord] = []
        now = self.clock.now()
        try:
            user = await self.commenter(item)
        except NoCommenter as exc:
            await self._failed(item, "no_commenter", f"comment {item.id}: {exc}", calls)
            return
        doubt, sending = item.in_doubt, False
        try:
            if doubt and await self._arrived(item, user, calls):
                note = f"comment {item.id} found on the instance after an unknown outcome"
                await self.store.finish_comment(
                    item, now, self.owner, sent_as=user, error=None, calls=calls, note=note
                )
                return
            if doubt and self._finished:
                await self._release(
                    item, False, DingTalkRejected("finished", code="finished"), calls
                )
                return
            attached = await self._attachments(item, user, calls)  # an upload failing: not sent
            doubt, sending = False, True
            request = self.client.add_comment(item.instance_id, item.text, user, attached)
            await call(calls, "comment", "comment", request)
        except AttachmentProblem as exc:
            await self._failed(item, exc.code, f"comment {item.id}: {exc}", calls)
            return
        except DirectoryNotReady as exc:  # its files wait for the directory, unsent
            waiting = DingTalkTransient(str(exc), code="directory_not_synced")
            await self._release(item, False, waiting, calls)
            return
        except DingTalkRejected as exc:
            if exc.code not in NOT_NOW:
                await self._failed(item, exc.code or "rejected", exc.message, calls)
                return
            await self._release(item, False, exc, calls)
            return
        except DingTalkError as exc:
            in_doubt = doubt or (sending and not isinstance(exc, NOT_ADDED))
            await self._release(item, in_doubt, exc, calls)
            return
        note = f"comment {item.id} added as {user}"
        await self.store.finish_comment(
            item, now, self.owner, sent_as=user, error=None, calls=calls, note=note
        )

    async def _attachments(
        self, item: CommentItem, user: str, calls: list[CallRecord]
    ) -> list[dict[str, str]]:
        """The comment's files as ``file.attachments`` items, uploaded once."""
        if not item.files:
            return []
        if self.files is None:
            raise AttachmentProblem("files on comments are not set up", code="attachment_refused")
        return [f.item() for f in await self.files.attachments(item, user, calls)]

    async def _arrived(self, item: CommentItem, user: str, calls: list[CallRecord]) -> bool:
        """Whether DingTalk holds more comments by ``user`` with this text than syncd sent."""
        instance = await call(calls, "get", "comment", self.client.get_instance(item.instance_id))
        self._finished = instance.status != "RUNNING"
        seen = sum(
            1
            for op in instance.operation_records
            if op.type == "ADD_REMARK" and op.user_id == user and op.remark == item.text
        )
        return seen > await self.store.sent_count(item.approval_id, user, item.text)

    async def _failed(
        self, item: CommentItem, code: str, message: str, calls: list[CallRecord]
    ) -> None:
        logger.warning(
            "comment not sent",
            extra={"action": "comment_failed", "approval_id": item.approval_id, "code": code},
        )
        note = f"comment {item.id} not sent: {message}"
        error = (code, message[:2000])
        await self.store.finish_comment(
            item, self.clock.now(), self.owner, sent_as=None, error=error, calls=calls, note=note
        )

    async def _release(
        self, item: CommentItem, in_doubt: bool, exc: DingTalkError, calls: list[CallRecord]
    ) -> None:
        now = self.clock.now()
        if not in_doubt and self.retry.exhausted(item.attempts):
            await self._failed(item, exc.code or type(exc).__name__, exc.message, calls)
            return
        retry_at = now + timedelta(seconds=self.retry.delay(item.attempts))
        error = (exc.code or type(exc).__name__, exc.message[:2000])
        await self.store.release_comment(
            item, now, self.owner, retry_at, in_doubt=in_doubt, error=error, calls=calls
        )
