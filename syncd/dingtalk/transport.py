"""The transport under syncd's DingTalk clients: aiohttp, behind httpx's API.

httpx's own transport (httpcore and h11) reads and writes HTTP in Python;
``httpx_aiohttp.AiohttpTransport`` sends the same ``httpx.Request`` over an aiohttp
session, whose HTTP parser is written in C, and hands back an ``httpx.Response``. Everything
above the transport stays httpx: the declared calls, the token auth, the observer, the
tests' ``httpx.ASGITransport`` around the simulator. What it saves is measured in
bench/RESULTS.md ("HTTP client and event loop").

:class:`DingTalkTransport` adds four things to it:

- **Errors by whether the request can have left.** httpx-aiohttp turns every
  ``aiohttp.ClientConnectionError`` into ``httpx.ConnectTimeout``, a reset or a server
  that closed the connection after the request was written included; syncd reads a
  ``ConnectTimeout`` as "not sent", which for a create must never be said of a request
  that may have reached DingTalk. Here only aiohttp's connector errors (connection
  refused, DNS, TLS handshake, proxy) and its connect timeout (which includes waiting for
  a pooled connection) become ``httpx.ConnectError`` / ``ConnectTimeout`` /
  ``ProxyError``; a read timeout becomes ``httpx.ReadTimeout``, a server that closed the
  connection ``httpx.RemoteProtocolError``, anything else ``httpx.ReadError``: the
  request may have been sent.
- **httpx's headers, no more.** aiohttp adds ``Content-Type: application/octet-stream``
  (and a few others) to a request that lacks them; a file-store upload is signed over
  its headers, so DingTalk would refuse it. None is added here. No cookie jar of
  aiohttp's own either (httpx keeps the client's cookies); limits and keep-alive expiry
  from the ``httpx.Limits`` given.
- **Large bodies on httpx's transport.** aiohttp has no write timeout: its read timeout
  starts once the body is sent, so a peer that stops reading a large upload would hold
  it forever. Bodies over :data:`SMALL_BODY` (file uploads) and streamed ones go on
  httpx's own transport, with its write timeout; DingTalk's JSON calls are far smaller.
- **Proxies as before.** httpx honours ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and
  ``NO_PROXY`` only with its own transport; where any proxy variable is set,
  :func:`dingtalk_transport` returns ``None`` and httpx's own transport is used, so a
  proxy behaves exactly as it did.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Mapping

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

#: Bodies up to this size go over aiohttp: they fit in the socket's write buffer (64 KiB
#: before asyncio pauses writing), so the write cannot stall. aiohttp has no write
#: timeout (its read timeout starts once the body is sent): a larger or streamed body,
#: a file upload, goes on httpx's own transport, whose write timeout bounds it.
SMALL_BODY = 32 * 1024
#: The variables httpx reads proxies from (in either case).
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
_QUERY = re.compile(r"\?\S*")
#: Headers aiohttp adds when a request lacks them; a file-store upload is signed over its
#: headers (Content-Type among them), so it must go out with httpx's headers alone.
_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
#: What aiohttp raises (itself, or under httpx-aiohttp's mapping) for a failed exchange.
_FAILURES = (httpx.TransportError, aiohttp.ClientError, OSError, asyncio.TimeoutError)


def proxied(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment names a proxy httpx would use."""
    return any(environ.get(name) or environ.get(name.lower()) for name in PROXY_VARIABLES)


def dingtalk_transport(
    limits: httpx.Limits, environ: Mapping[str, str] = os.environ
) -> httpx.AsyncBaseTransport | None:
    """The transport for DingTalk calls; ``None`` (httpx's own) where a proxy is set."""
    if proxied(environ):
        return None
    return DingTalkTransport(limits)


def error_class(failure: type[BaseException]) -> type[httpx.TransportError]:
    """The httpx error for an aiohttp failure of this class: one that says "not sent"
    (``ConnectError``, ``ConnectTimeout``, ``ProxyError``) only for aiohttp's connector
    errors and its connect timeout, raised before any byte of the request is written."""
    if issubclass(failure, aiohttp.ClientProxyConnectionError):
        return httpx.ProxyError
    if issubclass(failure, aiohttp.ClientConnectorError):
        return httpx.ConnectError
    if issubclass(failure, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout
    if issubclass(failure, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return httpx.ReadTimeout
    if issubclass(failure, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError
    return httpx.ReadError


def as_httpx_error(exc: BaseException) -> httpx.TransportError:
    """``exc`` (aiohttp's, or httpx-aiohttp's mapping of it) as :func:`error_class` says;
    its message without any URL's query (a signed file-store URL's signature)."""
    if isinstance(exc, httpx.UnsupportedProtocol):  # a URL that is not http(s): nothing sent
        return exc
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) and exc.__cause__ else exc
    message = _QUERY.sub("?…", f"{type(cause).__name__}: {cause}")
    return error_class(type(cause))(message)


class _Body(httpx.AsyncByteStream):
    """A response body whose read errors are mapped as the exchange's are."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except _FAILURES as exc:
            raise as_httpx_error(exc) from exc

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        except _FAILURES as exc:
            raise as_httpx_error(exc) from exc


def _small(request: httpx.Request) -> bool:
    try:
        return len(request.content) <= SMALL_BODY
    except httpx.RequestNotRead:  # a streamed body
        return False


class DingTalkTransport(AiohttpTransport):
    """httpx-aiohttp's transport with the error mapping above, httpx's headers alone and
    no cookie jar; a
    request with a large or streamed body goes on httpx's own transport instead."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, client=self._session)
        self._large = httpx.AsyncHTTPTransport(limits=limits)

    def _session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0,
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_AUTO_HEADERS,  # the request's headers are httpx's, no more
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not _small(request):
            return await self._large.handle_async_request(request)
        try:
            response = await super().handle_async_request(request)
        except _FAILURES as exc:
            raise as_httpx_error(exc) from exc
        if isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _Body(response.stream)
        return response

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self._large.aclose()
