"""Every DingTalk call syncd makes, declared once, and the closed set of ways one ends.

The client sends a call by its declaration (``syncd.dingtalk.calls.send``), so its host,
method and path are written here alone; the request metrics take ``name`` as their
``endpoint`` label and the simulator routes, counts and injects faults by ``api``. To add
a call: declare it here and add it to :data:`ENDPOINTS`, send it with ``send``, and give
the simulator a handler for it (``syncd.simulator.app.Api.routes``); the tests over this
module then hold the three together. Nothing else lists endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, get_args


class Host(StrEnum):
    """The DingTalk host that serves a call."""

    #: ``api.dingtalk.com``: the token in the ``x-acs-dingtalk-access-token`` header,
    #: errors as an HTTP status with ``{code, message}``.
    API = "api"
    #: ``oapi.dingtalk.com``, the old API: the token in ``?access_token=``, errors as
    #: HTTP 200 with ``errcode``.
    OAPI = "oapi"
    #: The file store behind DingTalk's storage (an Alibaba Cloud OSS bucket): its URLs
    #: come signed from an upload ticket or a download link (contract §17.4, §17.7), so the
    #: declared path is only the simulator's pattern; never send a DingTalk token there.
    OSS = "oss"


@dataclass(frozen=True)
class Endpoint:
    """One DingTalk call.

    ``name`` is syncd's name for it: the ``endpoint`` label of the request metrics, the
    pacing bucket and the ``endpoint`` log field (a small closed set: never change one,
    dashboards and alert rules use them). ``api`` is DingTalk's name for it, by which the
    simulator routes, counts (``/_sim/calls``) and injects faults. ``metered`` calls count
    against the tenant's monthly call quota (contract §8).
    """

    name: str
    api: str
    host: Host
    method: Literal["GET", "POST", "PUT"]
    path: str
    metered: bool = True


TOKEN = Endpoint(
    "token", "oauth2.accessToken", Host.API, "POST", "/v1.0/oauth2/accessToken", metered=False
)
CREATE = Endpoint("create", "workflow.create", Host.API, "POST", "/v1.0/workflow/processInstances")
GET = Endpoint("get", "workflow.get", Host.API, "GET", "/v1.0/workflow/processInstances")
LIST = Endpoint(
    "list", "workflow.listIds", Host.API, "POST", "/v1.0/workflow/processes/instanceIds/query"
)
TERMINATE = Endpoint(
    "terminate", "workflow.terminate", Host.API, "POST", "/v1.0/workflow/processInstances/terminate"
)
COMMENT = Endpoint(
    "comment", "workflow.comment", Host.API, "POST", "/v1.0/workflow/processInstances/comments"
)
SCHEMA = Endpoint(
    "schema", "workflow.schema", Host.API, "GET", "/v1.0/workflow/forms/schemas/processCodes"
)
STREAM_OPEN = Endpoint(
    "stream_open", "gateway.open", Host.API, "POST", "/v1.0/gateway/connections/open", metered=False
)
FAILED_LIST = Endpoint(
    "failed_list", "oapi.failedList", Host.OAPI, "GET", "/call_back/get_call_back_failed_result"
)

# The contact APIs (contract §15): old API only, exempt from the monthly quota (§15.1).
DEPT_LISTSUB = Endpoint(
    "dept_listsub",
    "oapi.department.listsub",
    Host.OAPI,
    "POST",
    "/topapi/v2/department/listsub",
    metered=False,
)
DEPT_GET = Endpoint(
    "dept_get", "oapi.department.get", Host.OAPI, "POST", "/topapi/v2/department/get", metered=False
)
USER_LIST = Endpoint(
    "user_list", "oapi.user.list", Host.OAPI, "POST", "/topapi/v2/user/list", metered=False
)
USER_LISTID = Endpoint(
    "user_listid", "oapi.user.listid", Host.OAPI, "POST", "/topapi/user/listid", metered=False
)
USER_GET = Endpoint(
    "user_get", "oapi.user.get", Host.OAPI, "POST", "/topapi/v2/user/get", metered=False
)
USER_BY_MOBILE = Endpoint(
    "user_by_mobile",
    "oapi.user.getbymobile",
    Host.OAPI,
    "POST",
    "/topapi/v2/user/getbymobile",
    metered=False,
)

# Attachments (contract §17): the approval space, the storage upload chain, grants and
# download links. The PUT and the download GET go to the signed OSS URLs (host OSS).
SPACE_INFO = Endpoint(
    "space_info",
    "workflow.spaceInfo",
    Host.API,
    "POST",
    "/v1.0/workflow/processInstances/spaces/infos/query",
)
UPLOAD_INFO = Endpoint(
    "upload_info",
    "storage.uploadInfo",
    Host.API,
    "POST",
    "/v1.0/storage/spaces/{spaceId}/files/uploadInfos/query",
)
UPLOAD = Endpoint("upload", "oss.put", Host.OSS, "PUT", "/oss/upload/{uploadKey}", metered=False)
COMMIT = Endpoint(
    "commit", "storage.commit", Host.API, "POST", "/v1.0/storage/spaces/{spaceId}/files/commit"
)
GRANT_DOWNLOAD = Endpoint(
    "grant_download",
    "workflow.authDownload",
    Host.API,
    "POST",
    "/v1.0/workflow/processInstances/spaces/files/authDownload",
)
DOWNLOAD_URL = Endpoint(
    "download_url",
    "workflow.downloadUrl",
    Host.API,
    "POST",
    "/v1.0/workflow/processInstances/spaces/files/urls/download",
)
DOWNLOAD = Endpoint("download", "oss.get", Host.OSS, "GET", "/oss/download/{ticket}", metered=False)

#: Every call syncd makes.
ENDPOINTS: tuple[Endpoint, ...] = (
    TOKEN,
    CREATE,
    GET,
    LIST,
    TERMINATE,
    COMMENT,
    SCHEMA,
    STREAM_OPEN,
    FAILED_LIST,
    DEPT_LISTSUB,
    DEPT_GET,
    USER_LIST,
    USER_LISTID,
    USER_GET,
    USER_BY_MOBILE,
    SPACE_INFO,
    UPLOAD_INFO,
    UPLOAD,
    COMMIT,
    GRANT_DOWNLOAD,
    DOWNLOAD_URL,
    DOWNLOAD,
)

#: How one HTTP exchange with DingTalk ended: an answer, classified by syncd's error
#: mapping (``ok`` … ``error``), or none at all (``timeout``, ``unreachable``).
Outcome = Literal[
    "ok",
    "throttled",
    "quota_exhausted",
    "auth_error",
    "rejected",
    "transient",
    "error",
    "timeout",
    "unreachable",
]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
