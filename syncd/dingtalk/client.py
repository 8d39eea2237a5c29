"""``HttpxApprovalClient``: the DingTalk workflow API (contract §3-§7) on httpx.

The client is given an ``httpx.AsyncClient`` (see :func:`build_http_client`) whose auth
is :class:`~syncd.dingtalk.auth.DingTalkTokenAuth`, so tests run the real request
building, decoding, auth and error mapping against the simulator. Each method sends one
call declared in :mod:`syncd.dingtalk.endpoints` (its path, method, pacing bucket and
metric label come from there). It is the only module that catches ``httpx.HTTPError``;
every failure leaves it as a :class:`~syncd.errors.DingTalkError` chosen by what the
caller must do next.

A create is never retried here. A create that fails before its request left (connect
error, pool timeout, local pacing, token trouble) is transient; one that fails after
(timeout while reading, reset, 5xx, unreadable answer) is
:class:`~syncd.errors.DingTalkOutcomeUnknown`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from syncd import __version__
from syncd.clock import SystemClock
from syncd.dingtalk import endpoints
from syncd.dingtalk.auth import DingTalkTokenAuth
from syncd.dingtalk.calls import ObservedClient, endpoint_of, error_of, send
from syncd.dingtalk.endpoints import Endpoint
from syncd.dingtalk.mapping import for_create
from syncd.dingtalk.models import (
    ActionResponse,
    ConnectionTicket,
    CreateInstanceRequest,
    CreateInstanceResponse,
    FormSchema,
    GetInstanceResponse,
    InstanceId,
    ListInstanceIdsResponse,
    ProcessInstance,
    SchemaResponse,
)
from syncd.dingtalk.paced import log_failure
from syncd.dingtalk.pacing import MemoryPacer, Pacer, SendWindow, SlotMissed, send_paced
from syncd.dingtalk.transport import dingtalk_transport
from syncd.errors import (
    DingTalkError,
    DingTalkNotSent,
    DingTalkOutcomeUnknown,
    DingTalkThrottled,
    DingTalkTransient,
)
from syncd.ports import CallObserver, Clock
from syncd.ports.inbound import ListPage

logger = logging.getLogger(__name__)

API_BASE_URL = "https://api.dingtalk.com"
#: DingTalk accepts at most 120 days per list query and 20 ids per page (contract §5.1).
LIST_WINDOW = timedelta(days=120)
LIST_PAGE_SIZE = 20

_M = TypeVar("_M", bound=BaseModel)

#: Idle connections are dropped after this many seconds, before a server that closes
#: them after 5 s (a common default) can: reusing a connection the server is closing
#: fails the request after it was sent, which for a create means an unknown outcome.
KEEPALIVE_EXPIRY = 4.0
#: Transport errors raised before any byte of the request can have reached DingTalk.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)


def build_http_client(
    app_key: str,
    app_secret: SecretStr | str,
    *,
    base_url: str = API_BASE_URL,
    clock: Clock | None = None,
    timeout: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
    observer: CallObserver | None = None,
) -> ObservedClient:
    """An ``httpx.AsyncClient`` configured for DingTalk's new API, with token auth; every
    exchange (token fetches included) is reported to ``observer``. Without a
    ``transport``, it sends over aiohttp (:mod:`syncd.dingtalk.transport`), or over
    httpx's own transport where the environment names a proxy."""
    auth = DingTalkTokenAuth(
        app_key,
        app_secret,
        clock=clock or SystemClock(),
        token_url=f"{base_url.rstrip('/')}{endpoints.TOKEN.path}",
    )
    limits = httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY)
    return ObservedClient(
        base_url=base_url,
        auth=auth,
        timeout=httpx.Timeout(timeout, connect=5.0),
        headers={"Accept": "application/json"},
        transport=transport or dingtalk_transport(limits),
        limits=limits,
        observer=observer,
    )


def _failed_before_sending(exc: httpx.HTTPError) -> bool:
    if isinstance(exc, _NOT_SENT):
        return True
    try:
        request = exc.request
    except RuntimeError:
        return False
    return endpoint_of(request) == endpoints.TOKEN  # the token fetch failed: the call never left


