"""Attachments out over drawn files, end to end, and files from a table joined by key.

Files are drawn (names with unicode, spaces and dots; 0 to 48 bytes; 0 to 4 per
component) and given three ways: in the payload (base64), by a path under ``base_dir``,
or as rows of a table of the application's joined by the business key. Whatever the
draw, the instance the simulator records holds a DDAttachment value naming exactly those
files (name, size, type) and its approval space holds their bytes. A table's file that
cannot be had parks the round with a message naming the table, the key and the column.
"""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from syncd.ports.attachments import extension
from tests.roles import DAEMON

from .conftest import Env
from .test_attachments import AGENT, CLAIM, KIND, fill_directory, row

TABLE_KIND: dict[str, Any] = {
    **KIND,
    "attachments": {
        "附件": {
            "table": "app.receipt",
            "key_column": "claim_key",
            "name_column": "file_name",
            "content_column": "content",
            "type_column": "file_type",
            "order_column": "seq",
            "required": False,
        }
    },
}
RECEIPTS = """
CREATE TABLE IF NOT EXISTS app.receipt (
    claim_key text NOT NULL, seq integer NOT NULL, file_name text, content bytea,
    file_type text, PRIMARY KEY (claim_key, seq));
GRANT SELECT ON app.receipt TO {daemon};
"""
STEM = st.text(st.sampled_from("abcXYZ019 .-_收据发票（）é"), min_size=1, max_size=12).filter(
    lambda s: s.strip(" .") == s.strip(" ") and not s.startswith(" ")
)
FILES = st.lists(
    st.tuples(STEM, st.sampled_from(["pdf", "png", "jpg", "txt"]), st.binary(max_size=48)),
    max_size=4,
    unique_by=lambda f: (f[0], f[1]),
)
_keys = itertools.count(1)


def daemon_settings(env: Env, base_dir: Path, **attachments: Any) -> Any:
    return env.settings(
        kinds={"expense": KIND, "expense_t": TABLE_KIND},
        dingtalk={"agent_id": AGENT},
        attachments={"base_dir": str(base_dir), **attachments},
    )


def put_files(env: Env, kind: str, key: str, files: list[tuple[str, bytes]], base: Path) -> None:
    """The claim and its files, as ``kind`` takes them (the table's rows or the payload)."""
    receipts: list[dict[str, str]] = []
    for n, (name, data) in enumerate(files):
        if kind == "expense_t":
            env.app_sql(
                "INSERT INTO app.receipt (claim_key, seq, file_name, content) "
                "VALUES (%s, %s, %s, %s)",
                key,
                n,
                name,
                data,
            )
        elif n % 2:
            (base / key).mkdir(exist_ok=True)
            (base / key / name).write_bytes(data)
            receipts.append({"name": name, "path": f"{key}/{name}"})
        else:
            receipts.append({"name": name, "content_base64": base64.b64encode(data).decode()})
    env.app_sql(
        "INSERT INTO syncd.outbox (kind, business_key, payload) VALUES (%s, %s, %s)",
        kind,
        key,
        Jsonb({**CLAIM, "receipts": receipts}),
    )


def instance_files(env: Env, key: str) -> tuple[list[dict[str, str]], list[bytes]]:
    """The instance's DDAttachment value and the bytes its files hold in the space."""
    [(instance_id,)] = env.sql(
        "SELECT instance_id FROM syncd.approval WHERE business_key = %s", key
    )
    instance = env.sim.instance(instance_id)
    values = [json.loads(c["value"]) for c in instance.form if c["name"] == "附件"]
    value = values[0] if values else []
    return value, [env.sim.storage.files[item["fileId"]].data for item in value]


