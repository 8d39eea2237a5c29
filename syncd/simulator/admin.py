"""The admin API (``/_sim/...``) and the routes of the web pages (:mod:`page`)."""

from __future__ import annotations

import base64
import html
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from syncd.simulator import page
from syncd.simulator.callbacks import CallbackCheckError
from syncd.simulator.progress import DecisionError
from syncd.simulator.responses import ApiError
from syncd.simulator.state import get_result
from syncd.simulator.storage_api import file_response

if TYPE_CHECKING:
    from syncd.simulator.core import Simulator


async def _payload(request: Request) -> tuple[dict[str, Any], bool]:
    """The request's fields and whether they came from an HTML form."""
    content_type = request.headers.get("content-type", "")
    raw = await request.body()
    if "application/x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(raw.decode("utf-8"))), True
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = None
    return (data if isinstance(data, dict) else {}), False


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _back(data: dict[str, Any]) -> str:
    """Where a page's form returns to: one of the simulator's pages, else the index."""
    back = str(data.get("back") or "")
    return back if back.startswith("/_sim/") and "//" not in back else "/_sim/"


class Admin:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def index(self, request: Request) -> Response:
        return HTMLResponse(page.index(self.sim))

    async def view_instance(self, request: Request) -> Response:
        """The page a task's ``pcUrl``/``mobileUrl`` opens (``?taskId=`` marks the task)."""
        try:
            instance = self.sim.instance(request.path_params["instance_id"])
        except DecisionError as exc:
            return HTMLResponse(f"<p>{html.escape(str(exc))}</p>", status_code=404)
        task_id = request.query_params.get("taskId")
        return HTMLResponse(page.instance_page(self.sim, instance, task_id))

    async def list_instances(self, request: Request) -> Response:
        q = request.query_params
        found = self.sim.instances(q.get("processCode"), q.get("originator"))
        if status := q.get("status"):
            found = [i for i in found if i.status == status]
        return JSONResponse({"instances": [i.summary() for i in found]})

    async def show_instance(self, request: Request) -> Response:
        try:
            instance = self.sim.instance(request.path_params["instance_id"])
        except DecisionError as exc:
            return _error(404, str(exc))
        detail = get_result(instance, str(request.base_url))
        return JSONResponse(instance.summary() | {"detail": detail})

    async def decide(self, request: Request) -> Response:
        instance_id, action = request.path_params["instance_id"], request.path_params["action"]
        data, from_form = await _payload(request)
        decide = {
            "approve": self.sim.approve,
            "refuse": self.sim.refuse,
            "terminate": self.sim.terminate,
        }.get(action)
        if decide is None:
            return _error(404, f"unknown action {action}")
        try:
            decide(instance_id, data.get("userId") or None, str(data.get("remark") or ""))
        except DecisionError as exc:
            return _error(409 if "no instance" not in str(exc) else 404, str(exc))
        if from_form:
            return RedirectResponse(_back(data), status_code=303)
        return JSONResponse(self.sim.instance(instance_id).summary())

    async def start(self, request: Request) -> Response:
        """Start an instance as a person in DingTalk itself (contract §20): JSON
        ``{processCode, userId, deptId?, formComponentValues, files?}`` (``files``: by
        DDAttachment label, ``[{name, content}]`` with base64 content), or the page's form
        (``v:<label>`` fields)."""
        data, from_form = await _payload(request)
        if from_form:
            values = [
                {"name": k[2:], "value": str(v)}
                for k, v in data.items()
                if k.startswith("v:") and str(v).strip()
            ]
            data = {**data, "formComponentValues": values}
        try:
            files = {
                label: [(str(f["name"]), base64.b64decode(str(f["content"]))) for f in items]
                for label, items in (data.get("files") or {}).items()
            }
            dept = data.get("deptId")
            instance = self.sim.start(
                str(data.get("processCode") or ""),
                str(data.get("userId") or ""),
                list(data.get("formComponentValues") or []),
                dept_id=int(dept) if dept not in (None, "") else None,
                files=files,
            )
        except ApiError as exc:
            return _error(400, f"{exc.code}: {exc.message}")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return _error(400, f"bad request: {exc}")
        if from_form:
            return RedirectResponse(f"/_sim/instances/{instance.instance_id}/view", status_code=303)
        return JSONResponse(instance.summary(), status_code=201)

    async def comment(self, request: Request) -> Response:
        """A person (an approver, say) comments, with files: JSON ``{userId, text,
        files?: [{name, content}]}`` (base64 content), or the page's form."""
        instance_id = request.path_params["instance_id"]
        data, from_form = await _payload(request)
        try:
            files = [
                (str(f["name"]), base64.b64decode(str(f["content"])))
                for f in data.get("files") or []
            ]
            self.sim.comment(instance_id, str(data.get("userId") or ""), str(data["text"]), files)
        except DecisionError as exc:
            return _error(404, str(exc))
        except ApiError as exc:
            return _error(400, f"{exc.code}: {exc.message}")
        except (KeyError, TypeError, ValueError) as exc:
            return _error(400, f"bad request: {exc}")
        if from_form:
            return RedirectResponse(_back(data), status_code=303)
        return JSONResponse(get_result(self.sim.instance(instance_id), str(request.base_url)))

    async def file(self, request: Request) -> Response:
        """A stored file's bytes; ``?userId=``: as that person, who needs to be its uploader
        or granted it (``authDownload``); without: as the tester."""
        file_id = request.path_params["file_id"]
        stored = self.sim.storage.files.get(file_id)
        if stored is None:
            return _error(404, f"文件不存在：{file_id}")
        user_id = request.query_params.get("userId")
        if user_id and not self.sim.storage.may_download(user_id, file_id):
            return _error(403, f"{user_id} has no grant on file {file_id} (authDownload)")
        return file_response(stored.name, stored.data)

    async def spaces(self, request: Request) -> Response:
        return JSONResponse(self.sim.storage.spaces())

    async def calls(self, request: Request) -> Response:
        return JSONResponse({"calls": dict(self.sim.calls)})

    async def events(self, request: Request) -> Response:
        return JSONResponse(
            {
                "events": [
                    {"eventId": e.event_id, "eventType": e.event_type, "data": e.data}
                    for e in self.sim.events
                ],
                "pushed": self.sim.events_pushed,
                "acknowledged": self.sim.events_acknowledged,
                "failed": self.sim.events_failed,
            }
        )

    async def faults(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(self.sim.faults.snapshot())
        data, _ = await _payload(request)
        try:
            return JSONResponse(self.sim.faults.update(**data))
        except (ValueError, ValidationError) as exc:
            return _error(400, str(exc))

    async def reset_faults(self, request: Request) -> Response:
        self.sim.faults.reset()
        return JSONResponse(self.sim.faults.snapshot())

    async def callback(self, request: Request) -> Response:
        app_key = request.path_params["app_key"]
        if self.sim.app_for(app_key) is None:
            return _error(404, f"unknown app {app_key}")
        data, _ = await _payload(request)
        url = data.get("url")
        if url is not None and not isinstance(url, str):
            return _error(400, "url must be a string, or null to stop HTTP push")
        try:
            await self.sim.callbacks.register(app_key, url or None)
        except CallbackCheckError as exc:
            body = {"error": f"callback URL not registered: {exc}", "reason": exc.reason}
            return JSONResponse(body, status_code=400)
        return JSONResponse({"appKey": app_key, "url": self.sim.callbacks.url(app_key)})

    async def stream_action(self, request: Request) -> Response:
        action = request.path_params["action"]
        data, _ = await _payload(request)
        app_key = data.get("appKey")
        if action == "disconnect":
            count = await self.sim.stream.disconnect(app_key)
        elif action == "drop":
            count = await self.sim.stream.drop(app_key)
        else:
            return _error(404, f"unknown action {action}")
        return JSONResponse({"connections": count})

    async def stream_state(self, request: Request) -> Response:
        gateway = self.sim.stream
        return JSONResponse(
            {
                "connections": [
                    {"connectionId": c.connection_id, "appKey": c.app.app_key}
                    for c in gateway.live()
                ],
                "inflight": len(gateway.inflight),
                "backlog": {k: len(v) for k, v in gateway.backlog.items()},
            }
        )

    async def expire_tokens(self, request: Request) -> Response:
        self.sim.tokens.expire_all()
        return JSONResponse({"expired": True})

    async def world(self, request: Request) -> Response:
        return JSONResponse(self.sim.world.dump())


def admin_routes(sim: Simulator) -> list[BaseRoute]:
    a = Admin(sim)
    return [
        Route("/_sim/", a.index, methods=["GET"]),
        Route("/_sim/instances", a.list_instances, methods=["GET"]),
        Route("/_sim/instances/{instance_id}", a.show_instance, methods=["GET"]),
        Route("/_sim/instances/{instance_id}/view", a.view_instance, methods=["GET"]),
        Route("/_sim/instances", a.start, methods=["POST"]),
        Route("/_sim/instances/{instance_id}/comment", a.comment, methods=["POST"]),
        Route("/_sim/instances/{instance_id}/{action}", a.decide, methods=["POST"]),
        Route("/_sim/files/{file_id}", a.file, methods=["GET"]),
        Route("/_sim/spaces", a.spaces, methods=["GET"]),
        Route("/_sim/calls", a.calls, methods=["GET"]),
        Route("/_sim/events", a.events, methods=["GET"]),
        Route("/_sim/faults", a.faults, methods=["GET", "POST", "PATCH"]),
        Route("/_sim/faults/reset", a.reset_faults, methods=["POST"]),
        Route("/_sim/apps/{app_key}/callback", a.callback, methods=["PUT", "POST"]),
        Route("/_sim/stream", a.stream_state, methods=["GET"]),
        Route("/_sim/stream/{action}", a.stream_action, methods=["POST"]),
        Route("/_sim/tokens/expire", a.expire_tokens, methods=["POST"]),
        Route("/_sim/world", a.world, methods=["GET"]),
    ]
