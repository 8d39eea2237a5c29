"""Attachments back (contract §17.7, §18.2): the files of a finished instance, fetched
after the decision into the place a kind configures, each exactly once.

Plain data and protocols only: the pipeline (``syncd/pipeline/attach_back.py``) works
through them; ``syncd.dingtalk.downloads`` grants, links and streams,
``syncd.files_back`` writes a directory and ``syncd.db.attachment_in_store`` records
(and inserts into a business table in the same transaction).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from syncd.domain import CallRecord

#: ``attached_in`` of a file attached to an approver's comment (else the component label).
COMMENT = "comment"


@dataclass(frozen=True)
class FileBack:
    """One file of a finished instance, as GET names it (§4.1, §17.6, §18.2)."""

    file_id: str
    space_id: str | None
    name: str
    size: int | None
    type: str
    #: The DDAttachment component's label, or :data:`COMMENT`.
    attached_in: str
    attached_by: str | None
    attached_at: datetime | None

    @property
    def on_comment(self) -> bool:
        return self.attached_in == COMMENT

    def metadata(self) -> dict[str, object]:
        """What a sidecar or a log line says of the file."""
        return {
            "file_id": self.file_id,
            "space_id": self.space_id,
            "name": self.name,
            "size": self.size,
            "type": self.type,
            "attached_in": self.attached_in,
            "attached_by": self.attached_by,
            "attached_at": self.attached_at.isoformat() if self.attached_at else None,
        }


@dataclass(frozen=True)
class FetchItem:
    """A finished round whose files are due, with the fetch lease held."""

    approval_id: int
    kind: str
    business_key: str
    round: int
    instance_id: str
    attempts: int


#: How long a download link stays valid (§17.7).
LINK_VALIDITY = timedelta(minutes=15)


@dataclass(frozen=True)
class LinksTarget:
    """Where ``to = "links"`` writes: ``column`` of the business row of ``table`` whose
    ``key_column`` is the round's business key (syncd's PostgreSQL)."""

    table: str
    key_column: str
    column: str


def link_entry(file: FileBack, url: str | None, expires_at: datetime) -> dict[str, object]:
    """One file's entry in the links' JSON: its metadata, the URL and when it expires
    (``url`` null for a zero-byte file, which has no link)."""
    return {
        **file.metadata(),
        "url": url,
        "expires_at": expires_at.isoformat() if url else None,
    }


class AttachmentsBackObserver(Protocol):
    def attachment_back(self, outcome: str, files: int = 1) -> None:
        """Count ``files`` files that ended so: ``fetched``, ``linked`` or ``failed``."""
        ...


class LinkExpired(Exception):
    """A download link answered that it expired (15 minutes, §17.7): ask for a new one."""


class TooLarge(Exception):
    """A file's bytes ran over the configured limit while streaming."""


class DownloadClient(Protocol):
    async def grant(
        self, user_id: str, files: Sequence[FileBack], record: list[CallRecord]
    ) -> None:
        """``authDownload`` (§17.7 step 1) of ``files`` to ``user_id``, in calls of ≤ 10."""
        ...

    async def link(self, instance_id: str, file: FileBack, record: list[CallRecord]) -> str | None:
        """A download link valid 15 minutes (§17.7 step 2); ``None`` when DingTalk gives
        none (a zero-byte file)."""
        ...

    def stream(
        self, url: str, max_size: int, record: list[CallRecord]
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """The bytes behind a link, in chunks, paced; :class:`LinkExpired` when the link
        expired, :class:`TooLarge` past ``max_size`` bytes."""
        ...


class FileDirectory(Protocol):
    async def save(self, item: FetchItem, file: FileBack, chunks: AsyncIterator[bytes]) -> str:
        """Write the file (temp file, fsync, rename) and its sidecar; its path."""
        ...


class AttachmentInStore(Protocol):
    async def claim(
        self,
        kinds: Sequence[str],
        limit: int,
        now: datetime,
        owner: str,
        lease_until: datetime,
        since: Mapping[str, datetime] | None = None,
    ) -> list[FetchItem]:
        """Finished rounds of ``kinds`` not done and due, leased; of a kind in ``since``,
        only those finished after its moment."""
        ...

    async def recorded(self, approval_id: int) -> set[str]:
        """The fileIds of the round recorded already (fetched or failed)."""
        ...

    async def save(
        self,
        item: FetchItem,
        file: FileBack,
        calls: Sequence[CallRecord],
        now: datetime,
        *,
        table: str | None = None,
        data: bytes | None = None,
        stored_as: str | None = None,
        error: tuple[str, str] | None = None,
    ) -> bool:
        """Record the file (``error``: as failed), and with ``table`` insert its row and
        ``data`` there in the same transaction; ``False`` when it was recorded already
        (and nothing was inserted)."""
        ...

    async def save_links(
        self,
        item: FetchItem,
        links: Sequence[tuple[FileBack, dict[str, object]]],
        calls: Sequence[CallRecord],
        now: datetime,
        target: LinksTarget,
    ) -> bool:
        """Write the links' JSON into the business row and record each file as linked, in
        one transaction marked as syncd's write-back; ``False`` (nothing written) when no
        business row has the key."""
        ...

    async def finish(self, item: FetchItem, now: datetime, owner: str) -> None: ...

    async def release(
        self,
        item: FetchItem,
        now: datetime,
        owner: str,
        retry_at: datetime,
        error: str,
        calls: Sequence[CallRecord],
        *,
        give_up: bool = False,
    ) -> None:
        """Put the round back to be tried at ``retry_at``; with ``give_up``, not again
        (done, the error kept)."""
        ...


#: The files per kind: label filter (``None``: every DDAttachment) and comments or not.
Wanted = Mapping[str, tuple[frozenset[str] | None, bool]]