def _transport_error(exc: httpx.HTTPError, endpoint: Endpoint) -> DingTalkError:
    kind = type(exc).__name__
    if endpoint == endpoints.CREATE and not _failed_before_sending(exc):
        return DingTalkOutcomeUnknown(f"create outcome unknown after {kind}")
    return DingTalkTransient(f"DingTalk unreachable ({kind})")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def windows(start: datetime, end: datetime, span: timedelta = LIST_WINDOW) -> list[tuple[int, int]]:
    """``[start, end]`` cut into consecutive windows of at most ``span``, in epoch ms."""
    chunks: list[tuple[int, int]] = []
    cursor = _ms(start)
    last = _ms(end)
    step = int(span.total_seconds() * 1000)
    while cursor <= last:
        upper = min(cursor + step - 1, last)
        chunks.append((cursor, upper))
        cursor = upper + 1
    return chunks


async def open_stream_connection(
    http: httpx.AsyncClient, app_key: str, app_secret: SecretStr | str
) -> ConnectionTicket:
    """``POST /v1.0/gateway/connections/open`` (§11.1): a Stream endpoint and one-time ticket.

    Sent without the token header (a no-op auth); a refused key or secret raises
    :class:`~syncd.errors.DingTalkAuthError`.
    """
    secret = app_secret.get_secret_value() if isinstance(app_secret, SecretStr) else app_secret
    body = {
        "clientId": app_key,
        "clientSecret": secret,
        "subscriptions": [{"type": "EVENT", "topic": "*"}],
        "ua": f"syncd/{__version__}",
    }
    try:
        response = await send(http, endpoints.STREAM_OPEN, json=body, auth=httpx.Auth())
    except httpx.HTTPError as exc:
        raise DingTalkTransient(f"DingTalk unreachable ({type(exc).__name__})") from exc
    error = error_of(response)
    if error is not None:
        raise error
    try:
        ticket = ConnectionTicket.model_validate_json(response.content)
    except ValidationError as exc:
        raise DingTalkTransient("unreadable connections/open answer from DingTalk") from exc
    if not ticket.endpoint or not ticket.ticket:
        raise DingTalkTransient("DingTalk returned no Stream endpoint or ticket")
    return ticket


