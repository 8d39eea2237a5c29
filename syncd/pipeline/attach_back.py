"""Attachments back: the files of a finished instance fetched into the place its kind
configures (``[kinds.<name>.attachments_back]``), each exactly once.

Ordering: **the outcome first, then the files.** The outcome is written back in the
transaction that makes the round final and waits on no download; this stage then claims
the finished round (``syncd.attachment_fetch``, with a lease), reads the instance (GET,
§4.1) for its DDAttachment files and its comments' files (§18.2), grants them to the
originator (``authDownload``, ≤ 10 per call), and fetches each through its own 15-minute
link (§17.7), streamed and bounded by ``[attachments] max_file_size``, one file at a time.
A link that expired before its GET is asked for again once. A file's record
(``syncd.attachment_in``) and its business-table row commit together; a directory file is
renamed into place before its record (the same name every time, so a crash in between
writes it again over itself). A file that cannot be had (no permission, deleted, too large)
is recorded as failed with the reason and the round goes on; DingTalk unreachable or
throttled releases the round to be tried again later, keeping what was recorded.

``to = "links"`` fetches no bytes: each file's download link (valid 15 minutes) and its
metadata go as one JSON array into a column of the business row, in one transaction with
the files' records (state ``linked``); a business row that is missing releases the round.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

from syncd.dingtalk.models import ProcessInstance
from syncd.domain import CallRecord
from syncd.errors import (
    DingTalkError,
    DingTalkRejected,
    DingTalkTransient,
    StoreError,
    WriteBackError,
)
from syncd.pipeline.calls import call
from syncd.pipeline.retry import RetryPolicy
from syncd.ports import ApprovalClient, Clock
from syncd.ports.attachments import extension
from syncd.ports.attachments_back import (
    COMMENT,
    LINK_VALIDITY,
    AttachmentInStore,
    AttachmentsBackObserver,
    DownloadClient,
    FetchItem,
    FileBack,
    FileDirectory,
    LinkExpired,
    LinksTarget,
    TooLarge,
    link_entry,
)
from syncd.settings_attachments_back import AttachmentsBackSettings

logger = logging.getLogger(__name__)
PURPOSE = "attach_back"


def _size(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, str) and value.strip().isdigit() else None


def _file(raw: Any, attached_in: str, by: str | None, at: Any) -> FileBack | None:
    """One file item (all strings, or ``fileSize`` a number, §17.6), named from GET's
    ``fileName`` and ``fileType``: a hand-attached file's download name is a placeholder."""
    get = raw.get if isinstance(raw, dict) else getattr(raw, "__dict__", {}).get
    file_id = get("fileId", get("file_id"))
    if not isinstance(file_id, str | int) or not str(file_id):
        return None
    name = str(get("fileName", get("file_name")) or "") or str(file_id)
    kind = str(get("fileType", get("file_type")) or "").lower().lstrip(".") or extension(name)
    if kind and extension(name) != kind:
        name = f"{name}.{kind}"
    space = get("spaceId", get("space_id"))
    return FileBack(
        file_id=str(file_id),
        space_id=None if space is None else str(space),
        name=name,
        size=_size(get("fileSize", get("file_size"))),
        type=kind,
        attached_in=attached_in,
        attached_by=by,
        attached_at=at,
    )


def files_of(instance: ProcessInstance, settings: AttachmentsBackSettings) -> list[FileBack]:
    """The instance's files the kind wants, once each: DDAttachment components' (by the
    originator, at the instance's creation), then comments' (by the commenter, then)."""
    found: dict[str, FileBack] = {}
    labels = settings.labels
    by, at = instance.originator_user_id, instance.create_time
    for value in instance.form_component_values:
        chosen = value.name in labels if labels is not None else (
            value.component_type == "DDAttachment"
        )  # fmt: skip
        if not chosen or not value.value:
            continue
        try:
            items = json.loads(value.value)
        except ValueError:
            continue  # not a DDAttachment value after all
        for raw in items if isinstance(items, list) else []:
            if (f := _file(raw, value.name or "", by, at)) and f.file_id not in found:
                found[f.file_id] = f
    if settings.comments:
        for record in instance.operation_records:
            for raw in record.attachments:
                item = raw.model_dump()
                if (f := _file(item, COMMENT, record.user_id, record.date)) and (
                    f.file_id not in found
                ):
                    found[f.file_id] = f
    return list(found.values())


