"""The app access token, handled in one ``httpx.Auth`` (contract §2, §14.3).

The token is fetched from ``POST /v1.0/oauth2/accessToken`` on the same host as the
request, cached until ``refresh_margin`` seconds before it expires, fetched by one
request at a time however many calls wait for it (single flight), and refreshed once
when DingTalk answers ``InvalidAuthentication`` (or any 401) — the call is then sent
again with the new token. A wrong app key or secret raises
:class:`~syncd.errors.DingTalkAuthError`. No call site ever touches a token, and the
secret and the token never appear in logs, errors or ``repr``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Generator

import httpx
from pydantic import SecretStr, ValidationError

from syncd.dingtalk.calls import declared, error_of, tagged
from syncd.dingtalk.endpoints import TOKEN, Host
from syncd.dingtalk.models import TokenResponse
from syncd.errors import DingTalkAuthError, DingTalkRejected, DingTalkTransient
from syncd.ports import Clock

logger = logging.getLogger(__name__)

TOKEN_HEADER = "x-acs-dingtalk-access-token"
#: The contract's advice (D-guide): refresh ten minutes before expiry.
DEFAULT_REFRESH_MARGIN = 600.0


def is_token_rejection(response: httpx.Response) -> bool:
    """Whether DingTalk refused the token itself (bad or expired), not the call."""
    if response.status_code == 401:
        return True
    if response.status_code != 400:
        return False
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("code") == "InvalidAuthentication"


def _attach(request: httpx.Request, host: Host, token: str) -> None:
    """The new API takes the token in a header, the old one (oapi) in the query."""
    if host is Host.OAPI:
        request.url = request.url.copy_set_param("access_token", token)
    else:
        request.headers[TOKEN_HEADER] = token


class DingTalkTokenAuth(httpx.Auth):
    """Adds the access token to every request (async clients only).

    One instance can serve both hosts: ``x-acs-dingtalk-access-token`` on calls the
    new API serves, ``?access_token=`` on those of the old one, as each request's declared
    endpoint says (an undeclared request raises
    :class:`~syncd.dingtalk.calls.UndeclaredCall`); give ``token_url`` when it is shared,
    so tokens are always fetched from the new API. Its token fetches are declared
    :data:`~syncd.dingtalk.endpoints.TOKEN`.
    """

    requires_response_body = True

    def __init__(
        self,
        app_key: str,
        app_secret: SecretStr | str,
        *,
        clock: Clock,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        token_url: str | None = None,
    ) -> None:
        self._token_url = token_url
        self._app_key = app_key
        self._app_secret = (
            app_secret if isinstance(app_secret, SecretStr) else SecretStr(app_secret)
        )
        self._clock = clock
        self._margin = refresh_margin
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.refreshes = 0  # token requests sent, for metrics and tests

    def __repr__(self) -> str:
        return f"DingTalkTokenAuth(app_key={self._app_key!r})"

    def invalidate(self) -> None:
        """Forget the cached token; the next call fetches a new one."""
        self._token = None

    def _fresh_token(self) -> str | None:
        if self._token is not None and self._clock.monotonic() < self._expires_at - self._margin:
            return self._token
        return None

    def _token_request(self, request: httpx.Request) -> httpx.Request:
        body = {"appKey": self._app_key, "appSecret": self._app_secret.get_secret_value()}
        return httpx.Request(
            "POST",
            self._token_url or request.url.join(TOKEN.path),
            json=body,
            headers={"Accept": "application/json"},
            extensions=tagged(TOKEN, request.extensions),
        )

    def _store(self, response: httpx.Response) -> str:
        error = error_of(response)
        if isinstance(error, DingTalkAuthError | DingTalkRejected):
            raise DingTalkAuthError(
                f"DingTalk refused the app key or secret ({error.message}); fix them and restart",
                code=error.code,
                request_id=error.request_id,
                http_status=error.http_status,
            ) from error
        if error is not None:
            raise error
        try:
            token = TokenResponse.model_validate_json(response.content)
        except ValidationError as exc:
            raise DingTalkTransient("DingTalk's token answer is unreadable") from exc
        self._token = token.access_token
        self._expires_at = self._clock.monotonic() + token.expire_in
        self.refreshes += 1
        logger.info(
            "access token refreshed, valid %ss",
            token.expire_in,
            extra={"action": "token_refreshed", "expires_in": token.expire_in},
        )
        return token.access_token

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("DingTalkTokenAuth works with httpx.AsyncClient only")
        yield request  # pragma: no cover

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        host = declared(request).host  # an undeclared call fails before any token fetch
        if host is Host.OSS:  # a signed file-store URL: the token must not leave DingTalk
            yield request
            return
        for attempt in (1, 2):
            token = self._fresh_token()
            if token is None:
                async with self._lock:
                    token = self._fresh_token()
                    if token is None:
                        answer = yield self._token_request(request)
                        await answer.aread()
                        token = self._store(answer)
            _attach(request, host, token)
            response = yield request
            await response.aread()
            if attempt == 2 or not is_token_rejection(response):
                return
            logger.info("token refused, refreshing once", extra={"action": "token_rejected"})
            if self._token == token:
                self._token = None