class HttpxApprovalClient:
    """DingTalk's workflow API; implements ``syncd.ports.ApprovalClient``."""

    def __init__(
        self, http: httpx.AsyncClient, *, pacer: Pacer | None = None, clock: Clock | None = None
    ) -> None:
        self._http = http
        self._clock = clock or SystemClock()
        self._pacer = pacer or MemoryPacer(clock=self._clock)
        self.calls = 0  # requests sent, for metrics (each costs monthly quota)

    async def create_instance(
        self, request: CreateInstanceRequest, *, send_before: datetime | None = None
    ) -> InstanceId:
        """Start an approval instance; never retried here (contract §12).

        Not sent at all (``DingTalkNotSent``) if pacing held it until ``send_before``.
        """
        body = await self._call(endpoints.CREATE, json=request.to_wire(), send_before=send_before)
        answer = self._parse(CreateInstanceResponse, body, endpoints.CREATE)
        return InstanceId(answer.instance_id)

    async def get_instance(self, instance_id: str) -> ProcessInstance:
        """Read one instance; the authoritative state (contract §4.1)."""
        body = await self._call(endpoints.GET, params={"processInstanceId": instance_id})
        answer = self._parse(GetInstanceResponse, body, endpoints.GET)
        return answer.result.model_copy(update={"instance_id": instance_id})

    async def list_instance_ids(
        self,
        process_code: str,
        start: datetime,
        end: datetime | None = None,
        *,
        user_ids: Sequence[str] = (),
        statuses: Sequence[str] = (),
    ) -> list[InstanceId]:
        """Ids of instances started in ``[start, end]``, paged and cut into 120-day windows."""
        found: dict[str, None] = {}
        for lower, upper in windows(start, end or self._clock.now()):
            query: dict[str, Any] = {"processCode": process_code, "startTime": lower}
            query.update(endTime=upper, maxResults=LIST_PAGE_SIZE)
            if user_ids:
                query["userIds"] = list(user_ids)
            if statuses:
                query["statuses"] = list(statuses)
            await self._list_window(query, found)
        return [InstanceId(instance_id) for instance_id in found]

    async def _list_window(self, query: dict[str, Any], found: dict[str, None]) -> None:
        cursor: int | None = 0
        while cursor is not None:
            page = await self._list(query, cursor)
            found.update(dict.fromkeys(page.ids))
            cursor = page.next_token

    async def list_page(
        self, process_code: str, start_ms: int, end_ms: int, token: int
    ) -> ListPage:
        """One page of the listing (``syncd.ports.inbound.InstanceLister``)."""
        query = {"processCode": process_code, "startTime": start_ms, "endTime": end_ms}
        return await self._list({**query, "maxResults": LIST_PAGE_SIZE}, token)

    async def _list(self, query: dict[str, Any], token: int) -> ListPage:
        body = await self._call(endpoints.LIST, json={**query, "nextToken": token})
        page = self._parse(ListInstanceIdsResponse, body, endpoints.LIST).result
        return ListPage(list(page.ids), page.next_cursor if page.ids else None)

    async def terminate_instance(
        self, instance_id: str, *, operating_user_id: str | None = None, remark: str | None = None
    ) -> None:
        """Revoke a running instance; as the system unless an operating user is given."""
        payload: dict[str, Any] = {
            "processInstanceId": instance_id,
            "isSystem": operating_user_id is None,
        }
        if operating_user_id is not None:
            payload["operatingUserId"] = operating_user_id
        if remark is not None:
            payload["remark"] = remark
        body = await self._call(endpoints.TERMINATE, json=payload)
        self._check_action(body, endpoints.TERMINATE)

    async def add_comment(
        self,
        instance_id: str,
        text: str,
        comment_user_id: str,
        attachments: Sequence[Mapping[str, str]] = (),
    ) -> None:
        """Add a comment to an instance (contract §6.2), with files committed into the
        commenter's approval space (``file.attachments``, §18.1)."""
        payload: dict[str, Any] = {
            "processInstanceId": instance_id,
            "text": text,
            "commentUserId": comment_user_id,
        }
        if attachments:
            payload["file"] = {"attachments": [dict(a) for a in attachments]}
        body = await self._call(endpoints.COMMENT, json=payload)
        self._check_action(body, endpoints.COMMENT)

    async def get_form_schema(self, process_code: str) -> FormSchema:
        """A template's form schema (contract §7.1)."""
        body = await self._call(endpoints.SCHEMA, params={"processCode": process_code})
        return self._parse(SchemaResponse, body, endpoints.SCHEMA).result

    # --- plumbing ----------------------------------------------------------------------

    async def _call(
        self,
        endpoint: Endpoint,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        send_before: datetime | None = None,
    ) -> bytes:
        async def attempt(window: SendWindow) -> httpx.Response:
            if send_before is not None and self._clock.now() >= send_before:
                late = DingTalkNotSent(
                    f"{endpoint.name} kept back: its lease ends before an answer could"
                )
                self._log_failure(endpoint, late)
                raise late
            self.calls += 1
            try:
                return await send(self._http, endpoint, json=json, params=params, window=window)
            except SlotMissed:
                self.calls -= 1  # not written: it goes again with another slot
                raise
            except httpx.HTTPError as exc:
                failure = _transport_error(exc, endpoint)
                self._log_failure(endpoint, failure)
                raise failure from exc
            except DingTalkError as token_failure:  # from the token auth: the call was not sent
                self._log_failure(endpoint, token_failure)
                raise

        response = await send_paced(self._pacer, endpoint.name, attempt)
        error = error_of(response)
        if error is None:
            return response.content
        if isinstance(error, DingTalkThrottled):
            await self._pacer.penalize(endpoint.name, error.retry_after)
        failure = for_create(error) if endpoint == endpoints.CREATE else error
        self._log_failure(endpoint, failure)
        raise failure

    def _parse(self, model: type[_M], body: bytes, endpoint: Endpoint) -> _M:
        try:
            answer = model.model_validate_json(body)
        except ValidationError as exc:
            error: DingTalkError = DingTalkTransient(
                f"unreadable {endpoint.name} answer from DingTalk"
            )
            if endpoint == endpoints.CREATE:
                error = DingTalkOutcomeUnknown("create answered, but the answer is unreadable")
            self._log_failure(endpoint, error)
            raise error from exc
        if getattr(answer, "success", True) is False:
            error = DingTalkTransient(f"DingTalk answered success=false to {endpoint.name}")
            self._log_failure(endpoint, error)
            raise error
        return answer

    def _check_action(self, body: bytes, endpoint: Endpoint) -> None:
        if not self._parse(ActionResponse, body, endpoint).result:
            error = DingTalkTransient(f"DingTalk answered result=false to {endpoint.name}")
            self._log_failure(endpoint, error)
            raise error

    @staticmethod
    def _log_failure(endpoint: Endpoint, error: DingTalkError) -> None:
        log_failure(endpoint, error)
