"""DingTalk's official Python SDKs work unchanged against the running simulator."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import dingtalk_stream
import httpx
import pytest
from alibabacloud_dingtalk.oauth2_1_0 import models as oauth_models
from alibabacloud_dingtalk.oauth2_1_0.client import Client as OAuthClient
from alibabacloud_dingtalk.storage_1_0 import models as st
from alibabacloud_dingtalk.storage_1_0.client import Client as StorageClient
from alibabacloud_dingtalk.workflow_1_0 import models as wf
from alibabacloud_dingtalk.workflow_1_0.client import Client as WorkflowClient
from alibabacloud_tea_openapi import models as openapi_models
from alibabacloud_tea_util import models as util_models
from Tea.exceptions import TeaException

from syncd.simulator import RunningServer, Simulator, World, serve
from syncd.simulator.directory import union_id
from syncd.simulator.world import Department
from syncd.testing import FakeClock

APP_KEY, APP_SECRET = "dingsimappkey0001", "sim-app-secret-0001"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def server(clock: FakeClock) -> AsyncIterator[RunningServer]:
    async with serve(Simulator(World.default(), clock=clock)) as running:
        yield running


def _config(server: RunningServer) -> openapi_models.Config:
    return openapi_models.Config(
        protocol="http", region_id="central", endpoint=f"{server.host}:{server.port}"
    )


def _token(server: RunningServer) -> str:
    client = OAuthClient(_config(server))
    request = oauth_models.GetAccessTokenRequest(app_key=APP_KEY, app_secret=APP_SECRET)
    response = client.get_access_token(request)
    assert response.body.expire_in == 7200
    return str(response.body.access_token)


def _create(server: RunningServer, token: str) -> str:
    client = WorkflowClient(_config(server))
    headers = wf.StartProcessInstanceHeaders(x_acs_dingtalk_access_token=token)
    values = [
        wf.StartProcessInstanceRequestFormComponentValues(name="金额（元）", value="5000"),
        wf.StartProcessInstanceRequestFormComponentValues(name="费用类型", value="差旅"),
        wf.StartProcessInstanceRequestFormComponentValues(name="发生日期", value="2026-01-02"),
    ]
    request = wf.StartProcessInstanceRequest(
        process_code="PROC-SIM-EXPENSE",
        originator_user_id="u1",
        dept_id=-1,
        form_component_values=values,
    )
    response = client.start_process_instance_with_options(
        request, headers, util_models.RuntimeOptions()
    )
    return str(response.body.instance_id)


def _get(server: RunningServer, token: str, instance_id: str) -> Any:
    client = WorkflowClient(_config(server))
    headers = wf.GetProcessInstanceHeaders(x_acs_dingtalk_access_token=token)
    request = wf.GetProcessInstanceRequest(process_instance_id=instance_id)
    return client.get_process_instance_with_options(
        request, headers, util_models.RuntimeOptions()
    ).body


def _list(server: RunningServer, token: str, start_ms: int) -> Any:
    client = WorkflowClient(_config(server))
    headers = wf.ListProcessInstanceIdsHeaders(x_acs_dingtalk_access_token=token)
    request = wf.ListProcessInstanceIdsRequest(
        process_code="PROC-SIM-EXPENSE", start_time=start_ms, next_token=0, max_results=20
    )
    return client.list_process_instance_ids_with_options(
        request, headers, util_models.RuntimeOptions()
    ).body


def _terminate(server: RunningServer, token: str, instance_id: str) -> Any:
    client = WorkflowClient(_config(server))
    headers = wf.TerminateProcessInstanceHeaders(x_acs_dingtalk_access_token=token)
    request = wf.TerminateProcessInstanceRequest(
        process_instance_id=instance_id, is_system=False, operating_user_id="u1", remark="sdk"
    )
    return client.terminate_process_instance_with_options(
        request, headers, util_models.RuntimeOptions()
    ).body


async def test_workflow_and_oauth_sdks(server, clock) -> None:
    token = await asyncio.to_thread(_token, server)
    instance_id = await asyncio.to_thread(_create, server, token)
    body = await asyncio.to_thread(_get, server, token, instance_id)
    assert body.success == "true"
    assert body.result.status == "RUNNING"
    assert body.result.originator_user_id == "u1"
    assert {t.user_id for t in body.result.tasks} == {"manager1", "manager2"}
    async with httpx.AsyncClient() as browser:  # each task's links open the instance's page
        for task in body.result.tasks:
            for link in (task.pc_url, task.mobile_url):
                assert link.startswith(f"{server.base_url}/_sim/instances/{instance_id}/view?")
                page = await browser.get(link)
                assert (
                    page.status_code == 200
                    and f"<option value='{task.user_id}' selected" in page.text
                )
    start_ms = int((clock.now() - timedelta(hours=1)).timestamp() * 1000)
    listed = await asyncio.to_thread(_list, server, token, start_ms)
    assert listed.success is True and listed.result.list == [instance_id]
    with pytest.raises(TeaException) as too_early:
        await asyncio.to_thread(_terminate, server, token, instance_id)
    assert too_early.value.code == "aflowProcessInstStatusException"
    clock.advance(16)
    terminated = await asyncio.to_thread(_terminate, server, token, instance_id)
    assert terminated.success is True and terminated.result is True
    body = await asyncio.to_thread(_get, server, token, instance_id)
    assert body.result.status == "TERMINATED"


async def test_sdk_error_codes(server) -> None:
    with pytest.raises(TeaException) as bad:
        await asyncio.to_thread(_get, server, "garbage", "x")
    assert bad.value.code == "InvalidAuthentication"
    token = await asyncio.to_thread(_token, server)
    with pytest.raises(TeaException) as missing:
        await asyncio.to_thread(_get, server, token, "nope")
    assert missing.value.code == "processInstanceNotExist"


class _Recorder(dingtalk_stream.EventHandler):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def process(self, event: dingtalk_stream.EventMessage) -> tuple[int, str]:
        self.events.append((event.headers.event_type, event.data))
        return dingtalk_stream.AckMessage.STATUS_OK, "OK"


def _run_stream_client(client: Any, stop: threading.Event) -> None:
    """Run the SDK's own loop in its own thread (it blocks on requests) until told to stop."""

    async def main() -> None:
        task = asyncio.create_task(client.start())
        await asyncio.to_thread(stop.wait)
        while not task.done():  # the SDK's loop swallows a cancellation once, then sleeps
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)

    asyncio.run(main())


