"""The simulator's web pages: every instance with its form values, and one instance as
a task's ``pcUrl``/``mobileUrl`` opens it; the tester picks which approver acts.

The pages refresh themselves with a small inline script (no external files); it leaves
the page alone while a form on it is being filled in. Without JavaScript a meta refresh
reloads the page every few seconds.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from syncd.simulator.core import Simulator
    from syncd.simulator.state import Instance
    from syncd.simulator.world import Component

REFRESH_MS = 2000

_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}"
    "form{display:inline-block;margin:2px 0}.form div{white-space:pre-wrap}"
    ".form b{font-weight:normal;color:#555}.mine{background:#ffd}small{color:#666}"
)

_SCRIPT = (
    "<script>(()=>{const busy=()=>document.querySelector('#live form[data-touched]')"
    "||(document.activeElement&&document.activeElement.closest('#live form'));"
    "document.addEventListener('input',e=>{const f=e.target.closest('form');"
    "if(f)f.dataset.touched='1'});"
    "setInterval(async()=>{if(document.hidden||busy())return;"
    "try{const r=await fetch(location.href,{cache:'no-store'});if(!r.ok)return;"
    "const d=new DOMParser().parseFromString(await r.text(),'text/html');"
    "const n=d.getElementById('live'),o=document.getElementById('live');"
    f"if(n&&o)o.replaceWith(n)}}catch(e){{}}}},{REFRESH_MS})}})()</script>"
)


def _document(title: str, body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<noscript><meta http-equiv='refresh' content='{REFRESH_MS // 400}'></noscript>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"{body}{_SCRIPT}</body></html>"
    )


def _table(heads: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in heads)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _cells(*values: str) -> str:
    return "".join(f"<td>{escape(v)}</td>" for v in values)


def _time(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _label(name: str) -> str:
    """A form value's name; a date range's JSON pair of labels reads ``start ~ end``."""
    if name.startswith("["):
        try:
            labels = json.loads(name)
        except ValueError:
            return name
        if isinstance(labels, list):
            return " ~ ".join(str(label) for label in labels)
    return name


def form_values(instance: Instance) -> str:
    """The submitted form, one ``label: value`` line per component."""
    lines = (
        f"<div><b>{escape(_label(v.get('name', '')))}:</b> {escape(v.get('value', ''))}</div>"
        for v in instance.form
    )
    return f"<td class='form'>{''.join(lines)}</td>"


def _path(instance: Instance, action: str = "") -> str:
    base = f"/_sim/instances/{quote(instance.instance_id, safe='')}"
    return f"{base}/{action}" if action else base


def actions(sim: Simulator, instance: Instance, back: str, acting: str | None = None) -> str:
    """Approve or refuse as a chosen pending approver (``acting`` preselected, else the
    first); terminate as the originator. Empty once the instance has finished."""
    if instance.status != "RUNNING":
        return ""
    hidden = f"<input type='hidden' name='back' value='{escape(back)}'>"
    remark = "<input name='remark' placeholder='remark' size='10'>"
    options = []
    for user_id in dict.fromkeys(t.user_id for t in instance.running_tasks()):
        user = sim.world.user(user_id)
        label = f"{user_id} ({user.name})" if user else user_id
        selected = " selected" if user_id == acting else ""
        options.append(f"<option value='{escape(user_id)}'{selected}>{escape(label)}</option>")
    decide = (
        f"<form method='post' action='{_path(instance, 'approve')}'>{hidden}"
        f"<select name='userId' title='who acts'>{''.join(options)}</select>{remark}"
        "<button>approve</button>"
        f"<button formaction='{_path(instance, 'refuse')}'>refuse</button></form>"
        if options
        else ""
    )
    terminate = (
        f"<form method='post' action='{_path(instance, 'terminate')}'>{hidden}{remark}"
        "<button title='revoke, as the originator'>terminate</button></form>"
    )
    return decide + terminate


def _component_hint(component: Component) -> str:
    if component.options:
        return " / ".join(component.options)
    return _HINTS.get(component.type, "")


_HINTS = {
    "DDDateField": "yyyy-MM-dd",
    "DDDateRangeField": '["yyyy-MM-dd","yyyy-MM-dd"]',
    "NumberField": "number",
    "MoneyField": "number",
    "TableField": '[[{"name":…,"value":…}]]',
    "DDAttachment": "files: through the admin API",
}


def start_forms(sim: Simulator) -> str:
    """One form per published template: start an instance as a chosen person in DingTalk
    itself (an inbound start, contract §20); each component a ``v:<label>`` field."""
    people = "".join(
        f"<option value='{escape(u.user_id)}'>{escape(u.user_id)} ({escape(u.name)})</option>"
        for u in sim.world.users
        if u.active
    )
    forms = []
    for t in sim.world.templates:
        if t.status != "PUBLISHED":
            continue
        fields = "".join(
            f"<div><label>{escape(_label(c.label_text))}{' *' if c.required else ''} "
            f"<input name='v:{escape(c.label_text)}' size='30'"
            f" placeholder='{escape(_component_hint(c))}'></label></div>"
            for c in t.components
            if c.type not in ("DDAttachment", "TextNote")
        )
        forms.append(
            f"<details><summary>{escape(t.name)} ({escape(t.process_code)})</summary>"
            f"<form method='post' action='/_sim/instances'>"
            f"<input type='hidden' name='processCode' value='{escape(t.process_code)}'>"
            f"<div>as <select name='userId' title='originator'>{people}</select></div>"
            f"{fields}<button>start {escape(t.process_code)}</button></form></details>"
        )
    return "<h2>Start in DingTalk</h2>" + "".join(forms)


def _size(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KiB"


def attachments(sim: Simulator, instance: Instance) -> str:
    """The instance's files, from its form and its comments: each downloadable here (as
    the tester), with who may download it in DingTalk (the uploader and those granted)."""
    rows = []
    comment_files = [
        (a["fileId"], f"comment by {r.user_id}") for r in instance.records for a in r.attachments
    ]
    for file_id, where in [(f, "form") for f in instance.files] + comment_files:
        stored = sim.storage.files.get(file_id)
        if stored is None:
            continue
        link = f"<a href='/_sim/files/{quote(file_id, safe='')}'>{escape(stored.name)}</a>"
        may = ", ".join(dict.fromkeys([stored.creator, *sim.storage.grants.users(file_id)]))
        rows.append(
            f"<tr><td>{link}</td>"
            + _cells(_size(stored.size), stored.extension, stored.creator, where, may)
            + "</tr>"
        )
    if not rows:
        return "<h2>Attachments</h2><p>none</p>"
    heads = ["file", "size", "type", "attached by", "where", "may download"]
    return "<h2>Attachments</h2>" + _table(heads, rows)


def comment_form(sim: Simulator, instance: Instance, back: str, acting: str | None) -> str:
    """Comment as a chosen person (files: through the admin API)."""
    options = "".join(
        f"<option value='{escape(u.user_id)}'{' selected' if u.user_id == acting else ''}>"
        f"{escape(u.user_id)} ({escape(u.name)})</option>"
        for u in sim.world.users
        if u.active
    )
    return (
        f"<form method='post' action='{_path(instance, 'comment')}'>"
        f"<input type='hidden' name='back' value='{escape(back)}'>"
        f"<select name='userId' title='who comments'>{options}</select>"
        "<input name='text' placeholder='comment' size='30'><button>comment</button></form>"
    )


def index(sim: Simulator) -> str:
    """Every instance, newest first, with its form values and its actions."""
    heads = ["instance", "process", "title", "originator", "status", "form", "pending", ""]
    rows = []
    for i in reversed(sim.instances()):
        pending = ", ".join(dict.fromkeys(t.user_id for t in i.running_tasks()))
        link = f"<td><a href='{_path(i, 'view')}'>{escape(i.instance_id)}</a></td>"
        status = f"{i.status} {i.result}".strip()
        cells = _cells(i.process_code, i.title, i.originator, status)
        rows.append(
            f"<tr>{link}{cells}{form_values(i)}{_cells(pending)}"
            f"<td>{actions(sim, i, '/_sim/')}</td></tr>"
        )
    corp = escape(sim.world.corp.name)
    body = (
        f"<h1>DingTalk simulator — {corp}</h1>"
        f"<div id='live'>{_table(heads, rows)}"
        f"<small>instances: {len(rows)}; refreshes every {REFRESH_MS // 1000} s, except"
        " while a form is being filled in</small></div>"
        f"{start_forms(sim)}"
    )
    return _document("DingTalk simulator", body)


def instance_page(sim: Simulator, instance: Instance, task_id: str | None = None) -> str:
    """One instance: details, form, tasks (the one of ``task_id`` marked), records."""
    task = next((t for t in instance.tasks if str(t.task_id) == task_id), None)
    acting = task.user_id if task is not None and task.status == "RUNNING" else None
    i = instance
    details = [
        f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>"
        for k, v in (
            ("instance", i.instance_id),
            ("process", i.process_code),
            ("businessId", i.business_id),
            ("originator", f"{i.originator} ({i.dept_name})"),
            ("status", f"{i.status} {i.result}".strip()),
            ("created", _time(i.create_time)),
            ("finished", _time(i.finish_time)),
        )
    ]
    tasks = [
        f"<tr{' class=mine' if t is task else ''}>"
        + _cells(str(t.task_id), t.user_id, i.nodes[t.node_index].name, t.status, t.result)
        + _cells(_time(t.create_time), _time(t.finish_time))
        + "</tr>"
        for t in i.tasks
    ]
    records = [
        f"<tr>{_cells(_time(r.date), r.user_id, r.type, r.result, r.remark)}"
        f"{_cells(', '.join(a['fileName'] for a in r.attachments))}</tr>"
        for r in i.records
    ]
    back = f"{_path(i, 'view')}?taskId={quote(task_id)}" if task_id else _path(i, "view")
    body = (
        f"<p><a href='/_sim/'>all instances</a></p><h1>{escape(i.title)}</h1>"
        f"<div id='live'><table>{''.join(details)}</table>"
        f"<h2>Form</h2><table><tr>{form_values(i)}</tr></table>"
        f"<div>{actions(sim, i, back, acting)}</div><h2>Tasks</h2>"
        + _table(["taskId", "approver", "node", "status", "result", "created", "finished"], tasks)
        + "<h2>Records</h2>"
        + _table(["date", "user", "type", "result", "remark", "files"], records)
        + attachments(sim, i)
        + "</div>"
        + f"<h2>Comment</h2>{comment_form(sim, i, back, acting)}"
    )
    return _document(i.title, body)
