"""The web pages: form values, self-refresh without external files, the tester picks the
approver; the task links of GET open the instance's page."""

from __future__ import annotations

import asyncio
import json
from html.parser import HTMLParser
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.dingtalk.models import GetInstanceResponse
from syncd.simulator import Simulator, World
from syncd.testing import FakeClock

from .conftest import APP_KEY, APP_SECRET, Api, expense_form, leave_form


class Page(HTMLParser):
    """What a browser makes of a page: form-value lines, forms, scripts, links."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.lines: list[list[str]] = []  # per form cell, its "label: value" lines
        self.forms: list[dict[str, Any]] = []
        self.scripts: list[dict[str, str | None]] = []
        self.script_text = ""
        self.links: list[str] = []
        self.metas: list[dict[str, str | None]] = []
        self._in_cell = self._in_script = False
        self._select = ""
        self._button: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "td" and a.get("class") == "form":
            self._in_cell = True
            self.lines.append([])
        elif tag == "div" and self._in_cell:
            self.lines[-1].append("")
        elif tag == "form":
            self.forms.append({"action": a["action"], "fields": {}, "options": {}, "buttons": {}})
        elif tag == "script":
            self.scripts.append(a)
            self._in_script = True
        elif tag == "a":
            self.links.append(str(a["href"]))
        elif tag == "meta":
            self.metas.append(a)
        elif self.forms:
            self._form_tag(tag, a, self.forms[-1])

    def _form_tag(self, tag: str, a: dict[str, str | None], form: dict[str, Any]) -> None:
        if tag == "input":
            form["fields"][a["name"]] = a.get("value") or ""
        elif tag == "select":
            self._select = str(a["name"])
            form["options"][self._select] = []
        elif tag == "option":
            form["options"][self._select].append(a["value"])
            if "selected" in a or len(form["options"][self._select]) == 1:
                form["fields"][self._select] = a["value"]
        elif tag == "button":
            self._button = a.get("formaction") or form["action"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_cell = False
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data
        elif self._in_cell and self.lines[-1]:
            self.lines[-1][-1] += data
        elif self.forms and self._button:
            self.forms[-1]["buttons"][data] = self._button
            self._button = None

    def form(self, button: str) -> dict[str, Any]:
        """The form with this button."""
        return next(f for f in self.forms if button in f["buttons"])


async def press(
    client: httpx.AsyncClient, page: Page, button: str, **changes: str
) -> httpx.Response:
    """Fill in the form that has ``button`` and press it, as a browser would."""
    form = page.form(button)
    for name, value in changes.items():
        assert name in form["fields"], name
        if name in form["options"]:
            assert value in form["options"][name], (name, value)
    return await client.post(form["buttons"][button], data={**form["fields"], **changes})


async def test_pick_the_approver_who_acts(api, client, sim) -> None:
    instance_id = await api.create_id(formComponentValues=api.expense_form("5000"))
    page = Page((await client.get("/_sim/")).text)
    assert page.form("approve")["options"]["userId"] == ["manager1", "manager2"]
    r = await press(client, page, "approve", userId="manager2", remark="ok from 2")
    assert r.status_code == 303 and r.headers["location"] == "/_sim/"
    instance = sim.instance(instance_id)
    assert [(r.user_id, r.result, r.remark) for r in instance.records[1:]] == [
        ("manager2", "AGREE", "ok from 2")
    ]
    page = Page((await client.get("/_sim/")).text)
    assert page.form("approve")["options"]["userId"] == ["finance1", "finance2"]
    await press(client, page, "approve", userId="finance2")
    page = Page((await client.get("/_sim/")).text)
    assert page.form("refuse")["options"]["userId"] == ["finance1"]
    await press(client, page, "refuse", remark="no")
    assert (instance.status, instance.result) == ("COMPLETED", "refuse")
    finished = Page((await client.get("/_sim/")).text).forms
    assert not [f for f in finished if {"approve", "terminate"} & set(f["buttons"])]


async def test_terminate_acts_as_the_originator(api, client, sim) -> None:
    instance_id = await api.create_id()
    page = Page((await client.get("/_sim/")).text)
    assert "userId" not in page.form("terminate")["fields"]
    assert (await press(client, page, "terminate", remark="x")).status_code == 303
    record = sim.instance(instance_id).records[-1]
    assert (record.user_id, record.type, record.remark) == ("u1", "TERMINATE_PROCESS_INSTANCE", "x")


async def test_pages_refresh_themselves_without_external_files(api, client) -> None:
    instance_id = await api.create_id()
    for path in ("/_sim/", f"/_sim/instances/{instance_id}/view"):
        page = Page((await client.get(path)).text)
        assert page.scripts == [{}]  # inline: no src, nothing fetched from elsewhere
        assert "fetch(location.href" in page.script_text and "setInterval" in page.script_text
        assert {"http-equiv": "refresh", "content": "5"} in page.metas  # without JavaScript
        assert not [link for link in page.links if "//" in link]


async def test_task_links_open_the_instance_for_that_approver(api, client, sim) -> None:
    instance_id = await api.create_id(formComponentValues=api.expense_form("5000"))
    body = (await api.get(instance_id)).json()
    tasks = body["result"]["tasks"]
    assert [t["userId"] for t in tasks] == ["manager1", "manager2"]
    parsed = GetInstanceResponse.model_validate(body).result.tasks  # as syncd reads GET
    assert [(t.pc_url, t.mobile_url) for t in parsed] == [
        (t["pcUrl"], t["mobileUrl"]) for t in tasks
    ]
    for task in tasks:
        pc, mobile = task["pcUrl"], task["mobileUrl"]
        assert pc != mobile
        for link in (pc, mobile):
            assert link.startswith(f"https://api.dingtalk.com/_sim/instances/{instance_id}/view?")
            page = Page((await client.get(link)).text)
            assert page.form("approve")["fields"]["userId"] == task["userId"]
    detail = (await client.get(f"/_sim/instances/{instance_id}")).json()["detail"]
    assert detail["tasks"][0]["pcUrl"] == tasks[0]["pcUrl"]
    page = Page((await client.get(tasks[1]["pcUrl"])).text)
    r = await press(client, page, "approve")
    assert (
        r.headers["location"] == f"/_sim/instances/{instance_id}/view?taskId={tasks[1]['taskId']}"
    )
    assert sim.instance(instance_id).records[1].user_id == "manager2"
    assert (await client.get("/_sim/instances/nope/view")).status_code == 404


async def _shown(process_code: str, form: list[dict[str, str]]) -> dict[str, list[str]]:
    """The form's lines on both pages, and the values GET returns, as ``label: value``."""
    sim = Simulator(World.default(), clock=FakeClock())
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        r = await client.post(
            "/v1.0/oauth2/accessToken", json={"appKey": APP_KEY, "appSecret": APP_SECRET}
        )
        api = Api(client, {"x-acs-dingtalk-access-token": r.json()["accessToken"]})
        instance_id = await api.create_id(processCode=process_code, formComponentValues=form)
        values = (await api.get(instance_id)).json()["result"]["formComponentValues"]
        [index] = Page((await client.get("/_sim/")).text).lines
        [view] = Page((await client.get(f"/_sim/instances/{instance_id}/view")).text).lines
    labels = [json.loads(v["name"]) if v["name"].startswith("[") else [v["name"]] for v in values]
    got = [f"{' ~ '.join(label)}: {v['value']}" for label, v in zip(labels, values, strict=True)]
    return {"index": index, "view": view, "get": got}


_TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(note=_TEXT, number=_TEXT)
def test_form_values_are_shown_as_get_returns_them(note: str, number: str) -> None:
    shown = asyncio.run(
        _shown("PROC-SIM-EXPENSE", expense_form("5000", 说明=note, 业务编号=number))
    )
    assert shown["index"] == shown["view"] == shown["get"]
    assert f"说明: {note}" in shown["index"] and f"业务编号: {number}" in shown["index"]


def test_a_date_range_reads_start_to_end() -> None:
    shown = asyncio.run(_shown("PROC-SIM-LEAVE", leave_form()))
    assert shown["index"] == shown["view"] == shown["get"]
    assert '开始时间 ~ 结束时间: ["2026-01-06", "2026-01-07"]' in shown["index"]


async def test_start_an_instance_in_dingtalk_from_the_page(client, sim) -> None:
    """The page's start form: as a chosen person, for a process code, with form values;
    it emits the ``start`` event and the instance is in the id listing."""
    page = Page((await client.get("/_sim/")).text)
    form = page.form("start PROC-SIM-LEAVE")
    assert "u1" in form["options"]["userId"] and "left1" not in form["options"]["userId"]
    assert {"v:请假类型", 'v:["开始时间","结束时间"]', "v:天数"} <= set(form["fields"])
    r = await press(
        client,
        page,
        "start PROC-SIM-LEAVE",
        userId="u4",
        **{
            "v:请假类型": "病假",
            'v:["开始时间","结束时间"]': '["2026-03-02","2026-03-04"]',
            "v:天数": "3",
        },
    )
    assert r.status_code == 303, r.text
    [instance] = sim.instances()
    assert r.headers["location"] == f"/_sim/instances/{instance.instance_id}/view"
    assert instance.originator == "u4" and instance.in_client and instance.app_key == ""
    assert [e.data["type"] for e in sim.events if e.event_type == "bpms_instance_change"] == [
        "start"
    ]
    assert {v["name"]: v["value"] for v in instance.form}["天数"] == "3"
    since = int(instance.create_time.timestamp() * 1000) - 1000
    listed = sim.workflow.list_ids(
        {"processCode": "PROC-SIM-LEAVE", "startTime": since, "nextToken": 0, "maxResults": 20}
    )
    assert listed["result"]["list"] == [instance.instance_id]
    bad = await press(client, page, "start PROC-SIM-LEAVE", **{"v:天数": "many"})
    assert bad.status_code == 400 and "formConverterError" in bad.json()["error"]


