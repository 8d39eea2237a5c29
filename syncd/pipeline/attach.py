"""Attachments at submit: a kind's DDAttachment components filled with files uploaded
into the originator's approval space, before the create, each exactly once.

For each component (``[kinds.<name>.attachments]``) the payload names the files
(:func:`file_refs`); each file already committed for this round (``syncd.attachment``,
keyed by component and index) is reused as recorded, every other one is fetched, checked
against DingTalk's limits, uploaded as the originator and recorded at once with its calls
and a history line: a submit that crashed after a commit never uploads that file again.
A file that cannot be had, or that DingTalk would refuse, parks the round with a message
naming it (:class:`AttachmentProblem`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from syncd.dingtalk.models import FormComponentValue
from syncd.domain import CallRecord, SubmitItem
from syncd.errors import SyncdError
from syncd.pipeline.attach_table import TableFileProblem, table_refs
from syncd.pipeline.lookup import DirectoryNotReady
from syncd.pipeline.sources import MISSING, lookup
from syncd.ports import Clock
from syncd.ports.attachments import (
    Attachment,
    AttachmentLimits,
    AttachmentStore,
    AttachmentUploader,
    FileFetcher,
    FileRef,
    FileUnavailable,
    UnionIds,
    attachment_slot,
    attachment_value,
    file_problem,
)
from syncd.ports.file_table import FileTable
from syncd.settings_attachments import AttachmentSource


class AttachmentProblem(SyncdError):
    """A file of a DDAttachment component cannot be sent: the round is parked."""

    def __init__(self, message: str, *, code: str = "attachment_unavailable") -> None:
        super().__init__(message)
        self.code = code


def _bytes(text: str, what: str) -> bytes:
    try:
        if text.startswith("\\x"):  # a bytea as PostgreSQL's to_jsonb writes it
            return bytes.fromhex(text[2:])
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise AttachmentProblem(
            f"{what} is neither base64 nor \\x hex", code="bad_payload"
        ) from exc


def file_ref(raw: Any, what: str) -> FileRef:
    """One file as a payload names it: ``name`` and one of content_base64, path or url."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        raise AttachmentProblem(
            f"{what} must be an object with name and one of content_base64, path or url",
            code="bad_payload",
        )
    given = [k for k in ("content_base64", "path", "url") if isinstance(raw.get(k), str)]
    if len(given) != 1:
        raise AttachmentProblem(
            f"{what} ({raw['name']!r}) needs exactly one of content_base64, path or url",
            code="bad_payload",
        )
    if given[0] == "content_base64":
        return FileRef(raw["name"], content=_bytes(raw["content_base64"], what))
    return FileRef(raw["name"], path=raw.get("path"), url=raw.get("url"))


def file_refs(label: str, source: AttachmentSource, payload: Any) -> list[FileRef]:
    """The files the payload names for one component (none when the path is absent)."""
    if source.field is None:  # a table's files: see attach_table
        return []
    what = f"attachment {label!r} (payload {source.field!r})"
    value = lookup(payload, source.field)
    if value is MISSING or value is None or value == []:
        return []
    if isinstance(value, str):
        name = lookup(payload, source.name_field) if source.name_field else MISSING
        if not isinstance(name, str):
            raise AttachmentProblem(
                f"{what} is a bare file: set name_field to the payload path of its name",
                code="bad_payload",
            )
        return [FileRef(name, content=_bytes(value, what))]
    items = value if isinstance(value, list) else [value]
    return [file_ref(item, f"{what} file {n + 1}") for n, item in enumerate(items)]