@settings(
    max_examples=6,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # each example runs a daemon
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=FILES, kind=st.sampled_from(["expense", "expense_t"]))
async def test_drawn_files_arrive_as_they_are(
    env: Env, tmp_path: Path, drawn: list[tuple[str, str, bytes]], kind: str
) -> None:
    env.app_sql(RECEIPTS.format(daemon=DAEMON))
    key = f"k{next(_keys)}"
    files = [(f"{key} {stem}.{ext}", data) for stem, ext, data in drawn]  # unique in the space
    async with env.daemon(daemon_settings(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        put_files(env, kind, key, files, tmp_path)
        await daemon.drain()
    assert row(env, key)[:2] == ("running", None)
    value, stored = instance_files(env, key)
    assert [(i["fileName"], int(i["fileSize"]), i["fileType"]) for i in value] == [
        (name, len(data), extension(name)) for name, data in files
    ]
    assert stored == [data for _, data in files]


async def test_a_tables_file_that_cannot_be_had_parks_naming_table_key_and_column(
    env: Env, tmp_path: Path
) -> None:
    env.app_sql(RECEIPTS.format(daemon=DAEMON))
    required = {**TABLE_KIND["attachments"]["附件"], "required": True}
    missing_table = {**required, "table": "app.no_such_table"}
    kinds = {
        "need": {**KIND, "attachments": {"附件": required}},
        "ok": TABLE_KIND,
        "gone": {**KIND, "attachments": {"附件": missing_table}},
    }
    rows: dict[str, list[tuple[str, bytes | None, str | None]]] = {
        "t-null": [("a.pdf", None, None)],
        "t-big": [("big.pdf", b"x" * 20, None)],
        "t-noname": [(" ", b"x", None)],
        "t-typed": [("合同", b"%PDF", "application/pdf"), ("照片", b"\x89PNG", ".png")],
    }
    for key, files in rows.items():
        for n, (name, data, kind) in enumerate(files):
            env.app_sql(
                "INSERT INTO app.receipt VALUES (%s, %s, %s, %s, %s)", key, n, name, data, kind
            )
    cases = [("need", "t-none"), *(("ok", key) for key in rows), ("gone", "t-gone")]
    configured = env.settings(
        kinds=kinds, dingtalk={"agent_id": AGENT}, attachments={"max_file_size": 10}
    )
    async with env.daemon(configured) as daemon:
        await fill_directory(env, daemon)
        for kind, key in cases:
            env.app_sql(
                "INSERT INTO syncd.outbox (kind, business_key, payload) VALUES (%s, %s, %s)",
                kind,
                key,
                Jsonb(CLAIM),
            )
        await daemon.drain()
    where = "app.receipt where claim_key = "
    said = {key: row(env, key)[:3] for _, key in cases}
    assert said["t-none"] == (
        "invalid",
        "attachment_unavailable",
        f"attachment '附件': no file in {where}'t-none' (add the file, or set required = "
        "false for a component that may have none)",
    )
    assert (
        said["t-null"][2]
        == f"attachment '附件' file 1 in {where}'t-null' ('a.pdf'): content is NULL"
    )
    assert said["t-big"][1:] == (
        "attachment_refused",
        f"attachment '附件' file 1 in {where}'t-big' ('big.pdf'): content is 20 bytes, over "
        "the limit of 10",
    )
    assert (
        said["t-noname"][2] == f"attachment '附件' file 1 in {where}'t-noname': file_name is empty"
    )
    assert said["t-gone"][0] == "invalid"
    assert "table app.no_such_table does not exist" in said["t-gone"][2]
    assert said["t-typed"][:2] == ("running", None)
    value, stored = instance_files(env, "t-typed")
    assert [(i["fileName"], i["fileType"]) for i in value] == [
        ("合同.pdf", "pdf"),
        ("照片.png", "png"),
    ]
    assert stored == [b"%PDF", b"\x89PNG"]


async def test_a_departed_originator_parks_the_row_before_any_upload(
    env: Env, tmp_path: Path
) -> None:
    """u1 leaves the directory after the outbox row was written, before the submit."""
    async with env.daemon(daemon_settings(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        put_files(env, "expense", "gone-1", [("收据.pdf", b"%PDF"), ("b.png", b"png")], tmp_path)
        env.sql(  # as the directory records a departure (its personal data dropped)
            "UPDATE syncd.dingtalk_user SET left_at = now(), job_number = NULL, mobile = NULL,"
            " email = NULL, org_email = NULL WHERE user_id = 'u1'"
        )
        await daemon.drain()
    state, code, message = row(env, "gone-1")[:3]
    assert (state, code) == ("invalid", "attachment_originator_left")
    assert message.startswith("the originator 'u1' left the organisation")
    assert "nothing was uploaded" in message
    assert env.sim.storage.files == {} or all(
        f.creator != "u1" for f in env.sim.storage.files.values()
    )
    calls = env.sql("SELECT endpoint FROM syncd.approval_event WHERE event_type = 'call'")
    assert calls == [("schema",)]  # the form's schema only: no upload, no create
    assert env.sql("SELECT count(*) FROM syncd.attachment") == [(0,)]
