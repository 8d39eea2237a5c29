"""The App's stages after the way back's own: comments (:mod:`syncd.app_comments`) and
attachments back (:mod:`syncd.pipeline.attach_back`, for kinds with
``[kinds.<name>.attachments_back]``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from syncd.app_comments import comment_stage
from syncd.db.attachment_in_store import PostgresAttachmentInStore
from syncd.dingtalk.downloads import HttpxDownloadClient
from syncd.files_back import Directory
from syncd.metrics.attachments_back import AttachmentsBackMetrics
from syncd.pipeline.attach_back import AttachmentsBack
from syncd.ports.attachments_back import FileDirectory, LinksTarget

if TYPE_CHECKING:
    from syncd.app import App


def attachments_back_stage(app: App) -> AttachmentsBack | None:
    """The stage, or ``None`` when no kind fetches its files back."""
    kinds = {
        name: kind.attachments_back
        for name, kind in app.settings.kinds.items()
        if kind.attachments_back is not None
    }
    if not kinds:
        return None
    directories: dict[str, FileDirectory] = {
        name: Directory(back.directory) for name, back in kinds.items() if back.directory
    }
    links = {}
    for name, back in kinds.items():
        write_back = app.settings.kinds[name].write_back
        if back.column and write_back and write_back.table and write_back.key_column:
            links[name] = LinksTarget(write_back.table, write_back.key_column, back.column)
    return AttachmentsBack(
        PostgresAttachmentInStore(app.pool, actor=app.owner),
        app.client,
        HttpxDownloadClient(app.http, pacer=app._pacer(), clock=app.clock),
        kinds,
        directories,
        app.clock,
        app.retry,
        owner=app.owner,
        max_size=app.settings.attachments.max_file_size,
        links=links,
        observer=AttachmentsBackMetrics(app.registry),
        batch_size=app.settings.pipeline.batch_size,
        lease=app.timing.lease,
    )


def later_stages(app: App) -> dict[str, Any]:
    """Built by :meth:`syncd.app.App.open` once the other stages and the directory are."""
    back = attachments_back_stage(app)
    return {"comment": comment_stage(app), **({"attach_back": back} if back else {})}
