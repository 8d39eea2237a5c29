"""Fetching a DDAttachment's files (``syncd.ports.attachments.FileFetcher``): bytes the
payload carried, a path under ``[attachments] base_dir`` (anything resolving outside it,
symbolic links included, is refused), or an HTTP(S) URL whose host is on
``[attachments] allow_hosts`` (redirects are not followed); never more than the limit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from syncd.ports.attachments import FileRef, FileUnavailable


class Files:
    def __init__(
        self,
        base_dir: str | None,
        allow_hosts: list[str],
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base = Path(base_dir).resolve() if base_dir else None
        self.hosts = {h.lower() for h in allow_hosts}
        self.timeout = timeout
        self.transport = transport

    async def fetch(self, ref: FileRef, max_size: int) -> bytes:
        if ref.content is not None:
            data = ref.content
        elif ref.path is not None:
            data = await asyncio.to_thread(self._read, ref.path, max_size)
        elif ref.url is not None:
            data = await self._download(ref.url, max_size)
        else:
            raise FileUnavailable("no content, path or url")
        if len(data) > max_size:
            raise FileUnavailable(f"{len(data)} bytes, over the limit of {max_size}")
        return data

    def _read(self, path: str, max_size: int) -> bytes:
        if self.base is None:
            raise FileUnavailable("a path, but [attachments] base_dir is not set")
        target = (self.base / path).resolve()
        if not target.is_relative_to(self.base):
            raise FileUnavailable(f"the path is outside [attachments] base_dir {self.base}")
        try:
            with target.open("rb") as f:
                data = f.read(max_size + 1)
        except OSError as exc:
            raise FileUnavailable(f"cannot be read ({exc.strerror or type(exc).__name__})") from exc
        return data

    async def _download(self, url: str, max_size: int) -> bytes:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FileUnavailable("only http and https URLs are fetched")
        if parts.hostname.lower() not in self.hosts:
            raise FileUnavailable(f"host {parts.hostname!r} is not in [attachments] allow_hosts")
        data = bytearray()
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as http:
                async with http.stream("GET", url) as response:
                    if response.status_code != 200:
                        raise FileUnavailable(f"the URL answered HTTP {response.status_code}")
                    async for chunk in response.aiter_bytes():
                        data += chunk
                        if len(data) > max_size:
                            raise FileUnavailable(f"over the limit of {max_size} bytes")
        except httpx.HTTPError as exc:
            raise FileUnavailable(f"the URL is unreachable ({type(exc).__name__})") from exc
        return bytes(data)
