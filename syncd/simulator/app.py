"""The HTTP face of the simulator: api.dingtalk.com and oapi.dingtalk.com paths."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncd.dingtalk import endpoints as ep
from syncd.dingtalk.endpoints import Endpoint, Host
from syncd.simulator.admin import admin_routes
from syncd.simulator.contact_api import ContactApi, directory_routes
from syncd.simulator.faults import QPS_MESSAGE, QUOTA_MESSAGE
from syncd.simulator.responses import (
    ApiError,
    ConnectionDropped,
    OapiError,
    api_error_body,
    dingtalk_json,
    json_body,
    oapi_error_body,
)
from syncd.simulator.schema import schema_result
from syncd.simulator.state import ms
from syncd.simulator.storage_api import StorageApi

if TYPE_CHECKING:
    from syncd.simulator.core import Simulator

#: The old API's token, which syncd never asks for: served for DingTalk's SDK clients.
GETTOKEN = Endpoint("gettoken", "oapi.gettoken", Host.OAPI, "GET", "/gettoken", metered=False)
#: Every call served: syncd's own (declared in ``syncd.dingtalk.endpoints``), and more.
SERVED: tuple[Endpoint, ...] = (*ep.ENDPOINTS, GETTOKEN)
_BY_ROUTE: dict[tuple[str, str], Endpoint] = {(e.method, e.path): e for e in SERVED}
#: Calls whose path has ``{name}`` parameters, as patterns of one segment per parameter.
_BY_PATTERN: list[tuple[str, re.Pattern[str], Endpoint]] = [
    (e.method, re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(e.path)) + "$"), e)
    for e in SERVED
    if "{" in e.path
]
TOKEN_HEADER = "x-acs-dingtalk-access-token"

Handler = Callable[[Request], Awaitable[Any]]


def served(method: str, path: str) -> Endpoint | None:
    """The call a request makes, if the simulator serves it."""
    path = path.rstrip("/") or "/"
    found = _BY_ROUTE.get((method, path))
    if found is None:
        found = next((e for m, p, e in _BY_PATTERN if m == method and p.match(path)), None)
    return found


class Api:
    """Route handlers; each returns the bare business JSON or raises ApiError/OapiError."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def wrap(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            rid = self.sim.request_id()
            try:
                body = await handler(request)
                if isinstance(body, Response):  # the file store's own answers
                    return body
                if isinstance(body, dict) and body.get("errcode") == 0 and "result" in body:
                    body["request_id"] = rid  # topapi answers carry it (contract §15.1)
                return dingtalk_json(body, 200, rid)
            except ApiError as exc:
                return dingtalk_json(api_error_body(exc, rid), exc.status, rid)
            except OapiError as exc:
                return dingtalk_json(oapi_error_body(exc, rid), 200, rid)

        return endpoint

    def _limits(self, app_key: str, endpoint: Endpoint) -> None:
        old = endpoint.host is Host.OAPI
        code = self.sim.limiter.check_rate(app_key, endpoint.api)
        if code is not None:
            raise OapiError(90018, QPS_MESSAGE) if old else ApiError(403, code, QPS_MESSAGE)
        if endpoint.metered and not self.sim.limiter.check_quota():
            if old:
                raise OapiError(90020, QUOTA_MESSAGE)
            raise ApiError(403, "Forbidden.AccessDenied.ApiCountLimitForOrg", QUOTA_MESSAGE)

    def auth(self, request: Request, endpoint: Endpoint) -> str:
        """The app key behind the request's token header (§2.4); rate limits and quota."""
        token = request.headers.get(TOKEN_HEADER)
        if token is None:
            raise ApiError(
                400, "AuthenticationFailed.MissingParameter", f"缺少参数：{TOKEN_HEADER}"
            )
        app_key = self.sim.tokens.check(token)
        if app_key is None:
            raise ApiError(400, "InvalidAuthentication", "不合法的access_token")
        self._limits(app_key, endpoint)
        return app_key

    def _credentials(self, key: object, secret: object) -> str | None:
        app = self.sim.app_for(key) if isinstance(key, str) else None
        return app.app_key if app is not None and app.app_secret == secret else None

    async def access_token(self, request: Request) -> dict[str, Any]:
        body = await json_body(request)
        app_key = self._credentials(body.get("appKey"), body.get("appSecret"))
        if app_key is None:
            raise ApiError(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
        self._limits(app_key, ep.TOKEN)
        token = self.sim.tokens.issue(app_key)
        return {"accessToken": token.value, "expireIn": self.sim.faults.limits.token_ttl}

    async def create(self, request: Request) -> dict[str, Any]:
        app_key = self.auth(request, ep.CREATE)
        instance = self.sim.workflow.create(app_key, await json_body(request))
        return {"instanceId": instance.instance_id}

    async def get(self, request: Request) -> dict[str, Any]:
        self.auth(request, ep.GET)
        instance_id = request.query_params.get("processInstanceId")
        return self.sim.workflow.get(instance_id, str(request.base_url))

    async def list_ids(self, request: Request) -> dict[str, Any]:
        self.auth(request, ep.LIST)
        return self.sim.workflow.list_ids(await json_body(request))

    async def terminate(self, request: Request) -> dict[str, Any]:
        self.auth(request, ep.TERMINATE)
        return self.sim.workflow.terminate(await json_body(request))

    async def comment(self, request: Request) -> dict[str, Any]:
        self.auth(request, ep.COMMENT)
        return self.sim.workflow.comment(await json_body(request))

    async def schema(self, request: Request) -> dict[str, Any]:
        self.auth(request, ep.SCHEMA)
        code = request.query_params.get("processCode")
        if not code:
            raise ApiError(400, "invalidParameter", "processCode不能为空")
        template = self.sim.world.template(code)
        if template is None:
            raise ApiError(400, "aflowProcessCodeIsError", "processCode不合法")
        created = ms(self.sim.clock.now()) - 86_400_000
        return {"result": schema_result(self.sim.world, template, created)}

    async def open_connection(self, request: Request) -> dict[str, Any]:
        body = await json_body(request)
        app_key = self._credentials(body.get("clientId"), body.get("clientSecret"))
        if app_key is None:
            raise ApiError(401, "authFailed", "鉴权失败")
        scheme = "wss" if request.url.scheme in ("https", "wss") else "ws"
        return {
            "endpoint": f"{scheme}://{request.url.netloc}/connect",
            "ticket": self.sim.stream.open_ticket(app_key),
        }

    async def gettoken(self, request: Request) -> dict[str, Any]:
        key, secret = request.query_params.get("appkey"), request.query_params.get("appsecret")
        if not key or not secret:
            raise OapiError(40035, "缺少参数 corpid or appkey")
        app_key = self._credentials(key, secret)
        if app_key is None:
            raise OapiError(40096, "不合法的appKey或appSecret")
        token = self.sim.tokens.issue(app_key)
        ttl = self.sim.faults.limits.token_ttl
        return {"errcode": 0, "errmsg": "ok", "access_token": token.value, "expires_in": ttl}

    def oapi_auth(self, request: Request, endpoint: Endpoint, *, wrapped: bool = False) -> str:
        """The app key behind ``?access_token=``; topapi paths (``wrapped``) answer a bad
        token as errcode 88 with sub_code 40014 (contract §1)."""
        token = request.query_params.get("access_token")
        if not token:
            raise OapiError(41001, "缺少参数access_token", "41001" if wrapped else None)
        app_key = self.sim.tokens.check(token)
        if app_key is None:
            raise OapiError(40014, "不合法的access_token", "40014" if wrapped else None)
        self._limits(app_key, endpoint)
        return app_key

    async def failed_list(self, request: Request) -> dict[str, Any]:
        app_key = self.oapi_auth(request, ep.FAILED_LIST)
        items, more = self.sim.callbacks.take_failed(app_key)
        return {"errcode": 0, "errmsg": "ok", "has_more": more, "failed_list": items}

    async def not_found(self, request: Request) -> dict[str, Any]:
        path = request.url.path
        if path.startswith("/v1.0/"):
            raise ApiError(404, "InvalidAction.NotFound", "Specified api is not found")
        if path.startswith("/topapi/"):
            api = "dingtalk.oapi" + path.removeprefix("/topapi").replace("/", ".")
            raise OapiError(22, f"Invalid method[submsg=不合法ApiName，ApiName = {api}]")
        raise OapiError(404, "请求的URI地址不存在")

    def routes(self) -> list[BaseRoute]:
        """A route per served call, named by DingTalk's name for it; every one needs a
        handler here (a declared call without one fails building the app)."""
        handlers: dict[Endpoint, Handler] = {
            ep.TOKEN: self.access_token,
            ep.CREATE: self.create,
            ep.GET: self.get,
            ep.LIST: self.list_ids,
            ep.TERMINATE: self.terminate,
            ep.COMMENT: self.comment,
            ep.SCHEMA: self.schema,
            ep.STREAM_OPEN: self.open_connection,
            GETTOKEN: self.gettoken,
            ep.FAILED_LIST: self.failed_list,
            **ContactApi(self).handlers(),
            **StorageApi(self).handlers(),
        }
        missing = [e.api for e in SERVED if e not in handlers]
        if missing:
            raise LookupError(f"the simulator has no handler for {', '.join(missing)}")
        return [
            Route(e.path, self.wrap(handlers[e]), methods=[e.method], name=e.api) for e in SERVED
        ]


class FaultLayer:
    """Counts calls and injects latency, resets, 5xx, 429 and lost responses."""

    def __init__(self, inner: ASGIApp, sim: Simulator) -> None:
        self.inner = inner
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = served(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if call is None:
            await self.inner(scope, receive, send)
            return
        self.sim.calls[call.api] += 1
        faults = self.sim.faults
        if faults.applies_to(call.api) and (delay := faults.latency()) > 0:
            await asyncio.sleep(delay)
        fault = faults.request_fault(call.api)
        if fault == "reset":
            await _drop(send)
        if fault is not None:
            await self._fault_response(call, fault, scope, receive, send)
            return
        if faults.applies_to(call.api) and faults.lose_response(call.api):
            await self._lose_response(scope, receive, send)
            return
        await self.inner(scope, receive, send)

    async def _fault_response(
        self, call: Endpoint, fault: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        rid = self.sim.request_id()
        if call.host is Host.OAPI:
            response = dingtalk_json({"errcode": -1, "errmsg": "系统繁忙", "request_id": rid})
        elif fault == "429":
            error = ApiError(429, "system.busy", "系统繁忙，请稍后重试")
            response = dingtalk_json(api_error_body(error, rid), 429, rid)
        else:
            error = ApiError(500, "systemError", "系统错误")
            response = dingtalk_json(api_error_body(error, rid), 500, rid)
        await response(scope, receive, send)

    async def _lose_response(self, scope: Scope, receive: Receive, send: Send) -> None:
        messages: list[Message] = []

        async def keep(message: Message) -> None:
            messages.append(message)

        await self.inner(scope, receive, keep)
        if messages and messages[0].get("status") == 200:
            await _drop(send)
        for message in messages:
            await send(message)


async def _drop(send: Send) -> None:
    """Start a response, then fail: the client sees a broken connection, not a status."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        }
    )
    raise ConnectionDropped("connection reset by the simulator")


def build_app(sim: Simulator) -> ASGIApp:
    api = Api(sim)
    routes: list[BaseRoute] = [
        *api.routes(),
        WebSocketRoute("/connect", sim.stream.endpoint),
        *admin_routes(sim),
        *directory_routes(sim),
        Route("/{path:path}", api.wrap(api.not_found), methods=["GET", "POST", "PUT", "DELETE"]),
    ]
    return FaultLayer(Starlette(routes=routes), sim)
