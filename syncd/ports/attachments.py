"""Attachments out (contract §17): the files of a kind's DDAttachment components, the
limits DingTalk sets on them, and the ports that fetch, upload and record them.

Plain data and protocols only: the pipeline (``syncd/pipeline/attach.py``) works through
them; ``syncd.dingtalk.attachments`` uploads, ``syncd.files`` fetches and
``syncd.db.attachment_store`` records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from syncd.domain import CallRecord

#: A single (non-multipart) upload is under 5 GB (§17.3, §17.9); syncd does no multipart.
MAX_FILE_SIZE = 5 * 1024**3 - 1
#: Files in one DDAttachment value: undocumented; the JSAPI selects at most 9 (§17.9).
MAX_FILES = 9
#: The root of the approval space, the only parent syncd commits into (§17.5).
ROOT = "0"
_ILLEGAL = re.compile(r'[\t*"<>|/\\]')


@dataclass(frozen=True)
class AttachmentLimits:
    """What a file must satisfy before it is sent (DingTalk's limits, §17.9)."""

    max_file_size: int = MAX_FILE_SIZE
    max_files: int = MAX_FILES
    #: Allowed extensions (lower case, no dot); empty: any, but a file needs one.
    file_types: frozenset[str] = field(default_factory=frozenset)


def extension(name: str) -> str:
    """A file name's extension, lower case and without the dot ("" if none)."""
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def file_problem(name: str, size: int, limits: AttachmentLimits) -> str | None:
    """Why DingTalk would refuse a file of this name and size (§17.5, §17.9), or ``None``."""
    if not name.strip():
        return "the file has no name"
    if name != name.strip() or _ILLEGAL.search(name) or name.endswith("."):
        return (
            f'file name {name!r} is not allowed (no tab, * " < > | / \\, no leading or'
            " trailing space, not ending in '.')"
        )
    ext = extension(name)
    if not ext:
        return f"file name {name!r} needs an extension"
    if limits.file_types and ext not in limits.file_types:
        allowed = ", ".join(sorted(limits.file_types))
        return f"file {name!r}: type {ext!r} is not allowed (allowed: {allowed})"
    if size > limits.max_file_size:
        return f"file {name!r} is {size} bytes, over the limit of {limits.max_file_size}"
    return None


@dataclass(frozen=True)
class Attachment:
    """A committed file, as one item of a DDAttachment value (§17.6)."""

    space_id: str
    file_id: str
    file_name: str
    file_size: int
    file_type: str

    def item(self) -> dict[str, str]:
        """The five keys, all strings, as every official sample sends them."""
        return {
            "spaceId": self.space_id,
            "fileName": self.file_name,
            "fileSize": str(self.file_size),
            "fileType": self.file_type,
            "fileId": self.file_id,
        }


def attachment_value(files: Sequence[Attachment]) -> str:
    """A DDAttachment component's value: a JSON string of the files' items."""
    return json.dumps([f.item() for f in files], ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class FileRef:
    """Where one file of a component comes from: its bytes already, a path under
    ``[attachments] base_dir``, or an HTTP(S) URL on ``allow_hosts``; ``name`` as sent."""

    name: str
    content: bytes | None = None
    path: str | None = None
    url: str | None = None

    def describe(self) -> str:
        """The file as a message names it."""
        where = self.path or self.url
        return f"{self.name!r}" + (f" ({where})" if where else "")


class FileUnavailable(Exception):
    """A file that cannot be had: the message names it and why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FileFetcher(Protocol):
    async def fetch(self, ref: FileRef, max_size: int) -> bytes:
        """The file's bytes; :class:`FileUnavailable` if it cannot be had or is larger
        than ``max_size``."""
        ...


class AttachmentUploader(Protocol):
    async def upload(
        self,
        user_id: str,
        union_id: str,
        name: str,
        data: bytes,
        record: list[CallRecord] | None = None,
        *,
        earlier: datetime | None = None,
    ) -> Attachment:
        """Into the approval space as ``user_id``, adding each DingTalk call it makes to
        ``record`` (success or not); a ``DingTalkError`` on failure. ``earlier``: when an
        earlier attempt at the same file began (its commit may have happened, the answer
        lost): the file it stored is adopted rather than stored again."""
        ...


class UnionIds(Protocol):
    """What uploads need of the directory: who a user is there (syncd/pipeline/attach.py
    ``union_of``)."""

    async def union_id(self, user_id: str) -> str | None:
        """A present user's unionId from the directory."""
        ...

    async def left_at(self, user_id: str) -> datetime | None:
        """When the directory saw the user leave (``None``: present, or never known)."""
        ...

    async def directory_synced(self) -> bool:
        """Whether a full sync of the directory has finished (else nobody is known yet)."""
        ...


def attachment_slot(component: str, index: int) -> str:
    """How ``syncd.upload_intent`` names a component's file."""
    return f"{component}/{index}"


def comment_slot(comment_id: int, index: int) -> str:
    """How ``syncd.upload_intent`` names a comment's file."""
    return f"comment {comment_id}/{index}"


class UploadIntents(Protocol):
    """Each file's upload begun, kept until the committed file is recorded: a retry after a
    crash knows an earlier attempt may have committed it (``syncd.upload_intent``)."""

    async def upload_begun(self, approval_id: int, slot: str, now: datetime) -> datetime | None:
        """Note that the upload of ``slot`` (a component's or comment's file) begins; when an
        earlier attempt at it began, that attempt's time, else ``None``."""
        ...


class AttachmentStore(UnionIds, UploadIntents, Protocol):
    async def attachments(self, approval_id: int) -> dict[tuple[str, int], Attachment]:
        """The files committed for a round already, by (component, index)."""
        ...

    async def record_attachment(
        self,
        approval_id: int,
        component: str,
        index: int,
        file: Attachment,
        uploaded_by: str,
        calls: Sequence[CallRecord],
        now: datetime | None = None,
    ) -> None:
        """Record one committed file, its calls and a history line, in one transaction."""
        ...


class CommentFileStore(UnionIds, UploadIntents, Protocol):
    """The files committed for outgoing comments (``syncd.comment_file``)."""

    async def comment_files(self, comment_id: int) -> dict[int, Attachment]:
        """The files committed for a comment already, by their index in its files."""
        ...

    async def record_comment_file(
        self,
        comment_id: int,
        approval_id: int,
        index: int,
        file: Attachment,
        uploaded_by: str,
        calls: Sequence[CallRecord],
        now: datetime,
    ) -> None:
        """Record one committed file, its calls and a history line, in one transaction."""
        ...
