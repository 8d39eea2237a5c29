"""Files on outgoing comments: a comment row's ``files`` uploaded into the commenting
user's approval space before the comment call, each exactly once.

As at submit (:mod:`syncd.pipeline.attach`), each file already committed for the comment
(``syncd.comment_file``, keyed by the comment and the file's index) is reused as
recorded, and every other one is fetched, checked, uploaded and recorded at once with its
calls: a comment retried after a crash between a commit and the comment call uploads
nothing again. A file that cannot be had raises :class:`AttachmentProblem` naming it.
"""

from __future__ import annotations

from syncd.domain import CallRecord
from syncd.domain_comments import CommentItem
from syncd.pipeline.attach import file_ref, union_of, upload_file
from syncd.ports import Clock
from syncd.ports.attachments import (
    Attachment,
    AttachmentLimits,
    AttachmentUploader,
    CommentFileStore,
    FileFetcher,
    comment_slot,
)


class CommentFiles:
    """Uploads a comment's files once and gives them as ``file.attachments`` items."""

    def __init__(
        self,
        uploader: AttachmentUploader,
        fetcher: FileFetcher,
        store: CommentFileStore,
        clock: Clock,
        limits: AttachmentLimits,
    ) -> None:
        self.uploader = uploader
        self.fetcher = fetcher
        self.store = store
        self.clock = clock
        self.limits = limits

    async def attachments(
        self, item: CommentItem, user_id: str, failed: list[CallRecord]
    ) -> list[Attachment]:
        """The comment's files, uploaded as ``user_id`` where not committed yet
        (``DingTalkError`` from an upload, whose calls are added to ``failed``)."""
        if not item.files:
            return []
        refs = [
            file_ref(raw, f"comment {item.id} file {n + 1}") for n, raw in enumerate(item.files)
        ]
        done = await self.store.comment_files(item.id)
        union: str | None = None
        files = []
        for index, ref in enumerate(refs):
            recorded = done.get(index)
            if recorded is None:
                if union is None:
                    union = await union_of(self.store, user_id, "the commenting user")
                what = f"comment {item.id} file {index + 1} {ref.describe()}"
                earlier = await self.store.upload_begun(
                    item.approval_id, comment_slot(item.id, index), self.clock.now()
                )
                recorded, calls = await upload_file(
                    self, ref, what, user_id, union, failed, earlier
                )
                await self.store.record_comment_file(
                    item.id, item.approval_id, index, recorded, user_id, calls, self.clock.now()
                )
            files.append(recorded)
        return files
