"""Attachments out (contract §17): a file into the originator's approval space, server-side.

The chain is the approval space for the user (§17.2, which also gives them upload rights),
an upload ticket (§17.3, ``unionId`` in the query), the ``PUT`` of the bytes to the
ticket's signed URL (§17.4: no DingTalk token, exactly the signed headers, no
``Content-Type``), and the commit (§17.5) whose dentry becomes one item of a DDAttachment
value (§17.6). The same person throughout: the space query's ``userId``, the storage
``unionId`` and, at create, the instance's originator.

Every call is declared in :mod:`syncd.dingtalk.endpoints`, paced per endpoint, reported to
the call observer (the ``ObservedClient``) and mapped to a :class:`~syncd.errors.DingTalkError`
like the rest (the file store's XML errors by ``oss_error_from_response``). Files that
DingTalk would refuse are refused here first, before any call (:func:`file_problem`).
Implements ``syncd.ports.AttachmentClient``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from syncd.clock import SystemClock
from syncd.dingtalk import endpoints
from syncd.dingtalk.endpoints import Endpoint
from syncd.dingtalk.paced import log_failure, paced_send
from syncd.dingtalk.pacing import MemoryPacer, Pacer
from syncd.domain import DINGTALK_TZ, CallRecord
from syncd.errors import DingTalkError, DingTalkRejected, DingTalkTransient
from syncd.ports import Clock
from syncd.ports.attachments import ROOT, Attachment, extension
from syncd.recording import call

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadTicket:
    """Where and how to PUT one file's bytes (§17.3); never stored: it expires."""

    upload_key: str
    url: str
    headers: Mapping[str, str]
    expires_at: datetime


#: How far DingTalk's clock may lag ours, and its minute-granular ``createTime`` with it.
CLOCK_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class Dentry:
    """Who stored a committed file and when (``creatorId``, ``createTime``), where given."""

    creator: str | None
    created: datetime | None

    def same_upload(self, union_id: str, size: int, stored: int, since: datetime) -> bool:
        """Whether the file is this upload's own: stored by ``union_id`` with ``size`` bytes
        since ``since`` (less the clock margin)."""
        return (
            self.creator == union_id
            and stored == size
            and self.created is not None
            and self.created >= since - CLOCK_MARGIN
        )