class Attacher:
    """Uploads a round's files once and gives the components' values."""

    def __init__(
        self,
        uploader: AttachmentUploader,
        fetcher: FileFetcher,
        store: AttachmentStore,
        clock: Clock,
        limits: AttachmentLimits,
        table: FileTable | None = None,
    ) -> None:
        self.uploader = uploader
        self.fetcher = fetcher
        self.store = store
        self.clock = clock
        self.limits = limits
        self.table = table

    async def values(
        self,
        item: SubmitItem,
        sources: Mapping[str, AttachmentSource],
        originator: str,
        calls: list[CallRecord],
    ) -> list[FormComponentValue]:
        """One value per component with files (``DingTalkError`` from an upload, whose
        failed call is added to ``calls``)."""
        wanted = {label: file_refs(label, src, item.payload) for label, src in sources.items()}
        for label, src in sources.items():
            if src.table is not None:
                wanted[label] = await self._table_refs(label, src, item)
        wanted = {label: refs for label, refs in wanted.items() if refs}
        if not wanted:
            return []
        for label, refs in wanted.items():
            if len(refs) > self.limits.max_files:
                raise AttachmentProblem(
                    f"attachment {label!r} has {len(refs)} files; DingTalk takes at most"
                    f" {self.limits.max_files} per component",
                    code="attachment_refused",
                )
        done = await self.store.attachments(item.id)
        union: str | None = None
        values = []
        for label, refs in wanted.items():
            files: list[Attachment] = []
            for index, ref in enumerate(refs):
                recorded = done.get((label, index))
                if recorded is None:
                    if union is None:
                        union = await union_of(self.store, originator, "the originator")
                    recorded = await self._upload(item, label, index, ref, originator, union, calls)
                files.append(recorded)
            values.append(FormComponentValue(name=label, value=attachment_value(files)))
        return values

    async def _table_refs(
        self, label: str, source: AttachmentSource, item: SubmitItem
    ) -> list[FileRef]:
        try:
            return await table_refs(self.table, label, source, item, self.limits.max_file_size)
        except TableFileProblem as exc:
            raise AttachmentProblem(exc.message, code=exc.code) from exc

    async def _upload(
        self,
        item: SubmitItem,
        label: str,
        index: int,
        ref: FileRef,
        user_id: str,
        union: str,
        failed: list[CallRecord],
    ) -> Attachment:
        what = f"attachment {label!r} file {index + 1} {ref.describe()}"
        slot = attachment_slot(label, index)
        earlier = await self.store.upload_begun(item.id, slot, self.clock.now())
        file, calls = await upload_file(self, ref, what, user_id, union, failed, earlier)
        await self.store.record_attachment(
            item.id, label, index, file, user_id, calls, self.clock.now()
        )
        return file


class Uploading(Protocol):
    """What an upload needs: the uploader, the file fetcher and DingTalk's limits."""

    uploader: AttachmentUploader
    fetcher: FileFetcher
    limits: AttachmentLimits


async def union_of(store: UnionIds, user_id: str, who: str) -> str:
    """``user_id``'s unionId (uploads name people by it). :class:`AttachmentProblem` for a
    person who left or whom the directory does not know; :class:`DirectoryNotReady` (wait,
    do not park) while no full sync of the directory has finished."""
    union = await store.union_id(user_id)
    if union:
        return union
    if (left := await store.left_at(user_id)) is not None:
        raise AttachmentProblem(
            f"{who} {user_id!r} left the organisation (the directory saw it at "
            f"{left.isoformat(timespec='seconds')}): nothing was uploaded; submit it as "
            "someone present (change the row's originator, then syncd retry)",
            code="attachment_originator_left",
        )
    if not await store.directory_synced():
        raise DirectoryNotReady(
            f"waiting for the directory's first full sync: uploads name {who} {user_id!r} "
            "by the unionId it holds"
        )
    raise AttachmentProblem(
        f"{who} {user_id!r} has no unionId in the DingTalk directory"
        " (uploads name people by it): check the userId, or that they have not left",
        code="attachment_no_union_id",
    )


async def upload_file(
    parts: Uploading,
    ref: FileRef,
    what: str,
    user_id: str,
    union: str,
    failed: list[CallRecord],
    earlier: datetime | None,
) -> tuple[Attachment, list[CallRecord]]:
    """One file fetched, checked and uploaded as ``user_id``, with its calls (space info,
    upload info, PUT, commit: each its own); a failed upload's calls go to ``failed``.
    ``earlier``: when an earlier attempt at this file began (its commit is then adopted)."""
    try:
        data = await parts.fetcher.fetch(ref, parts.limits.max_file_size)
    except FileUnavailable as exc:
        raise AttachmentProblem(f"{what}: {exc.message}") from exc
    if problem := file_problem(ref.name, len(data), parts.limits):
        raise AttachmentProblem(f"{what}: {problem}", code="attachment_refused")
    calls: list[CallRecord] = []
    try:
        file = await parts.uploader.upload(user_id, union, ref.name, data, calls, earlier=earlier)
    except Exception:
        failed.extend(calls)
        raise
    return file, calls
