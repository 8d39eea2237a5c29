"""The attachment calls over :class:`~syncd.simulator.storage.Storage` (contract §17):
the approval space, upload tickets and commits on api.dingtalk.com, the signed PUT and
the download GET on the simulator's stand-in for the file store (``/oss/...``)."""

from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import Response

from syncd.dingtalk import endpoints as ep
from syncd.dingtalk.endpoints import Endpoint
from syncd.simulator.files import OssError
from syncd.simulator.responses import ApiError, json_body

if TYPE_CHECKING:
    from syncd.simulator.app import Api, Handler


def oss_error(error: OssError, request_id: str) -> Response:
    """An OSS error answer: XML with ``Code``, ``Message`` and ``RequestId``."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
        f"<Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
        f"<RequestId>{escape(request_id)}</RequestId><HostId>sim-oss</HostId></Error>"
    )
    headers = {"x-oss-request-id": request_id, "Server": "AliyunOSS"}
    return Response(body, error.status, headers=headers, media_type="application/xml")


def file_response(name: str, data: bytes, request_id: str = "") -> Response:
    """A file's bytes, typed by its extension, named for saving."""
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    headers = {
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        "x-oss-request-id": request_id,
    }
    return Response(data, 200, headers=headers, media_type=kind)


class StorageApi:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.sim = api.sim
        self.storage = api.sim.storage

    async def space_info(self, request: Request) -> dict[str, Any]:
        app = self.sim.app_for(self.api.auth(request, ep.SPACE_INFO))
        return self.storage.space_info(
            await json_body(request), app.agent_id if app is not None else None
        )

    async def upload_info(self, request: Request) -> dict[str, Any]:
        self.api.auth(request, ep.UPLOAD_INFO)
        return self.storage.upload_info(
            request.path_params["spaceId"],
            request.query_params.get("unionId"),
            await json_body(request),
            str(request.base_url),
        )

    async def commit(self, request: Request) -> dict[str, Any]:
        self.api.auth(request, ep.COMMIT)
        return self.storage.commit(
            request.path_params["spaceId"],
            request.query_params.get("unionId"),
            await json_body(request),
        )

    async def grant(self, request: Request) -> dict[str, Any]:
        self.api.auth(request, ep.GRANT_DOWNLOAD)
        return self.storage.grant(await json_body(request))

    async def download_url(self, request: Request) -> dict[str, Any]:
        """A download link for a file of an instance (§17.7): the file must be in the
        instance's form, or in its comments with ``withCommentAttatchment``."""
        self.api.auth(request, ep.DOWNLOAD_URL)
        body = await json_body(request)
        instance_id, file_id = body.get("processInstanceId"), body.get("fileId")
        if not isinstance(instance_id, str) or not instance_id:
            raise ApiError(400, "invalidProcessInstanceId", "processInstanceId不能为空")
        instance = self.sim.workflow.instances.get(instance_id)
        if instance is None:
            raise ApiError(400, "processInstNotExist", "审批实例不存在")
        if not isinstance(file_id, str) or not file_id:
            raise ApiError(400, "invalidFileId", "fileId不能为空")
        files = list(instance.files)
        if body.get("withCommentAttatchment") is True:
            files += self.sim.workflow.comment_files(instance)
        if file_id not in files:
            raise ApiError(400, "invalidFileId", f"文件不属于该审批实例：{file_id}")
        return self.storage.link(file_id, str(request.base_url))

    async def put(self, request: Request) -> Response:
        rid = self.sim.request_id()
        try:
            self.storage.put(
                request.path_params["uploadKey"], dict(request.headers), await request.body()
            )
        except OssError as exc:
            return oss_error(exc, rid)
        return Response(b"", 200, headers={"x-oss-request-id": rid, "ETag": f'"{rid}"'})

    async def download(self, request: Request) -> Response:
        rid = self.sim.request_id()
        try:
            stored = self.storage.fetch(request.path_params["ticket"])
        except OssError as exc:
            return oss_error(exc, rid)
        return file_response(stored.name, stored.data, rid)

    def handlers(self) -> dict[Endpoint, Handler]:
        return {
            ep.SPACE_INFO: self.space_info,
            ep.UPLOAD_INFO: self.upload_info,
            ep.UPLOAD: self.put,
            ep.COMMIT: self.commit,
            ep.GRANT_DOWNLOAD: self.grant,
            ep.DOWNLOAD_URL: self.download_url,
            ep.DOWNLOAD: self.download,
        }
