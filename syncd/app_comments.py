"""The App's comment stage (outbox comments sent to DingTalk; :mod:`syncd.pipeline.comments`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.attach_build import uploading
from syncd.db.attachment_store import PostgresAttachmentStore
from syncd.db.comment_store import PostgresCommentStore
from syncd.pipeline.comment_files import CommentFiles
from syncd.pipeline.comments import Comments

if TYPE_CHECKING:
    from syncd.app import App


def comment_stage(app: App) -> Comments:
    """Built by :meth:`syncd.app.App.open` once the other stages and the directory are."""
    uploader, fetcher, limits = uploading(app)
    store = PostgresAttachmentStore(app.pool, actor=app.owner)
    files = CommentFiles(uploader, fetcher, store, app.clock, limits)
    return Comments(
        PostgresCommentStore(app.pool, actor=app.owner),
        app.pauses,
        app.client,
        app.settings.kinds,
        app.clock,
        app.retry,
        owner=app.owner,
        directory=app.lookup,
        files=files,
        batch_size=app.settings.pipeline.batch_size,
        lease=app.timing.lease,
    )
