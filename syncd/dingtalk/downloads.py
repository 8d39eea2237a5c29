"""Attachments back (contract §17.7): a grant of an instance's files to a user
(``authDownload``, at most 10 per call), a download link per file (valid 15 minutes;
``withCommentAttatchment`` for a comment's file), and the plain ``GET`` of the bytes,
streamed and bounded. Each call is declared in :mod:`syncd.dingtalk.endpoints`, paced per
endpoint and added to the caller's record (purpose ``attach_back``: the grant and the
link are metered, the GET of the bytes is not). Implements
``syncd.ports.attachments_back.DownloadClient``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx

from syncd.clock import SystemClock
from syncd.dingtalk import endpoints
from syncd.dingtalk.calls import error_of, tagged
from syncd.dingtalk.endpoints import Endpoint
from syncd.dingtalk.paced import log_failure, paced_send
from syncd.dingtalk.pacing import MemoryPacer, Pacer
from syncd.domain import CallRecord
from syncd.errors import DingTalkError, DingTalkTransient
from syncd.ports import Clock
from syncd.ports.attachments_back import FileBack, LinkExpired, TooLarge
from syncd.recording import call

PURPOSE = "attach_back"
#: Files per ``authDownload`` call (§17.7, §17.9).
MAX_GRANT = 10


class HttpxDownloadClient:
    """``http`` is based on the new API host with the app's token auth (which never sends
    the token to the file store's host)."""

    def __init__(
        self, http: httpx.AsyncClient, *, pacer: Pacer | None = None, clock: Clock | None = None
    ) -> None:
        self._http = http
        self._pacer = pacer or MemoryPacer(clock=clock or SystemClock())
        self.calls = 0  # requests sent

    async def grant(
        self, user_id: str, files: Sequence[FileBack], record: list[CallRecord]
    ) -> None:
        """Grant ``files`` to ``user_id``; ``spaceId`` a number here (§17.7 step 1)."""
        infos = [
            {"spaceId": int(f.space_id) if f.space_id and f.space_id.isdigit() else f.space_id,
             "fileId": f.file_id}
            for f in files
        ]  # fmt: skip
        for start in range(0, len(infos), MAX_GRANT):
            body = {"userId": user_id, "fileInfos": infos[start : start + MAX_GRANT]}
            await self._json(endpoints.GRANT_DOWNLOAD, body, record)

    async def link(self, instance_id: str, file: FileBack, record: list[CallRecord]) -> str | None:
        body = {
            "processInstanceId": instance_id,
            "fileId": file.file_id,
            "withCommentAttatchment": file.on_comment,  # sic (§17.7)
        }
        answer = await self._json(endpoints.DOWNLOAD_URL, body, record)
        result = answer.get("result") if isinstance(answer, dict) else None
        uri = result.get("downloadUri") if isinstance(result, dict) else None
        return uri if isinstance(uri, str) and uri else None

    @asynccontextmanager
    async def stream(
        self, url: str, max_size: int, record: list[CallRecord]
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        endpoint = endpoints.DOWNLOAD
        await self._pacer.acquire(endpoint.name)
        self.calls += 1
        request = self._http.build_request(endpoint.method, url, extensions=tagged(endpoint))
        try:
            response = await call(
                record, endpoint.name, PURPOSE, self._open(request), metered=endpoint.metered
            )
        except DingTalkTransient as exc:
            if exc.code == "AccessDenied":
                raise LinkExpired(exc.message) from exc
            raise
        try:
            yield _bounded(response, max_size)
        except httpx.HTTPError as exc:
            raise DingTalkTransient(f"download interrupted ({type(exc).__name__})") from exc
        finally:
            await response.aclose()

    async def _open(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise DingTalkTransient(f"DingTalk unreachable ({type(exc).__name__})") from exc
        if response.status_code != 200:
            await response.aread()
            await response.aclose()
            error = error_of(response) or DingTalkTransient(
                f"download answered HTTP {response.status_code}"
            )
            raise log_failure(endpoints.DOWNLOAD, error)
        return response

    async def _json(
        self, endpoint: Endpoint, body: dict[str, Any], record: list[CallRecord]
    ) -> Any:
        self.calls += 1
        return await call(
            record, endpoint.name, PURPOSE, self._send(endpoint, body), metered=endpoint.metered
        )

    async def _send(self, endpoint: Endpoint, body: dict[str, Any]) -> Any:
        try:
            response = await paced_send(self._http, self._pacer, endpoint, json=body)
            return response.json()
        except ValueError as exc:
            raise log_failure(
                endpoint, DingTalkTransient(f"unreadable {endpoint.name} answer from DingTalk")
            ) from exc
        except DingTalkError as exc:
            raise log_failure(endpoint, exc) from None


async def _bounded(response: httpx.Response, max_size: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in response.aiter_bytes():
        seen += len(chunk)
        if seen > max_size:
            raise TooLarge(f"over the limit of {max_size} bytes")
        yield chunk