async def test_stream_sdk_receives_and_acks(server, monkeypatch) -> None:
    sim = server.sim
    monkeypatch.setattr(
        dingtalk_stream.DingTalkStreamClient,
        "OPEN_CONNECTION_API",
        f"{server.base_url}/v1.0/gateway/connections/open",
    )
    client = dingtalk_stream.DingTalkStreamClient(dingtalk_stream.Credential(APP_KEY, APP_SECRET))
    recorder = _Recorder()
    client.register_all_event_handler(recorder)
    stop = threading.Event()
    thread = threading.Thread(target=_run_stream_client, args=(client, stop), daemon=True)
    thread.start()
    try:
        async with asyncio.timeout(10):
            await sim.wait_for(lambda: bool(sim.stream.live()))
        token = await asyncio.to_thread(_token, server)
        instance_id = await asyncio.to_thread(_create, server, token)
        await sim.advance(0)
        async with asyncio.timeout(10):
            await sim.wait_for(lambda: len(sim.events_acknowledged) == 3)
        kinds = [(t, d["type"]) for t, d in recorder.events]
        assert kinds[0] == ("bpms_instance_change", "start")
        assert recorder.events[0][1]["processInstanceId"] == instance_id
        url = recorder.events[0][1]["url"]  # the aflow mobile deep link of real events (A6)
        assert url.startswith("https://aflow.dingtalk.com/dingtalk/mobile/homepage.htm?")
        assert f"&procInstId={instance_id}&" in url and url.endswith("#approval")
        await sim.advance(30)  # acknowledged events are not redelivered
        assert len([p for p in sim.events_pushed if p["transport"] == "stream"]) == 3
        # contact-change events (contract §16) reach the same handler: ids only
        sim.directory.add_department(Department(dept_id=50, name="法务部", parent_id=1))
        sim.directory.remove_user("u1")
        await sim.advance(0)
        async with asyncio.timeout(10):
            await sim.wait_for(lambda: len(sim.events_acknowledged) == 5)
        assert recorder.events[3] == ("org_dept_create", {"deptId": [50]})
        left_type, left = recorder.events[4]
        assert left_type == "user_leave_org" and left["userId"] == ["u1"]
        assert json.dumps(recorder.events, ensure_ascii=False)
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 15)
        assert not thread.is_alive()


