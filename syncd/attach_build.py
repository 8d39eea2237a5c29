"""Builds the attachment part of submit (``syncd.pipeline.attach.Attacher``) from the
settings: the upload client on DingTalk's API client, the file fetcher, the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.db.attachment_store import PostgresAttachmentStore
from syncd.db.file_table import PostgresFileTable
from syncd.dingtalk.attachments import HttpxAttachmentClient
from syncd.files import Files
from syncd.pipeline.attach import Attacher
from syncd.ports.attachments import AttachmentLimits

if TYPE_CHECKING:
    from syncd.app import App


def uploading(app: App) -> tuple[HttpxAttachmentClient, Files, AttachmentLimits]:
    """The upload client, the file fetcher and the limits, from ``app``'s settings."""
    settings = app.settings
    a = settings.attachments
    limits = AttachmentLimits(a.max_file_size, a.max_files, frozenset(a.file_types))
    uploader = HttpxAttachmentClient(
        app.http, agent_id=settings.dingtalk.agent_id, pacer=app._pacer(), clock=app.clock
    )
    return uploader, Files(a.base_dir, a.allow_hosts, timeout=a.fetch_timeout), limits


def build_attacher(app: App) -> Attacher | None:
    """The attacher of ``app``'s submit, or ``None`` when no kind maps attachments."""
    if not any(kind.attachments for kind in app.settings.kinds.values()):
        return None
    uploader, fetcher, limits = uploading(app)
    store = PostgresAttachmentStore(app.pool, actor=app.owner)
    return Attacher(uploader, fetcher, store, app.clock, limits, PostgresFileTable(app.pool))
