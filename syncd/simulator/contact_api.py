"""The contact APIs on oapi.dingtalk.com (contract §15) and the admin routes that change
the organisation (``/_sim/directory/...``), both over :class:`Directory`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from syncd.dingtalk import endpoints as ep
from syncd.dingtalk.endpoints import Endpoint
from syncd.simulator.directory import DirectoryError
from syncd.simulator.responses import OapiError
from syncd.simulator.world import Department, User

if TYPE_CHECKING:
    from syncd.simulator.app import Api, Handler
    from syncd.simulator.core import Simulator


async def _fields(request: Request) -> dict[str, Any]:
    """The body's fields: JSON, or form-encoded as the docs' samples send (§15.1)."""
    raw = await request.body()
    if "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
        return dict(parse_qsl(raw.decode("utf-8")))
    try:
        body = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise OapiError(400002, "无效的参数: body is not JSON") from exc
    if not isinstance(body, dict):
        raise OapiError(400002, "无效的参数: body is not a JSON object")
    return body


def _int(body: dict[str, Any], key: str, default: int | None = None) -> int:
    value = body.get(key, default)
    if value is None:
        raise OapiError(400002, f"缺少参数 {key}")
    try:
        if isinstance(value, bool):
            raise ValueError(key)
        return int(value)
    except (TypeError, ValueError) as exc:
        raise OapiError(40035, f"不合法的参数 {key}") from exc


def _str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None or value == "":
        raise OapiError(400002, f"缺少参数 {key}")
    return str(value)


def _ok(result: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", "result": result}


class ContactApi:
    """One handler per contact call; the token is checked as on every topapi path."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.directory = api.sim.directory

    async def _body(self, request: Request, endpoint: Endpoint) -> dict[str, Any]:
        self.api.oapi_auth(request, endpoint, wrapped=True)
        return await _fields(request)

    async def listsub(self, request: Request) -> dict[str, Any]:
        body = await self._body(request, ep.DEPT_LISTSUB)
        return _ok(self.directory.subdepartments(_int(body, "dept_id", 1)))

    async def dept_get(self, request: Request) -> dict[str, Any]:
        body = await self._body(request, ep.DEPT_GET)
        return _ok(self.directory.department(_int(body, "dept_id")))

    async def user_list(self, request: Request) -> dict[str, Any]:
        body = await self._body(request, ep.USER_LIST)
        dept_id, cursor, size = (_int(body, k) for k in ("dept_id", "cursor", "size"))
        return _ok(self.directory.member_page(dept_id, cursor, size))

    async def user_listid(self, request: Request) -> dict[str, Any]:
        body = await self._body(request, ep.USER_LISTID)
        members = self.directory.members(_int(body, "dept_id"))
        return _ok({"userid_list": [u.user_id for u in members]})

    async def user_get(self, request: Request) -> dict[str, Any]:
        body = await self._body(request, ep.USER_GET)
        user_id = _str(body, "userid")
        if len(user_id) > 64:
            raise OapiError(33012, "无效的USERID")
        return _ok(self.directory.user_detail(user_id))

    async def by_mobile(self, request: Request) -> dict[str, Any]:
        body = await self._body(request, ep.USER_BY_MOBILE)
        return _ok({"userid": self.directory.by_mobile(_str(body, "mobile"))})

    def handlers(self) -> dict[Endpoint, Handler]:
        return {
            ep.DEPT_LISTSUB: self.listsub,
            ep.DEPT_GET: self.dept_get,
            ep.USER_LIST: self.user_list,
            ep.USER_LISTID: self.user_listid,
            ep.USER_GET: self.user_get,
            ep.USER_BY_MOBILE: self.by_mobile,
        }


class DirectoryAdmin:
    """``/_sim/directory/...``: add, change and remove people and departments."""

    def __init__(self, sim: Simulator) -> None:
        self.directory = sim.directory
        self.world = sim.world

    async def _run(self, request: Request, change: Any) -> Response:
        try:
            data = await request.json() if await request.body() else {}
            if not isinstance(data, dict):
                raise DirectoryError("the body must be a JSON object")
            done = change(data)
        except (DirectoryError, ValidationError, ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(done.model_dump(mode="json") if done is not None else {"ok": True})

    async def show(self, request: Request) -> Response:
        dump = self.world.dump()
        return JSONResponse({"departments": dump["departments"], "users": dump["users"]})

    async def add_user(self, request: Request) -> Response:
        return await self._run(request, lambda d: self.directory.add_user(User.model_validate(d)))

    async def change_user(self, request: Request) -> Response:
        user_id = request.path_params["user_id"]
        if request.method == "DELETE":
            return await self._run(request, lambda d: self.directory.remove_user(user_id))
        return await self._run(request, lambda d: self.directory.modify_user(user_id, **d))

    async def add_department(self, request: Request) -> Response:
        return await self._run(
            request, lambda d: self.directory.add_department(Department.model_validate(d))
        )

    async def change_department(self, request: Request) -> Response:
        dept_id = int(request.path_params["dept_id"])
        if request.method == "DELETE":
            return await self._run(request, lambda d: self.directory.remove_department(dept_id))
        return await self._run(
            request,
            lambda d: self.directory.modify_department(
                dept_id, name=d.get("name"), parent_id=d.get("parent_id")
            ),
        )


def directory_routes(sim: Simulator) -> list[BaseRoute]:
    a = DirectoryAdmin(sim)
    return [
        Route("/_sim/directory", a.show, methods=["GET"]),
        Route("/_sim/directory/users", a.add_user, methods=["POST"]),
        Route("/_sim/directory/users/{user_id}", a.change_user, methods=["PATCH", "DELETE"]),
        Route("/_sim/directory/departments", a.add_department, methods=["POST"]),
        Route(
            "/_sim/directory/departments/{dept_id:int}",
            a.change_department,
            methods=["PATCH", "DELETE"],
        ),
    ]