async def test_attachments_and_comments_on_the_instance_page(client, sim) -> None:
    r = await client.post(
        "/_sim/instances",
        json={
            "processCode": "PROC-SIM-EXPENSE",
            "userId": "u1",
            "formComponentValues": expense_form("800"),
            "files": {"附件": [{"name": "收据.jpg", "content": "/9j/4A=="}]},
        },
    )
    assert r.status_code == 201, r.text
    instance_id = r.json()["instanceId"]
    r = await client.post(
        f"/_sim/instances/{instance_id}/comment",
        json={
            "userId": "manager1",
            "text": "请补充发票",
            "files": [{"name": "模板.pdf", "content": "JVBERg=="}],
        },
    )
    assert r.status_code == 200, r.text
    remark = r.json()["operationRecords"][-1]
    assert remark["type"] == "ADD_REMARK" and remark["attachments"][0]["fileName"] == "模板.pdf"
    view = f"/_sim/instances/{instance_id}/view"
    page = Page((await client.get(view)).text)
    files = [link for link in page.links if link.startswith("/_sim/files/")]
    assert len(files) == 2
    got = [await client.get(link) for link in files]
    assert [g.content for g in got] == [b"\xff\xd8\xff\xe0", b"%PDF"]
    assert got[0].headers["content-type"] == "image/jpeg"
    r = await press(client, page, "comment", userId="finance1", text="看过")
    assert r.status_code == 303 and r.headers["location"] == view
    record = sim.instance(instance_id).records[-1]
    assert (record.user_id, record.type, record.remark) == ("finance1", "ADD_REMARK", "看过")
    empty = await press(client, page, "comment", text=" ")
    assert empty.status_code == 400