class AttachmentsBack:
    """The stage: claims finished rounds of the kinds that fetch files back."""

    def __init__(
        self,
        store: AttachmentInStore,
        client: ApprovalClient,
        downloads: DownloadClient,
        kinds: Mapping[str, AttachmentsBackSettings],
        directories: Mapping[str, FileDirectory],
        clock: Clock,
        retry: RetryPolicy,
        *,
        owner: str,
        max_size: int,
        links: Mapping[str, LinksTarget] | None = None,
        observer: AttachmentsBackObserver | None = None,
        batch_size: int = 20,
        lease: timedelta = timedelta(minutes=5),
    ) -> None:
        self.store = store
        self.client = client
        self.downloads = downloads
        self.kinds = kinds
        self.directories = directories
        self.clock = clock
        self.retry = retry
        self.owner = owner
        self.max_size = max_size
        self.links = links or {}
        self.observer = observer
        self.batch_size = batch_size
        self.lease = lease

    async def run_once(self) -> int:
        now = self.clock.now()
        since = {kind: at for kind, back in self.kinds.items() if (at := back.since_at)}
        items = await self.store.claim(
            sorted(self.kinds), self.batch_size, now, self.owner, now + self.lease, since
        )
        for item in items:
            await self.fetch(item)
        return len(items)

    async def fetch(self, item: FetchItem) -> None:
        calls: list[CallRecord] = []
        try:
            instance = await call(calls, "get", PURPOSE, self.client.get_instance(item.instance_id))
            linking = item.kind in self.links
            done = set() if linking else await self.store.recorded(item.approval_id)
            todo = [f for f in files_of(instance, self.kinds[item.kind]) if f.file_id not in done]
            originator = instance.originator_user_id
            if todo and originator:
                todo = await self._grant(item, originator, todo, calls)
            if linking:
                await self._links(item, todo, calls)
            for file in [] if linking else todo:
                await self._one(item, file, calls)
        except (DingTalkError, StoreError) as exc:
            await self._release(item, exc, calls)
            return
        await self.store.finish(item, self.clock.now(), self.owner)

    async def _release(
        self, item: FetchItem, exc: DingTalkError | StoreError, calls: list[CallRecord]
    ) -> None:
        """Try the round again later, with backoff: DingTalk unreachable or throttled, or
        a database error while recording a file (what was recorded stays)."""
        code = getattr(exc, "code", None) or type(exc).__name__
        tried = item.attempts + 1  # this pass included
        give_up = self.retry.exhausted(tried)  # each pass spends calls: not forever
        logger.warning(
            "attachments back: given up" if give_up else "attachments back: will try again",
            extra={"action": "attach_back_gave_up" if give_up else "attach_back_retry",
                   "approval_id": item.approval_id, "error": type(exc).__name__, "code": code,
                   "attempts": tried},
        )  # fmt: skip
        now = self.clock.now()
        delay = timedelta(seconds=self.retry.delay(item.attempts + 1))
        error = f"{code}: {exc.message}"
        if give_up:
            error = f"given up after {tried} attempts: {error}"
        try:
            await self.store.release(
                item, now, self.owner, now + delay, error, calls, give_up=give_up
            )
        except StoreError:  # the database is away: the lease expires instead
            logger.warning(
                "attachments back: round not released",
                extra={"action": "attach_back_release_failed", "approval_id": item.approval_id},
            )

    async def _grant(
        self, item: FetchItem, user: str, files: list[FileBack], calls: list[CallRecord]
    ) -> list[FileBack]:
        """Grant the files to the originator; when DingTalk refuses the batch, each on its
        own, recording the ones refused as failed. The files granted."""
        try:
            await self.downloads.grant(user, files, calls)
            return files
        except DingTalkRejected:
            if len(files) == 1:
                raise
        granted = []
        for file in files:
            try:
                await self.downloads.grant(user, [file], calls)
            except DingTalkRejected as exc:
                await self._failed(item, file, exc.code or "rejected", exc.message, calls)
                continue
            granted.append(file)
        return granted

    async def _links(self, item: FetchItem, files: list[FileBack], calls: list[CallRecord]) -> None:
        """Each file's link and metadata into the business row (``to = "links"``)."""
        links = []
        for file in files:
            try:
                url = await self.downloads.link(item.instance_id, file, calls)
            except DingTalkRejected as exc:
                await self._failed(item, file, exc.code or "rejected", exc.message, calls)
                continue
            links.append((file, link_entry(file, url, self.clock.now() + LINK_VALIDITY)))
        target = self.links[item.kind]
        if not await self.store.save_links(item, links, calls, self.clock.now(), target):
            raise WriteBackError(
                f"no row of {target.table} has {target.key_column} = {item.business_key!r}"
                " to take the links"
            )
        self._count("linked", len(links))
        calls.clear()

    async def _one(self, item: FetchItem, file: FileBack, calls: list[CallRecord]) -> None:
        for attempt in (1, 2):
            try:
                url = await self.downloads.link(item.instance_id, file, calls)
            except DingTalkRejected as exc:
                await self._failed(item, file, exc.code or "rejected", exc.message, calls)
                return
            try:
                await self._store(item, file, url, calls)
                return
            except LinkExpired as exc:
                if attempt == 2:
                    message = "download links expired twice"
                    raise DingTalkTransient(message, code="AccessDenied") from exc
            except TooLarge as exc:
                await self._failed(item, file, "too_large", str(exc), calls)
                return

    async def _store(
        self, item: FetchItem, file: FileBack, url: str | None, calls: list[CallRecord]
    ) -> None:
        settings = self.kinds[item.kind]
        now = self.clock.now()
        if url is None and file.size not in (0, None):
            raise DingTalkRejected(f"no download link for a file of {file.size} bytes")
        if settings.to == "table":
            data = b""
            if url is not None:
                async with self.downloads.stream(url, self.max_size, calls) as chunks:
                    data = b"".join([chunk async for chunk in chunks])
            fetched = FileBack(**{**file.__dict__, "size": len(data)})
            saved = await self.store.save(
                item, fetched, calls, now, table=settings.table, data=data
            )
        else:
            directory = self.directories[item.kind]
            if url is None:
                path = await directory.save(item, file, _nothing())
            else:
                async with self.downloads.stream(url, self.max_size, calls) as chunks:
                    path = await directory.save(item, file, chunks)
            saved = await self.store.save(item, file, calls, now, stored_as=path)
        self._count("fetched", int(saved))
        calls.clear()

    async def _failed(
        self, item: FetchItem, file: FileBack, code: str, message: str, calls: list[CallRecord]
    ) -> None:
        logger.warning(
            "attachment back not fetched",
            extra={"action": "attach_back_failed", "approval_id": item.approval_id, "code": code},
        )
        error = (code, message[:2000])
        saved = await self.store.save(item, file, calls, self.clock.now(), error=error)
        self._count("failed", int(saved))
        calls.clear()

    def _count(self, outcome: str, files: int) -> None:
        if self.observer is not None and files:
            self.observer.attachment_back(outcome, files)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""
