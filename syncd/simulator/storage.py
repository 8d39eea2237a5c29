"""The approval space and its files (contract §17): upload tickets, the signed PUT,
commit, the DDAttachment check, download grants and links.

Where the contract leaves a rule unconfirmed, this is the strict reading (docs/simulator.md,
"Attachments"): the same person queries the space, uploads, commits and starts the
instance; only files committed into the organisation's approval space can be attached
(a file in someone's own drive is invisible to the approval: "不存在"); a download link
needs a grant (``authDownload``) on the file first; an ``uploadKey`` serves one commit.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import timedelta
from typing import Any

from syncd.ports import Clock
from syncd.simulator.directory import union_id
from syncd.simulator.files import (
    ATTACHMENT_KEYS,
    DRIVERS,
    LINK_TTL,
    MAX_GRANT,
    MULTIPART_FROM,
    STRATEGIES,
    TICKET_TTL,
    Grants,
    Link,
    OssError,
    StoredFile,
    Ticket,
    extension_of,
    name_problem,
)
from syncd.simulator.responses import ApiError
from syncd.simulator.state import iso_minutes
from syncd.simulator.world import User, World


def _bad(code: str, message: str, status: int = 400) -> ApiError:
    return ApiError(status, code, message)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Storage:
    """The organisation's approval space, everyone's own drive, and their files."""

    def __init__(self, world: World, clock: Clock, rng: random.Random) -> None:
        self.world = world
        self.clock = clock
        self.rng = rng
        #: One approval space per organisation (§17.2); an int64 on the workflow side.
        self.approval_space = rng.randrange(10**9, 10**10)
        self._drives: dict[str, int] = {}
        self.uploaders: set[str] = set()  # users the space query gave upload rights
        self.tickets: dict[str, Ticket] = {}
        self.files: dict[str, StoredFile] = {}
        self.links: dict[str, Link] = {}
        self.grants = Grants()

    # people and spaces ------------------------------------------------------------------

    def drive(self, user_id: str) -> int:
        """The space id of a person's own drive (钉盘 "my files")."""
        if user_id not in self._drives:
            self._drives[user_id] = self.rng.randrange(10**9, 10**10)
        return self._drives[user_id]

    def spaces(self) -> dict[str, Any]:
        """The admin API's view: the approval space and everyone's own drive."""
        return {
            "approvalSpaceId": self.approval_space,
            "drives": {u.user_id: self.drive(u.user_id) for u in self.world.users},
        }

    def _by_union(self, union: object) -> User | None:
        if not isinstance(union, str) or not union:
            return None
        return next((u for u in self.world.users if u.active and union_id(u) == union), None)

    def _space(self, space_id: str, union: object) -> tuple[int, User]:
        """The space of a storage path and the person acting in it, with their rights."""
        if not union:
            raise _bad("paramError", "unionId不能为空")
        space = int(space_id) if space_id.isdigit() else None
        user = self._by_union(union)
        if space is None or (space != self.approval_space and space not in self._drives.values()):
            raise _bad("spaceNotExist", f"空间不存在：{space_id}", 404)
        if user is None:
            raise _bad("permissionDenied", "没有权限", 403)
        if space == self.approval_space and user.user_id not in self.uploaders:
            raise _bad("permissionDenied", "没有该空间的上传权限，请先查询审批钉盘空间", 403)
        if space != self.approval_space and self._drives.get(user.user_id) != space:
            raise _bad("permissionDenied", "没有该空间的权限", 403)
        return space, user

    def space_info(self, body: dict[str, Any], agent_id: int | None) -> dict[str, Any]:
        """The approval space (§17.2); gives the user upload rights in it."""
        user_id = body.get("userId")
        if not isinstance(user_id, str) or not user_id:
            raise _bad("invalidUserId", "userId不能为空")
        agent = _int(body.get("agentId"))
        if agent is None:
            raise _bad("invalidAgentId", "应用agentId不能为空")
        if agent_id is not None and agent != agent_id:
            raise _bad("invalidAgentId", "应用agentId不合法")
        user = self.world.user(user_id)
        if user is None or not user.active:
            raise _bad("userNotExist", f"用户不存在：{user_id}")
        self.uploaders.add(user_id)
        return {"result": {"spaceId": self.approval_space}, "success": True}

    # upload -----------------------------------------------------------------------------

    def _check_size(self, size: int) -> None:
        if size > self.world.storage.max_file_size:
            limit = self.world.storage.max_file_size
            raise _bad("dentryUploadForbidden", f"文件大小{size}超过限制{limit}")

    def _check_type(self, name: str) -> None:
        allowed = self.world.storage.file_types
        if allowed and extension_of(name) not in allowed:
            raise _bad("dentryUploadForbidden", f"不支持的文件类型：{extension_of(name)}")

    def _pre_check(self, option: dict[str, Any], multipart: bool) -> int | None:
        driver = option.get("storageDriver", "DINGTALK")
        if driver not in DRIVERS:
            raise _bad("paramError.storageDriver", "storageDriver不合法")
        pre = option.get("preCheckParam") or {}
        if not isinstance(pre, dict):
            raise _bad("paramError", "preCheckParam不合法")
        size = pre.get("size")
        if size is not None and (_int(size) is None or size < 0):
            raise _bad("paramError", "size不合法")
        if size is not None and size >= MULTIPART_FROM and not multipart:
            raise _bad("paramError", "文件超过5GB，需要分片上传（multipart=true）")
        if multipart:
            raise _bad("dentryUploadProtocolNotSupport", "模拟器不支持分片上传")
        if size is not None:
            self._check_size(size)
        name = pre.get("name")
        if name is not None:
            if problem := name_problem(name):
                raise _bad("dentryNameIllegal", problem)
            self._check_type(name)
        return _int(size)

    def upload_info(
        self, space_id: str, union: object, body: dict[str, Any], base_url: str
    ) -> dict[str, Any]:
        """An upload ticket (§17.3): a signed URL on the simulator itself."""
        space, user = self._space(space_id, union)
        if body.get("protocol") != "HEADER_SIGNATURE":
            raise _bad("paramError.protocol", "protocol不合法")
        multipart = body.get("multipart")
        if not isinstance(multipart, bool):
            raise _bad("paramError", "multipart不能为空")
        option = body.get("option") or {}
        if not isinstance(option, dict):
            raise _bad("paramError", "option不合法")
        size = self._pre_check(option, multipart)
        key = f"{self.rng.getrandbits(96):024x}"
        now = self.clock.now()
        date = now.strftime("%a, %d %b %Y %H:%M:%S GMT")
        signature = hashlib.sha256(f"{key}|{date}".encode()).hexdigest()[:28]
        headers = {"Authorization": f"OSS simkey:{signature}", "x-oss-date": date}
        expires = now + timedelta(seconds=TICKET_TTL)
        self.tickets[key] = Ticket(key, space, user.user_id, expires, headers, size)
        return {
            "uploadKey": key,
            "storageDriver": option.get("storageDriver", "DINGTALK"),
            "protocol": "HEADER_SIGNATURE",
            "headerSignatureInfo": {
                "resourceUrls": [f"{base_url.rstrip('/')}/oss/upload/{key}"],
                "headers": dict(headers),
                "expirationSeconds": TICKET_TTL,
                "region": "ZHANGJIAKOU",
                "internalResourceUrls": [],
            },
        }

    def put(self, upload_key: str, headers: dict[str, str], data: bytes) -> None:
        """The PUT of the bytes (§17.4): exactly the signed headers, before expiry."""
        ticket = self.tickets.get(upload_key)
        if ticket is None:
            raise OssError(404, "NoSuchKey", "The upload URL is unknown.")
        if ticket.used or ticket.expires_at <= self.clock.now():
            raise OssError(403, "AccessDenied", "Request has expired.")
        for name, value in ticket.headers.items():
            if headers.get(name.lower()) != value:
                raise OssError(403, "SignatureDoesNotMatch", f"header {name} missing or changed")
        if headers.get("content-type"):  # Content-Type takes part in the signature
            raise OssError(403, "SignatureDoesNotMatch", "Content-Type was not signed")
        if len(data) > self.world.storage.max_file_size:
            raise OssError(400, "EntityTooLarge", "Your proposed upload exceeds the limit.")
        if ticket.declared_size is not None and len(data) != ticket.declared_size:
            raise OssError(400, "InvalidArgument", "size differs from preCheckParam.size")
        ticket.data = data

    def commit(self, space_id: str, union: object, body: dict[str, Any]) -> dict[str, Any]:
        """Commit an upload (§17.5) into a file; a key serves one commit."""
        space, user = self._space(space_id, union)
        ticket = self.tickets.get(str(body.get("uploadKey") or ""))
        if ticket is None or ticket.used or ticket.expires_at <= self.clock.now():
            raise _bad("paramError", "uploadKey不存在或已过期")
        if ticket.space_id != space or ticket.user_id != user.user_id:
            raise _bad("paramError", "uploadKey不属于该空间或用户")
        if ticket.data is None:
            raise _bad("dentryStoreError", "文件尚未上传")
        name = body.get("name")
        if problem := name_problem(name):
            raise _bad("dentryNameIllegal", problem)
        assert isinstance(name, str)
        self._check_type(name)
        if body.get("parentId") != "0":
            raise _bad("paramError", 'parentId不合法（模拟器只有根目录 "0"）')
        option = body.get("option") or {}
        size = option.get("size") if isinstance(option, dict) else None
        if size is not None and size != len(ticket.data):
            raise _bad("paramError", f"size {size} 与上传的文件大小 {len(ticket.data)} 不符")
        strategy = option.get("conflictStrategy", "AUTO_RENAME") if option else "AUTO_RENAME"
        if strategy not in STRATEGIES:
            raise _bad("paramError.conflictStrategy", "conflictStrategy不合法")
        stored = self._store(space, user, name, ticket.data, strategy)
        ticket.used = True
        return {"dentry": self.dentry(stored)}

    def upload_direct(self, user_id: str, name: str, data: bytes) -> StoredFile:
        """A file a person attaches in DingTalk's client (the JSAPI path, §17.1): stored
        in the approval space as theirs, under the same name, size and type rules."""
        user = self.world.user(user_id)
        if user is None or not user.active:
            raise _bad("userNotExist", f"用户不存在：{user_id}")
        if problem := name_problem(name):
            raise _bad("dentryNameIllegal", problem)
        self._check_type(name)
        self._check_size(len(data))
        return self._store(self.approval_space, user, name, data, "AUTO_RENAME")

    def _store(self, space: int, user: User, name: str, data: bytes, strategy: str) -> StoredFile:
        same = [f for f in self.files.values() if f.space_id == space]
        existing = next((f for f in same if f.name == name), None)
        if existing is not None and strategy == "RETURN_DENTRY_IF_EXISTS":
            return existing
        if existing is not None and strategy == "RETURN_ERROR_IF_EXISTS":
            raise _bad("dentryNameConflict", f"文件已存在：{name}")
        if existing is not None and strategy == "OVERWRITE":
            existing.data, existing.version = data, existing.version + 1
            return existing
        stem, _, ext = name.rpartition(".")
        taken, n = {f.name for f in same}, 1
        while name in taken:
            name, n = f"{stem}({n}).{ext}", n + 1
        file_id = str(self.rng.randrange(10**10, 10**11))
        stored = StoredFile(
            file_id, space, name, data, user.user_id, union_id(user), self.clock.now()
        )
        stored.uuid = f"{self.rng.getrandbits(64):016x}"
        self.files[file_id] = stored
        return stored

    def dentry(self, f: StoredFile) -> dict[str, Any]:
        when = iso_minutes(f.create_time)
        return {
            "id": f.file_id,
            "spaceId": str(f.space_id),
            "parentId": "0",
            "type": "FILE",
            "name": f.name,
            "size": f.size,
            "path": f"/{f.name}",
            "version": f.version,
            "status": "NORMAL",
            "extension": f.extension,
            "creatorId": f.creator_union,
            "modifierId": f.creator_union,
            "createTime": when,
            "modifiedTime": when,
            "properties": {"readOnly": False},
            "uuid": f.uuid,
            "partitionType": "PUBLIC_OSS_PARTITION",
            "storageDriver": "DINGTALK",
        }

    # attaching --------------------------------------------------------------------------

    def attached(self, items: object, user_id: str, limit: int) -> list[StoredFile]:
        """The files a DDAttachment value or a comment's attachments name, each checked:
        five keys, committed into the approval space by ``user_id`` (the same person,
        §17.1), name, size and type as committed. Raises ValueError saying why."""
        if not isinstance(items, list) or not items:
            raise ValueError("附件格式错误：需要一个文件数组")
        if len(items) > limit:
            raise ValueError(f"附件最多{limit}个")
        found = []
        for item in items:
            if not isinstance(item, dict) or set(item) != ATTACHMENT_KEYS:
                raise ValueError(f"附件需要且只能有 {', '.join(sorted(ATTACHMENT_KEYS))}")
            got = {k: str(v) if _int(v) is not None else v for k, v in item.items()}
            stored = self.files.get(str(got["fileId"]))
            if (
                stored is None
                or got["spaceId"] != str(self.approval_space)
                or stored.space_id != self.approval_space
            ):
                raise ValueError(f"附件不存在：fileId {got['fileId']}（不在审批钉盘空间）")
            if stored.creator != user_id:
                raise ValueError(f"附件不存在：fileId {got['fileId']} 不是 {user_id} 上传的")
            if {k: got[k] for k in ATTACHMENT_KEYS} != stored.attachment():
                raise ValueError(f"附件信息与文件不符：fileId {got['fileId']}")
            found.append(stored)
        return found

    def attachment_value(self, value: str, user_id: str) -> list[StoredFile]:
        """The files of a DDAttachment value (a JSON string of an array, §17.6)."""
        try:
            items = json.loads(value)
        except ValueError as exc:
            raise ValueError("附件格式错误：不是JSON") from exc
        return self.attached(items, user_id, self.world.storage.max_attachments)

    # reading back -----------------------------------------------------------------------

    def grant(self, body: dict[str, Any]) -> dict[str, Any]:
        """``authDownload`` (§17.7 step 1): at most 10 approval-space files per call."""
        user_id = body.get("userId")
        user = self.world.user(user_id) if isinstance(user_id, str) else None
        if user is None or not user.active:
            raise _bad("userNotExist", f"用户不存在：{user_id}")
        infos = body.get("fileInfos")
        if not isinstance(infos, list) or not 1 <= len(infos) <= MAX_GRANT:
            raise _bad("invalidFileInfos", f"fileInfos需要1到{MAX_GRANT}个文件")
        files = []
        for info in infos:
            space = _int(info.get("spaceId")) if isinstance(info, dict) else None
            stored = self.files.get(str(info.get("fileId"))) if isinstance(info, dict) else None
            if stored is None or space != self.approval_space or stored.space_id != space:
                raise _bad("invalidFileInfos", f"文件不存在：{info}")
            files.append(stored)
        for stored in files:
            self.grants.add(user.user_id, stored.file_id)
        return {"success": True, "result": True}

    def may_download(self, user_id: str, file_id: str) -> bool:
        """Whether a person may download a file: its uploader, or someone granted it."""
        stored = self.files.get(file_id)
        return stored is not None and (
            stored.creator == user_id or user_id in self.grants.users(file_id)
        )

    def link(self, file_id: str, base_url: str) -> dict[str, Any]:
        """A download link (§17.7 step 2) for a file with a grant; 15 minutes."""
        stored = self.files[file_id]
        if not self.grants.users(file_id):
            raise _bad("noPermission", "没有文件的下载权限，请先调用authDownload授权")
        result: dict[str, Any] = {"spaceId": stored.space_id, "fileId": file_id}
        if stored.size:  # zero-byte files get no link
            ticket = f"{self.rng.getrandbits(96):024x}"
            expires = self.clock.now() + timedelta(seconds=LINK_TTL)
            self.links[ticket] = Link(file_id, expires)
            result["downloadUri"] = f"{base_url.rstrip('/')}/oss/download/{ticket}"
        return {"success": True, "result": result}

    def fetch(self, ticket: str) -> StoredFile:
        """The file behind a download link, while the link lives."""
        link = self.links.get(ticket)
        if link is None or link.expires_at <= self.clock.now():
            raise OssError(403, "AccessDenied", "Request has expired.")
        return self.files[link.file_id]