def _attach_with_sdks(base_url: str, server: RunningServer, token: str) -> dict[str, Any]:
    """The server-side attachment chain (contract §17.11) with the official SDKs, the PUT
    with a plain HTTP client, as integrators do; a DDAttachment element of the file."""
    workflow = WorkflowClient(_config(server))
    storage = StorageClient(_config(server))
    opts = util_models.RuntimeOptions()
    space = workflow.get_attachment_space_with_options(
        wf.GetAttachmentSpaceRequest(user_id="u1", agent_id=3000001),
        wf.GetAttachmentSpaceHeaders(x_acs_dingtalk_access_token=token),
        opts,
    ).body
    assert space.success is True and isinstance(space.result.space_id, int)
    space_id = str(space.result.space_id)
    union = union_id(World.default().users[5])  # u1
    data = b"%PDF-1.4 sdk receipt"
    info = storage.get_file_upload_info_with_options(
        space_id,
        st.GetFileUploadInfoRequest(
            union_id=union,
            protocol="HEADER_SIGNATURE",
            multipart=False,
            option=st.GetFileUploadInfoRequestOption(
                storage_driver="DINGTALK",
                pre_check_param=st.GetFileUploadInfoRequestOptionPreCheckParam(
                    name="sdk.pdf", size=len(data), parent_id="0"
                ),
            ),
        ),
        st.GetFileUploadInfoHeaders(x_acs_dingtalk_access_token=token),
        opts,
    ).body
    signed = info.header_signature_info
    assert signed.expiration_seconds == 900 and signed.resource_urls[0].startswith(base_url)
    put = httpx.put(signed.resource_urls[0], content=data, headers=signed.headers)
    assert put.status_code == 200, put.text
    dentry = storage.commit_file_with_options(
        space_id,
        st.CommitFileRequest(
            union_id=union,
            upload_key=info.upload_key,
            name="sdk.pdf",
            parent_id="0",
            option=st.CommitFileRequestOption(size=len(data), conflict_strategy="AUTO_RENAME"),
        ),
        st.CommitFileHeaders(x_acs_dingtalk_access_token=token),
        opts,
    ).body.dentry
    assert (dentry.name, dentry.size, dentry.extension) == ("sdk.pdf", len(data), "pdf")
    return {
        "spaceId": dentry.space_id,
        "fileName": dentry.name,
        "fileSize": str(dentry.size),
        "fileType": dentry.extension,
        "fileId": dentry.id,
    }


def _comment_and_download(
    server: RunningServer, token: str, instance_id: str, attachment: dict[str, Any]
) -> str:
    workflow = WorkflowClient(_config(server))
    opts = util_models.RuntimeOptions()
    file = wf.AddProcessInstanceCommentRequestFile(
        attachments=[
            wf.AddProcessInstanceCommentRequestFileAttachments(
                space_id=attachment["spaceId"],
                file_size=attachment["fileSize"],
                file_id=attachment["fileId"],
                file_name=attachment["fileName"],
                file_type=attachment["fileType"],
            )
        ]
    )
    commented = workflow.add_process_instance_comment_with_options(
        wf.AddProcessInstanceCommentRequest(
            process_instance_id=instance_id, text="附收据", comment_user_id="u1", file=file
        ),
        wf.AddProcessInstanceCommentHeaders(x_acs_dingtalk_access_token=token),
        opts,
    ).body
    assert commented.success is True and commented.result is True
    granted = workflow.add_approve_dentry_auth_with_options(
        wf.AddApproveDentryAuthRequest(
            user_id="u1",
            file_infos=[
                wf.AddApproveDentryAuthRequestFileInfos(
                    space_id=int(attachment["spaceId"]), file_id=attachment["fileId"]
                )
            ],
        ),
        wf.AddApproveDentryAuthHeaders(x_acs_dingtalk_access_token=token),
        opts,
    ).body
    assert granted.success is True
    link = workflow.grant_process_instance_for_download_file_with_options(
        wf.GrantProcessInstanceForDownloadFileRequest(
            process_instance_id=instance_id, file_id=attachment["fileId"]
        ),
        wf.GrantProcessInstanceForDownloadFileHeaders(x_acs_dingtalk_access_token=token),
        opts,
    ).body
    assert link.success is True and link.result.file_id == attachment["fileId"]
    return str(link.result.download_uri)


async def test_attachment_sdks_space_storage_comments(server) -> None:
    token = await asyncio.to_thread(_token, server)
    attachment = await asyncio.to_thread(_attach_with_sdks, server.base_url, server, token)
    client = WorkflowClient(_config(server))
    values = [
        wf.StartProcessInstanceRequestFormComponentValues(name=k, value=v)
        for k, v in {
            "金额（元）": "300",
            "费用类型": "餐饮",
            "发生日期": "2026-01-02",
            "附件": json.dumps([attachment]),
        }.items()
    ]
    created = await asyncio.to_thread(
        client.start_process_instance_with_options,
        wf.StartProcessInstanceRequest(
            process_code="PROC-SIM-EXPENSE",
            originator_user_id="u1",
            dept_id=-1,
            form_component_values=values,
        ),
        wf.StartProcessInstanceHeaders(x_acs_dingtalk_access_token=token),
        util_models.RuntimeOptions(),
    )
    instance_id = str(created.body.instance_id)
    uri = await asyncio.to_thread(_comment_and_download, server, token, instance_id, attachment)
    async with httpx.AsyncClient() as plain:
        assert (await plain.get(uri)).content == b"%PDF-1.4 sdk receipt"
    body = await asyncio.to_thread(_get, server, token, instance_id)
    [remark] = [r for r in body.result.operation_records if r.type == "ADD_REMARK"]
    assert remark.remark == "附收据" and remark.attachments[0].file_id == attachment["fileId"]
