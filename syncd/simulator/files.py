"""What the approval space keeps (contract §17): upload tickets, files (dentries), download
links and grants, and the rules for file names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

TICKET_TTL = 900  # expirationSeconds of an upload ticket (§17.3)
LINK_TTL = 15 * 60  # a download link's life (§17.7)
MULTIPART_FROM = 5 * 1024**3  # a single upload is under 5 GB (§17.3)
MAX_GRANT = 10  # files per authDownload (§17.7)
MAX_COMMENT_FILES = 20  # attachments per comment (§18.1)
DRIVERS = {"DINGTALK", "ALIDOC", "UNKNOWN"}
STRATEGIES = {"AUTO_RENAME", "OVERWRITE", "RETURN_DENTRY_IF_EXISTS", "RETURN_ERROR_IF_EXISTS"}
_ILLEGAL_NAME = re.compile(r'[\t*"<>|/\\]')
#: The five keys of one file in a DDAttachment value (§17.6).
ATTACHMENT_KEYS = frozenset({"spaceId", "fileName", "fileSize", "fileType", "fileId"})


class OssError(Exception):
    """An answer of the file store (OSS): an HTTP status and an XML ``Error`` code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass
class Ticket:
    upload_key: str
    space_id: int
    user_id: str
    expires_at: datetime
    headers: dict[str, str]
    declared_size: int | None
    data: bytes | None = None
    used: bool = False


@dataclass
class StoredFile:
    """A committed file (a dentry)."""

    file_id: str
    space_id: int
    name: str
    data: bytes
    creator: str  # userId
    creator_union: str
    create_time: datetime
    version: int = 1
    uuid: str = ""

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def extension(self) -> str:
        return extension_of(self.name)

    def attachment(self) -> dict[str, str]:
        """This file as one element of a DDAttachment value, all strings (§17.6)."""
        return {
            "spaceId": str(self.space_id),
            "fileName": self.name,
            "fileSize": str(self.size),
            "fileType": self.extension,
            "fileId": self.file_id,
        }


@dataclass
class Link:
    file_id: str
    expires_at: datetime


@dataclass
class Grants:
    """Who may download what: users granted files by ``authDownload``."""

    by_user: dict[str, set[str]] = field(default_factory=dict)

    def add(self, user_id: str, file_id: str) -> None:
        self.by_user.setdefault(user_id, set()).add(file_id)

    def users(self, file_id: str) -> list[str]:
        return sorted(u for u, files in self.by_user.items() if file_id in files)


def extension_of(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def name_problem(name: object) -> str | None:
    """Why a file name is refused (§17.5), or None."""
    if not isinstance(name, str) or not name.strip():
        return "文件名不能为空"
    if name != name.strip() or _ILLEGAL_NAME.search(name) or name.endswith("."):
        return f"文件名不合法：{name}"
    if not extension_of(name):
        return f"文件名需要扩展名：{name}"
    return None
