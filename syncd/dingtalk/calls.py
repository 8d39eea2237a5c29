"""Declared DingTalk calls on httpx: sending one, and telling an observer how each ended.

Every request syncd sends to DingTalk carries its
:class:`~syncd.dingtalk.endpoints.Endpoint` in ``request.extensions``: :func:`send` puts
it there, and the token auth tags its own token fetches. An
:class:`ObservedClient` refuses a request without one (:class:`UndeclaredCall`, before
anything is sent) and reports every exchange to a
:class:`~syncd.ports.CallObserver`: its endpoint, its outcome (from the one error mapping
in ``mapping.py``, worked out once per answer by :func:`error_of`) and its duration. So
an undeclared call cannot be counted as anything: it fails loudly instead.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from syncd.dingtalk.endpoints import Endpoint, Host, Outcome
from syncd.dingtalk.mapping import error_from_response, oss_error_from_response
from syncd.dingtalk.pacing import SendWindow, SlotMissed
from syncd.errors import (
    DingTalkAuthError,
    DingTalkError,
    DingTalkQuotaExhausted,
    DingTalkRejected,
    DingTalkThrottled,
    DingTalkTransient,
)
from syncd.ports import CallObserver

#: The key of a request's declared endpoint in ``request.extensions``.
ENDPOINT_KEY = "syncd_endpoint"
WINDOW_KEY = "syncd_send_window"
_ERROR_KEY = "syncd_error"
_OUTCOMES: tuple[tuple[type[DingTalkError], Outcome], ...] = (
    (DingTalkThrottled, "throttled"),
    (DingTalkQuotaExhausted, "quota_exhausted"),
    (DingTalkAuthError, "auth_error"),
    (DingTalkRejected, "rejected"),
    (DingTalkTransient, "transient"),
)


class UndeclaredCall(RuntimeError):
    """A request to DingTalk that no :class:`~syncd.dingtalk.endpoints.Endpoint` declares."""


def tagged(endpoint: Endpoint, extensions: dict[str, Any] | None = None) -> dict[str, Any]:
    """``extensions`` (a copy) naming ``endpoint`` as the call a request makes."""
    return {**(extensions or {}), ENDPOINT_KEY: endpoint}


def endpoint_of(request: httpx.Request) -> Endpoint | None:
    """The call ``request`` was declared as, if any."""
    found = request.extensions.get(ENDPOINT_KEY)
    return found if isinstance(found, Endpoint) else None


def declared(request: httpx.Request) -> Endpoint:
    """The call ``request`` was declared as; :class:`UndeclaredCall` if none."""
    endpoint = endpoint_of(request)
    if endpoint is None:
        raise UndeclaredCall(
            f"{request.method} {request.url.path} is not a declared DingTalk call: declare it"
            " in syncd/dingtalk/endpoints.py and send it with syncd.dingtalk.calls.send"
        )
    return endpoint


async def send(
    http: httpx.AsyncClient,
    endpoint: Endpoint,
    *,
    json: Any = None,
    params: dict[str, str] | None = None,
    auth: httpx.Auth | None = None,
    path_params: Mapping[str, str] | None = None,
    url: str | None = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    window: SendWindow | None = None,
) -> httpx.Response:
    """Send the call ``endpoint`` declares on ``http`` (based on the endpoint's host), with
    ``http``'s own auth unless ``auth`` is given.

    ``path_params`` fill the declared path's ``{name}`` parts (quoted); ``url`` replaces
    the path altogether (a signed file-store URL, used verbatim); ``content`` and
    ``headers`` are the raw body and the request's own headers; ``window``, a paced
    call's: :class:`ObservedClient` raises :class:`SlotMissed` instead of writing the
    request after it.
    """
    target = url if url is not None else endpoint.path
    for name, value in (path_params or {}).items():
        target = target.replace("{" + name + "}", quote(value, safe=""))
    return await http.request(
        endpoint.method,
        target,
        json=json,
        params=params,
        content=content,
        headers=headers,
        auth=httpx.USE_CLIENT_DEFAULT if auth is None else auth,
        extensions=tagged(endpoint, None if window is None else {WINDOW_KEY: window}),
    )


def error_of(response: httpx.Response) -> DingTalkError | None:
    """The error a (read) answer stands for, ``None`` for a success; mapped once per answer."""
    if _ERROR_KEY not in response.extensions:
        endpoint = endpoint_of(response.request)
        mapping = (
            oss_error_from_response
            if endpoint is not None and endpoint.host is Host.OSS
            else error_from_response
        )
        response.extensions[_ERROR_KEY] = mapping(
            response.status_code, response.headers, response.content
        )
    error: DingTalkError | None = response.extensions[_ERROR_KEY]
    return error


def outcome_of(error: DingTalkError | None) -> Outcome:
    """The outcome of an answer that stands for ``error`` (``None``: a success)."""
    if error is None:
        return "ok"
    return next((name for cls, name in _OUTCOMES if isinstance(error, cls)), "error")


def _failed(exc: httpx.TransportError, sent: httpx.Request) -> httpx.Request:
    """The request that got no answer: ``sent``, or the token fetch it was waiting for."""
    try:
        return exc.request
    except RuntimeError:  # httpx attaches the request; a bare error is about ``sent``
        return sent


class ObservedClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` for declared calls, each reported to ``observer``.

    Its request hook refuses an undeclared request, and a paced one that would leave
    after its window (the hook runs after the token is added, just before the transport
    writes the request); its response hook reports each
    answer; :meth:`send` reports a request that got no answer at all (refused, reset,
    timed out; a token fetch under its own name), which httpx's hooks never see.
    (Wrapping the transport instead would turn off the proxies taken from the
    environment.)
    """

    def __init__(self, *args: Any, observer: CallObserver | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._observer = observer
        self._sent_at: weakref.WeakKeyDictionary[httpx.Request, float] = weakref.WeakKeyDictionary()
        self.event_hooks["request"].append(self._sent)
        self.event_hooks["response"].append(self._answered)

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        try:
            return await super().send(request, **kwargs)
        except httpx.TransportError as exc:
            timeout = isinstance(exc, httpx.TimeoutException)
            self._ended(_failed(exc, request), "timeout" if timeout else "unreachable")
            raise

    async def _sent(self, request: httpx.Request) -> None:
        declared(request)
        window = request.extensions.get(WINDOW_KEY)
        if isinstance(window, SendWindow) and (late_by := window.late_by()) > 0:
            raise SlotMissed(late_by)
        self._sent_at[request] = time.perf_counter()

    async def _answered(self, response: httpx.Response) -> None:
        if self._observer is not None:
            await response.aread()
            self._ended(response.request, outcome_of(error_of(response)))

    def _ended(self, request: httpx.Request, outcome: Outcome) -> None:
        started = self._sent_at.pop(request, None)
        if self._observer is not None:
            seconds = None if started is None else time.perf_counter() - started
            self._observer.call_ended(declared(request), outcome, seconds)