def _instant(text: str) -> datetime | None:
    """``createTime`` (ISO 8601, e.g. ``2022-07-29T14:55Z``; China time when it names no
    zone); ``None`` if unreadable."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=DINGTALK_TZ)


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DingTalkTransient(f"unreadable {what} answer from DingTalk")
    return value


class HttpxAttachmentClient:
    """The upload chain; ``http`` is based on the new API host with the app's token auth
    (which never sends the token to the file store's host)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        agent_id: int | None,
        pacer: Pacer | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._http = http
        self._agent_id = agent_id
        self._clock = clock or SystemClock()
        self._pacer = pacer or MemoryPacer(clock=self._clock)
        self.calls = 0  # requests sent

    async def space_id(self, user_id: str, record: list[CallRecord] | None = None) -> int:
        """The organisation's approval space, as ``user_id`` (§17.2): this also gives them
        upload rights in it, so it is asked before every upload."""
        if self._agent_id is None:
            raise DingTalkRejected(
                "[dingtalk] agent_id is not set: the approval space query needs the app's"
                " AgentId (DingTalk's developer console, the app's basic information)",
                code="invalidAgentId",
            )
        body = {"userId": user_id, "agentId": self._agent_id}
        answer = _dict(
            await self._call(endpoints.SPACE_INFO, json=body, record=record), "space_info"
        )
        result = answer.get("result")
        space = result.get("spaceId") if isinstance(result, dict) else None
        if isinstance(space, str) and space.isdigit():  # tolerant: an int64 as a string
            space = int(space)
        if not isinstance(space, int) or isinstance(space, bool):
            raise DingTalkTransient("unreadable space_info answer from DingTalk (no spaceId)")
        return space

    async def upload_ticket(
        self,
        space_id: int,
        union_id: str,
        name: str,
        size: int,
        record: list[CallRecord] | None = None,
    ) -> UploadTicket:
        """A signed URL for one file's bytes (§17.3)."""
        body = {
            "protocol": "HEADER_SIGNATURE",
            "multipart": False,
            "option": {
                "storageDriver": "DINGTALK",
                "preCheckParam": {"name": name, "size": size, "parentId": ROOT},
                "preferIntranet": False,
            },
        }
        answer = _dict(
            await self._call(
                endpoints.UPLOAD_INFO,
                json=body,
                params={"unionId": union_id},
                path_params={"spaceId": str(space_id)},
                record=record,
            ),
            "upload_info",
        )
        info = answer.get("headerSignatureInfo")
        key = answer.get("uploadKey")
        urls = info.get("resourceUrls") if isinstance(info, dict) else None
        headers = info.get("headers") if isinstance(info, dict) else None
        if not (isinstance(key, str) and key and isinstance(urls, list) and urls):
            raise DingTalkTransient("unreadable upload_info answer from DingTalk")
        if not isinstance(headers, dict) or not isinstance(urls[0], str):
            raise DingTalkTransient("unreadable upload_info answer from DingTalk (headers)")
        seconds = info.get("expirationSeconds") if isinstance(info, dict) else None
        lifetime = seconds if isinstance(seconds, int) and seconds > 0 else 900
        return UploadTicket(
            upload_key=key,
            url=urls[0],
            headers={str(k): str(v) for k, v in headers.items()},
            expires_at=self._clock.now() + timedelta(seconds=lifetime),
        )

    async def put(
        self, ticket: UploadTicket, data: bytes, record: list[CallRecord] | None = None
    ) -> None:
        """The bytes to the signed URL (§17.4): exactly the signed headers, nothing that
        takes part in the signing added (no ``Content-Type``), no DingTalk token."""
        await self._call(
            endpoints.UPLOAD,
            url=ticket.url,
            content=data,
            headers=ticket.headers,
            raw=True,
            record=record,
        )

    async def commit(
        self,
        space_id: int,
        union_id: str,
        upload_key: str,
        name: str,
        size: int,
        record: list[CallRecord] | None = None,
    ) -> Attachment:
        """Commit an uploaded file (§17.5); the value item comes from the dentry (its name
        may have been renamed, ``AUTO_RENAME``)."""
        args = (space_id, union_id, upload_key, name, size, record, "AUTO_RENAME")
        return (await self._commit(*args))[0]

    async def _commit(
        self,
        space_id: int,
        union_id: str,
        upload_key: str,
        name: str,
        size: int,
        record: list[CallRecord] | None,
        strategy: str,
    ) -> tuple[Attachment, Dentry]:
        body = {
            "uploadKey": upload_key,
            "name": name,
            "parentId": ROOT,
            "option": {"size": size, "conflictStrategy": strategy},
        }
        answer = _dict(
            await self._call(
                endpoints.COMMIT,
                json=body,
                params={"unionId": union_id},
                path_params={"spaceId": str(space_id)},
                record=record,
            ),
            "commit",
        )
        dentry = _dict(answer.get("dentry"), "commit")
        file_id, stored_name = dentry.get("id"), dentry.get("name")
        if not isinstance(file_id, str | int) or not isinstance(stored_name, str):
            raise DingTalkTransient("unreadable commit answer from DingTalk (no dentry id)")
        stored_size = dentry.get("size")
        file = Attachment(
            space_id=str(dentry.get("spaceId") or space_id),
            file_id=str(file_id),
            file_name=stored_name,
            file_size=int(stored_size) if isinstance(stored_size, int | str) else size,
            file_type=str(dentry.get("extension") or extension(stored_name)),
        )
        creator, created = dentry.get("creatorId"), dentry.get("createTime")
        return file, Dentry(
            creator if isinstance(creator, str) else None,
            _instant(created) if isinstance(created, str) else None,
        )

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
        """The whole chain for one file, as ``user_id`` (whose unionId is ``union_id``);
        each call made, success or not, is added to ``record`` (purpose ``attach``: the
        space query, the ticket and the commit are metered, the PUT is not).

        A ticket that expired before its PUT (a slow pacing slot) is asked for again once.

        ``earlier``: when an earlier attempt at this same file began (it may have
        committed, its answer lost). The commit then returns the file already stored under
        the name (``RETURN_DENTRY_IF_EXISTS``) and adopts it when it is this one: the same
        uploader, the same size, stored since that attempt began. A file of anyone else's
        under the name is left alone, and this one is stored beside it (``AUTO_RENAME``,
        a new ticket: the first was spent).
        """
        space = await self.space_id(user_id, record)
        size = len(data)
        if earlier is not None:
            key = await self._put(space, union_id, name, data, record)
            found, dentry = await self._commit(
                space, union_id, key, name, size, record, "RETURN_DENTRY_IF_EXISTS"
            )
            if dentry.same_upload(union_id, size, found.file_size, earlier):
                return found
            logger.info(
                "%r is taken in the approval space by another file; storing this one beside it",
                name,
                extra={"action": "upload_name_taken"},
            )
        key = await self._put(space, union_id, name, data, record)
        return await self.commit(space, union_id, key, name, size, record)

    async def _put(
        self, space: int, union_id: str, name: str, data: bytes, record: list[CallRecord] | None
    ) -> str:
        """A ticket and the bytes PUT to it; its upload key."""
        for attempt in (1, 2):
            ticket = await self.upload_ticket(space, union_id, name, len(data), record)
            try:
                await self.put(ticket, data, record)
            except DingTalkTransient as exc:
                if attempt == 2 or exc.code != "AccessDenied":
                    raise
                continue
            return ticket.upload_key
        raise AssertionError("unreachable")

    async def _call(
        self,
        endpoint: Endpoint,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        path_params: dict[str, str] | None = None,
        url: str | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        raw: bool = False,
        record: list[CallRecord] | None = None,
    ) -> Any:
        """The answer's JSON (``None`` when ``raw``); a refused token is fetched again once.
        The call is added to ``record`` when given."""
        self.calls += 1
        request = self._send(endpoint, json, params, path_params, url, content, headers, raw)
        if record is None:
            return await request
        return await call(record, endpoint.name, "attach", request, metered=endpoint.metered)

    async def _send(
        self,
        endpoint: Endpoint,
        json: Any,
        params: dict[str, str] | None,
        path_params: dict[str, str] | None,
        url: str | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        raw: bool,
    ) -> Any:
        try:
            response = await paced_send(
                self._http,
                self._pacer,
                endpoint,
                json=json,
                params=params,
                path_params=path_params,
                url=url,
                content=content,
                headers=headers,
            )
            return None if raw else response.json()
        except ValueError as exc:
            raise log_failure(
                endpoint, DingTalkTransient(f"unreadable {endpoint.name} answer from DingTalk")
            ) from exc
        except DingTalkError as exc:
            raise log_failure(endpoint, exc) from None
