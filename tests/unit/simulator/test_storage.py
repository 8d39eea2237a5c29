"""Attachments on the simulator (contract §17): the approval space, the upload chain, the
DDAttachment check, grants and download links, and the traps integrators meet."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.simulator import Simulator, World
from syncd.simulator.directory import union_id
from syncd.testing import FakeClock

from .conftest import APP_KEY, APP_SECRET, Api, expense_form

SPACE = "/v1.0/workflow/processInstances/spaces/infos/query"
GRANT = "/v1.0/workflow/processInstances/spaces/files/authDownload"
LINK = "/v1.0/workflow/processInstances/spaces/files/urls/download"
AGENT = 3000001


def union(sim: Simulator, user_id: str) -> str:
    user = sim.world.user(user_id)
    assert user is not None
    return union_id(user)


async def space_of(api: Api, user_id: str = "u1") -> int:
    r = await api.post(SPACE, {"userId": user_id, "agentId": AGENT})
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True
    space = r.json()["result"]["spaceId"]
    assert isinstance(space, int)
    return space


async def ticket(
    api: Api, space: int, un: str, name: str = "a.pdf", size: int | None = None
) -> httpx.Response:
    pre: dict[str, Any] = {"name": name, "parentId": "0"}
    if size is not None:
        pre["size"] = size
    return await api.client.post(
        f"/v1.0/storage/spaces/{space}/files/uploadInfos/query",
        params={"unionId": un},
        json={
            "protocol": "HEADER_SIGNATURE",
            "multipart": False,
            "option": {"storageDriver": "DINGTALK", "preCheckParam": pre},
        },
        headers=api.auth,
    )


async def put(api: Api, info: dict[str, Any], data: bytes, **extra: str) -> httpx.Response:
    sign = info["headerSignatureInfo"]
    return await api.client.put(
        sign["resourceUrls"][0], content=data, headers=sign["headers"] | extra
    )


async def commit(
    api: Api, space: int, un: str, key: str, name: str = "a.pdf", **option: Any
) -> httpx.Response:
    return await api.client.post(
        f"/v1.0/storage/spaces/{space}/files/commit",
        params={"unionId": un},
        json={"uploadKey": key, "name": name, "parentId": "0", "option": option},
        headers=api.auth,
    )


async def upload(
    api: Api, sim: Simulator, user_id: str = "u1", name: str = "a.pdf", data: bytes = b"%PDF"
) -> dict[str, Any]:
    """The whole server-side chain (§17.11); the dentry."""
    space = await space_of(api, user_id)
    un = union(sim, user_id)
    r = await ticket(api, space, un, name, len(data))
    assert r.status_code == 200, r.text
    info = r.json()
    assert (await put(api, info, data)).status_code == 200
    r = await commit(api, space, un, info["uploadKey"], name, size=len(data))
    assert r.status_code == 200, r.text
    dentry: dict[str, Any] = r.json()["dentry"]
    return dentry


def value_of(*dentries: dict[str, Any]) -> str:
    return json.dumps(
        [
            {
                "spaceId": d["spaceId"],
                "fileName": d["name"],
                "fileSize": str(d["size"]),
                "fileType": d["extension"],
                "fileId": d["id"],
            }
            for d in dentries
        ]
    )


async def test_the_whole_chain_attaches_a_file_and_reads_it_back(api: Api, sim: Simulator) -> None:
    dentry = await upload(api, sim, data=b"%PDF-1.4 receipt")
    assert dentry["spaceId"] == str(sim.storage.approval_space)
    assert (dentry["name"], dentry["size"], dentry["extension"]) == ("a.pdf", 16, "pdf")
    assert dentry["creatorId"] == union(sim, "u1")
    instance_id = await api.create_id(formComponentValues=expense_form(附件=value_of(dentry)))
    got = (await api.get(instance_id)).json()["result"]
    assert json.loads(next(v["value"] for v in got["formComponentValues"] if v["name"] == "附件"))
    # no grant yet: no link (strict reading of §17.7)
    r = await api.post(LINK, {"processInstanceId": instance_id, "fileId": dentry["id"]})
    Api.error(r, 400, "noPermission")
    space = int(dentry["spaceId"])
    r = await api.post(
        GRANT, {"userId": "u1", "fileInfos": [{"spaceId": space, "fileId": dentry["id"]}]}
    )
    assert r.json() == {"success": True, "result": True}
    r = await api.post(LINK, {"processInstanceId": instance_id, "fileId": dentry["id"]})
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert (result["spaceId"], result["fileId"]) == (space, dentry["id"])
    got_file = await api.client.get(result["downloadUri"])
    assert got_file.status_code == 200 and got_file.content == b"%PDF-1.4 receipt"
    assert got_file.headers["content-type"] == "application/pdf"
    assert sim.calls["workflow.spaceInfo"] == 1 and sim.calls["oss.get"] == 1


async def test_a_link_expires_after_15_minutes(api: Api, sim: Simulator, clock: FakeClock) -> None:
    dentry = await upload(api, sim)
    instance_id = await api.create_id(formComponentValues=expense_form(附件=value_of(dentry)))
    space = int(dentry["spaceId"])
    await api.post(
        GRANT, {"userId": "u1", "fileInfos": [{"spaceId": space, "fileId": dentry["id"]}]}
    )
    r = await api.post(LINK, {"processInstanceId": instance_id, "fileId": dentry["id"]})
    clock.advance(15 * 60)
    expired = await api.client.get(r.json()["result"]["downloadUri"])
    assert expired.status_code == 403 and b"<Code>AccessDenied</Code>" in expired.content


async def test_upload_rights_come_from_the_space_query(api: Api, sim: Simulator) -> None:
    space = sim.storage.approval_space
    r = await ticket(api, space, union(sim, "u1"))
    Api.error(r, 403, "permissionDenied")
    await space_of(api, "u1")
    assert (await ticket(api, space, union(sim, "u1"))).status_code == 200
    Api.error(await ticket(api, space, union(sim, "u2")), 403, "permissionDenied")
    Api.error(await ticket(api, 12345, union(sim, "u1")), 404, "spaceNotExist")
    r = await api.client.post(
        f"/v1.0/storage/spaces/{space}/files/uploadInfos/query",
        json={"protocol": "HEADER_SIGNATURE", "multipart": False},
        headers=api.auth,
    )
    Api.error(r, 400, "paramError")  # unionId missing from the query


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"agentId": AGENT}, "invalidUserId"),
        ({"userId": "u1"}, "invalidAgentId"),
        ({"userId": "u1", "agentId": 1}, "invalidAgentId"),
        ({"userId": "nobody", "agentId": AGENT}, "userNotExist"),
        ({"userId": "left1", "agentId": AGENT}, "userNotExist"),
    ],
)
async def test_space_query_errors(api: Api, body: dict[str, Any], code: str) -> None:
    Api.error(await api.post(SPACE, body), 400, code)


async def test_the_put_needs_exactly_the_signed_headers(api: Api, sim: Simulator) -> None:
    space = await space_of(api)
    info = (await ticket(api, space, union(sim, "u1"), size=4)).json()
    sign = info["headerSignatureInfo"]
    r = await api.client.put(sign["resourceUrls"][0], content=b"%PDF")
    assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content
    r = await put(api, info, b"%PDF", **{"Content-Type": "application/pdf"})
    assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content
    r = await put(api, info, b"%PDF!")
    assert r.status_code == 400 and b"InvalidArgument" in r.content  # not the declared size
    assert "x-acs-dingtalk-access-token" not in r.request.headers
    assert (await put(api, info, b"%PDF")).status_code == 200


async def test_tickets_expire_and_serve_one_commit(
    api: Api, sim: Simulator, clock: FakeClock
) -> None:
    space, un = await space_of(api), union(sim, "u1")
    info = (await ticket(api, space, un)).json()
    Api.error(await commit(api, space, un, info["uploadKey"]), 400, "dentryStoreError")
    await put(api, info, b"abc")
    Api.error(await commit(api, space, un, "nokey"), 400, "paramError")
    Api.error(
        await commit(api, space, un, info["uploadKey"], "bad*name.pdf"), 400, "dentryNameIllegal"
    )
    Api.error(await commit(api, space, un, info["uploadKey"], "noext"), 400, "dentryNameIllegal")
    await space_of(api, "u2")
    Api.error(await commit(api, space, union(sim, "u2"), info["uploadKey"]), 400, "paramError")
    assert (await commit(api, space, un, info["uploadKey"])).status_code == 200
    Api.error(await commit(api, space, un, info["uploadKey"]), 400, "paramError")  # used
    late = (await ticket(api, space, un)).json()
    clock.advance(900)
    r = await put(api, late, b"abc")
    assert r.status_code == 403 and b"AccessDenied" in r.content


async def test_same_names_are_renamed(api: Api, sim: Simulator) -> None:
    first = await upload(api, sim, name="r.pdf")
    second = await upload(api, sim, name="r.pdf")
    assert first["id"] != second["id"] and second["name"] == "r(1).pdf"


async def test_trap_a_file_in_ones_own_drive_cannot_be_attached(api: Api, sim: Simulator) -> None:
    drive = sim.storage.drive("u1")
    un = union(sim, "u1")
    info = (await ticket(api, drive, un)).json()  # one's own drive needs no space query
    await put(api, info, b"%PDF")
    dentry = (await commit(api, drive, un, info["uploadKey"])).json()["dentry"]
    r = await api.create(formComponentValues=expense_form(附件=value_of(dentry)))
    Api.error(r, 400, "formConverterError")
    assert "不存在" in r.json()["message"] and "附件" in r.json()["message"]
    Api.error(await ticket(api, drive, union(sim, "u2")), 403, "permissionDenied")
    r = await api.post(
        GRANT, {"userId": "u1", "fileInfos": [{"spaceId": drive, "fileId": dentry["id"]}]}
    )
    Api.error(r, 400, "invalidFileInfos")


async def test_trap_a_wrong_or_foreign_file_id_does_not_exist(api: Api, sim: Simulator) -> None:
    mine = await upload(api, sim, "u1")
    theirs = await upload(api, sim, "u2", name="b.pdf")
    for bad in (
        dict(mine, id="999"),  # unknown fileId
        theirs,  # uploaded by another person than the originator
    ):
        r = await api.create(formComponentValues=expense_form(附件=value_of(bad)))
        Api.error(r, 400, "formConverterError")
        assert "不存在" in r.json()["message"]
    for value in (
        json.dumps([{"fileId": mine["id"]}]),  # not the five keys
        value_of(dict(mine, size=5)),  # not as committed
        "not json",
    ):
        r = await api.create(formComponentValues=expense_form(附件=value))
        Api.error(r, 400, "formConverterError")
    numeric = json.loads(value_of(mine))
    numeric[0]["fileSize"] = mine["size"]  # field practice: a number is accepted
    assert (
        await api.create(formComponentValues=expense_form(附件=json.dumps(numeric)))
    ).status_code == 200


async def test_trap_an_approver_cannot_download_without_a_grant(api: Api, sim: Simulator) -> None:
    dentry = await upload(api, sim)
    await api.create_id(formComponentValues=expense_form(附件=value_of(dentry)))
    assert sim.storage.may_download("u1", dentry["id"])  # the uploader
    assert not sim.storage.may_download("manager1", dentry["id"])
    r = await api.client.get(f"/_sim/files/{dentry['id']}", params={"userId": "manager1"})
    assert r.status_code == 403
    space = int(dentry["spaceId"])
    await api.post(
        GRANT, {"userId": "manager1", "fileInfos": [{"spaceId": space, "fileId": dentry["id"]}]}
    )
    r = await api.client.get(f"/_sim/files/{dentry['id']}", params={"userId": "manager1"})
    assert r.status_code == 200 and r.content == b"%PDF"


async def test_grant_limits(api: Api, sim: Simulator) -> None:
    dentry = await upload(api, sim)
    info = {"spaceId": int(dentry["spaceId"]), "fileId": dentry["id"]}
    Api.error(
        await api.post(GRANT, {"userId": "u1", "fileInfos": [info] * 11}), 400, "invalidFileInfos"
    )
    Api.error(await api.post(GRANT, {"userId": "u1", "fileInfos": []}), 400, "invalidFileInfos")
    stringly = {"spaceId": dentry["spaceId"], "fileId": dentry["id"]}  # a number here (§22.3)
    Api.error(
        await api.post(GRANT, {"userId": "u1", "fileInfos": [stringly]}), 400, "invalidFileInfos"
    )
    Api.error(await api.post(GRANT, {"userId": "x", "fileInfos": [info]}), 400, "userNotExist")
    assert (await api.post(GRANT, {"userId": "u1", "fileInfos": [info] * 10})).status_code == 200


async def test_links_only_for_files_of_the_instance(api: Api, sim: Simulator) -> None:
    dentry = await upload(api, sim)
    other = await upload(api, sim, name="c.pdf")
    instance_id = await api.create_id(formComponentValues=expense_form(附件=value_of(dentry)))
    space = int(dentry["spaceId"])
    await api.post(
        GRANT, {"userId": "u1", "fileInfos": [{"spaceId": space, "fileId": other["id"]}]}
    )
    r = await api.post(LINK, {"processInstanceId": instance_id, "fileId": other["id"]})
    Api.error(r, 400, "invalidFileId")
    Api.error(
        await api.post(LINK, {"processInstanceId": "nope", "fileId": "1"}),
        400,
        "processInstNotExist",
    )
    Api.error(await api.post(LINK, {"fileId": "1"}), 400, "invalidProcessInstanceId")


async def test_comments_with_attachments_show_in_get(api: Api, sim: Simulator) -> None:
    instance_id = await api.create_id()
    dentry = await upload(api, sim, "u1", name="note.pdf")
    attachment = json.loads(value_of(dentry))[0]
    body = {
        "processInstanceId": instance_id,
        "text": "金额改为 480",
        "commentUserId": "u1",
        "file": {"attachments": [attachment], "photos": ["https://example.com/p.png"]},
    }
    r = await api.post("/v1.0/workflow/processInstances/comments", body)
    assert r.json() == {"result": True, "success": True}
    sim.comment(instance_id, "manager1", "收据已看", [("receipt.jpg", b"\xff\xd8jpeg")])
    records = (await api.get(instance_id)).json()["result"]["operationRecords"]
    remarks = [r for r in records if r["type"] == "ADD_REMARK"]
    assert [(r["userId"], r["remark"], r["showName"], r["result"]) for r in remarks] == [
        ("u1", "金额改为 480", "评论", "NONE"),
        ("manager1", "收据已看", "评论", "NONE"),
    ]
    assert remarks[0]["attachments"] == [attachment]
    assert remarks[0]["images"] == ["https://example.com/p.png"]
    approver_file = remarks[1]["attachments"][0]
    assert approver_file["fileName"] == "receipt.jpg" and approver_file["fileSize"] == "6"
    # the approver's file downloads with withCommentAttatchment, after a grant
    space = int(approver_file["spaceId"])
    await api.post(
        GRANT,
        {"userId": "u1", "fileInfos": [{"spaceId": space, "fileId": approver_file["fileId"]}]},
    )
    link = {"processInstanceId": instance_id, "fileId": approver_file["fileId"]}
    Api.error(await api.post(LINK, link), 400, "invalidFileId")
    r = await api.post(LINK, link | {"withCommentAttatchment": True})
    assert (await api.client.get(r.json()["result"]["downloadUri"])).content == b"\xff\xd8jpeg"


async def test_comment_attachments_are_checked(api: Api, sim: Simulator) -> None:
    instance_id = await api.create_id()
    theirs = await upload(api, sim, "u2")
    body = {
        "processInstanceId": instance_id,
        "text": "see file",
        "commentUserId": "u1",
        "file": {"attachments": json.loads(value_of(theirs))},
    }
    r = await api.post("/v1.0/workflow/processInstances/comments", body)
    Api.error(r, 400, "invalidParameter")
    assert "不存在" in r.json()["message"]
    body["file"] = {"attachments": json.loads(value_of(*[await upload(api, sim, "u1")] * 21))}
    Api.error(
        await api.post("/v1.0/workflow/processInstances/comments", body), 400, "invalidParameter"
    )


def _limited_world(limit: int, types: list[str]) -> World:
    data = World.default().dump()
    data["storage"] = {"max_file_size": limit, "file_types": types}
    return World.model_validate(data)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    limit=st.integers(1, 64),
    delta=st.integers(-3, 3),
    ext=st.sampled_from(["pdf", "jpg", "PDF", "exe", "", "tar.gz"]),
)
def test_sizes_and_types_around_the_limits(limit: int, delta: int, ext: str) -> None:
    """A file under the size limit of an allowed type uploads and commits; anything else
    is refused at the ticket (declared size), the PUT (actual size) or the commit."""
    import asyncio

    size = max(limit + delta, 0)
    name = f"f.{ext}" if ext else "f"
    allowed = ["pdf", "jpg", "gz"]

    async def run() -> tuple[int, int, int | None]:
        sim = Simulator(_limited_world(limit, allowed), clock=FakeClock())
        transport = httpx.ASGITransport(app=sim.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://api.dingtalk.com") as c:
            r = await c.post(
                "/v1.0/oauth2/accessToken", json={"appKey": APP_KEY, "appSecret": APP_SECRET}
            )
            api = Api(c, {"x-acs-dingtalk-access-token": r.json()["accessToken"]})
            space, un = await space_of(api), union(sim, "u1")
            declared = (await ticket(api, space, un, name, size)).status_code
            undeclared = (await ticket(api, space, un, "x.pdf")).json()
            put_status = (await put(api, undeclared, b"x" * size)).status_code
            if put_status != 200:
                return declared, put_status, None
            done = await commit(api, space, un, undeclared["uploadKey"], name)
            return declared, put_status, done.status_code

    declared, put_status, commit_status = asyncio.run(run())
    ok_type = ext.lower() in allowed or ext == "tar.gz"
    ok_size = size <= limit
    assert (declared == 200) == (ok_type and ok_size)
    assert (put_status == 200) == ok_size
    if ok_size:
        assert (commit_status == 200) == ok_type


async def test_five_gigabytes_need_multipart(api: Api, sim: Simulator) -> None:
    space, un = await space_of(api), union(sim, "u1")
    r = await ticket(api, space, un, size=5 * 1024**3)
    Api.error(r, 400, "paramError")
    assert (await ticket(api, space, un, size=5 * 1024**3 - 1)).status_code == 200


async def test_a_world_declares_union_ids(world: World) -> None:
    data: dict[str, Any] = world.dump()
    data["users"][5]["union_id"] = "UNION-OF-U1"  # u1
    declared = World.model_validate(data)
    sim = Simulator(declared, clock=FakeClock())
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.dingtalk.com") as c:
        r = await c.post(
            "/v1.0/oauth2/accessToken", json={"appKey": APP_KEY, "appSecret": APP_SECRET}
        )
        api = Api(c, {"x-acs-dingtalk-access-token": r.json()["accessToken"]})
        space = await space_of(api)
        assert (await ticket(api, space, "UNION-OF-U1")).status_code == 200
        detail = await c.post(
            "/topapi/v2/user/get",
            params={"access_token": r.json()["accessToken"]},
            json={"userid": "u1"},
        )
        assert detail.json()["result"]["unionid"] == "UNION-OF-U1"
    data["users"][6]["union_id"] = "UNION-OF-U1"
    with pytest.raises(ValueError, match="share a union_id"):
        World.model_validate(data)
