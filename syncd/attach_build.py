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


def build_attacher(app: App) -> Attacher | None:
    """The attacher of ``app``'s submit, or ``None`` when no kind maps attachments."""
    settings, clock = app.settings, app.clock
    if not any(kind.attachments for kind in settings.kinds.values()):
        return None
    a = settings.attachments
    limits = AttachmentLimits(a.max_file_size, a.max_files, frozenset(a.file_types))
    return Attacher(
        HttpxAttachmentClient(
            app.http, agent_id=settings.dingtalk.agent_id, pacer=app._pacer(), clock=clock
        ),
        Files(a.base_dir, a.allow_hosts, timeout=a.fetch_timeout),
        PostgresAttachmentStore(app.pool, actor=app.owner),
        clock,
        limits,
        PostgresFileTable(app.pool),
    )
