"""Every failure aiohttp can raise, through the client: a create is called "not sent"
(transient, safe to retry) only when aiohttp failed before writing any of it, that is
in its connector (refused, DNS, TLS handshake, proxy) or its connect timeout (which
includes waiting for a pooled connection). Anything else may have reached DingTalk."""

from __future__ import annotations

import asyncio

import aiohttp
import httpx
import pytest

from syncd.dingtalk import endpoints
from syncd.dingtalk.client import HttpxApprovalClient, build_http_client
from syncd.dingtalk.models import CreateInstanceRequest
from syncd.dingtalk.transport import as_httpx_error, error_class
from syncd.errors import DingTalkOutcomeUnknown, DingTalkTransient


def _classes(root: type[BaseException]) -> set[type[BaseException]]:
    found = {root}
    for sub in root.__subclasses__():
        found |= _classes(sub)
    return found


AIOHTTP = {c for c in _classes(aiohttp.ClientError) if c.__module__.startswith("aiohttp")}
FAILURES = sorted(
    AIOHTTP | {asyncio.TimeoutError, OSError, ConnectionResetError, BrokenPipeError},
    key=lambda c: f"{c.__module__}.{c.__qualname__}",
)
BEFORE_WRITING = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
CREATE = CreateInstanceRequest(
    process_code="PROC-X", originator_user_id="u1", dept_id=-1, form_component_values=[]
)


def failing_with(failure: type[BaseException]) -> httpx.MockTransport:
    """DingTalk that hands out tokens, and whose every other exchange fails as aiohttp's
    ``failure`` does under syncd's transport."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == endpoints.TOKEN.path:
            return httpx.Response(200, json={"accessToken": "t", "expireIn": 7200})
        raise error_class(failure)(failure.__name__)

    return httpx.MockTransport(handle)


def test_the_failures_cover_every_connector_error() -> None:
    assert aiohttp.ClientConnectorDNSError in FAILURES
    assert aiohttp.ServerDisconnectedError in FAILURES
    assert len([c for c in FAILURES if issubclass(c, BEFORE_WRITING)]) >= 6


@pytest.mark.parametrize("failure", FAILURES, ids=lambda c: c.__qualname__)
async def test_a_create_is_unsent_only_when_aiohttp_wrote_nothing(failure) -> None:
    http = build_http_client(
        "key", "secret", base_url="http://dingtalk.test", transport=failing_with(failure)
    )
    async with http:
        client = HttpxApprovalClient(http)
        with pytest.raises((DingTalkTransient, DingTalkOutcomeUnknown)) as create:
            await client.create_instance(CREATE)
        with pytest.raises(DingTalkTransient) as read:
            await client.get_instance("any")
    unsent = issubclass(failure, BEFORE_WRITING)
    assert isinstance(create.value, DingTalkOutcomeUnknown) is not unsent
    assert not isinstance(read.value, DingTalkOutcomeUnknown)  # a read is always retried
    assert isinstance(create.value.__cause__, error_class(failure))


@pytest.mark.parametrize("failure", [aiohttp.ConnectionTimeoutError, aiohttp.ClientOSError])
def test_a_failure_names_no_query_of_a_signed_url(failure) -> None:
    signed = "https://oss.example/upload/k?Expires=1&Signature=SeCrEt%2F"
    error = as_httpx_error(failure(f"Connection timeout to host {signed}"))
    assert "SeCrEt" not in str(error) and "https://oss.example/upload/k?…" in str(error)
    assert isinstance(error, error_class(failure))
