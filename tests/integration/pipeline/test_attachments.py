"""Attachments at submit, end to end: the daemon as ``syncd_daemon`` on PostgreSQL, the
simulator as DingTalk (its expense template has a DDAttachment component ``附件``), the
originator's unionId from the directory.

A file carried in the payload (base64) and one named by a path under ``base_dir`` end up
in the instance DingTalk records, byte for byte in its approval space; a create that
failed after the files were committed is retried with the recorded fileIds and uploads
nothing again; every file that cannot be had or would be refused parks the round with a
message naming it; each upload counts its three metered calls (purpose ``attach``).
"""

from __future__ import annotations

import base64
import json
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from syncd.simulator.directory import union_id

from .conftest import Env
from .test_people_lookup import directory_user, finish_sync

AGENT = 3000001  # the simulator's app (its default world)
KIND: dict[str, Any] = {
    "process_code": "PROC-SIM-EXPENSE",
    "originator": "applicant",
    "form": {"金额（元）": "amount", "费用类型": "category", "发生日期": "spent_on"},
    "attachments": {"附件": {"field": "receipts"}},
}
CLAIM: dict[str, Any] = {
    "applicant": "u1",
    "amount": "500",
    "category": "差旅",
    "spent_on": "2026-01-02",
}


def settings(env: Env, base_dir: Path, **attachments: Any) -> Any:
    return env.settings(
        kinds={"expense": KIND},
        dingtalk={"agent_id": AGENT},
        attachments={"base_dir": str(base_dir), **attachments},
    )


async def fill_directory(env: Env, runner: Any) -> None:
    """The simulator's people with their unionIds, as a full sync leaves them."""
    now = env.clock.now()
    users = [replace(directory_user(u), union_id=union_id(u)) for u in env.sim.world.users]
    await runner.app.lookup.save_users(users, now)
    finish_sync(env, now)


def submit(env: Env, key: str, *receipts: dict[str, str]) -> None:
    env.app_sql(
        "INSERT INTO syncd.outbox (kind, business_key, payload) VALUES ('expense', %s, %s)",
        key,
        Jsonb({**CLAIM, "receipts": list(receipts)}),
    )


def inline(name: str, data: bytes) -> dict[str, str]:
    return {"name": name, "content_base64": base64.b64encode(data).decode()}


def row(env: Env, key: str) -> tuple[Any, ...]:
    [found] = env.sql(
        "SELECT state, last_error_code, last_error_message, attempts FROM syncd.approval"
        " WHERE business_key = %s",
        key,
    )
    return found


def usage(env: Env, purpose: str) -> int:
    [(calls,)] = env.sql(
        "SELECT coalesce(sum(calls), 0) FROM syncd.usage WHERE purpose = %s", purpose
    )
    return int(calls)


async def test_files_from_the_payload_and_base_dir_are_in_the_instance(
    env: Env, tmp_path: Path
) -> None:
    receipt = "收据".encode() * 300 + bytes(range(256))
    (tmp_path / "2026").mkdir()
    (tmp_path / "2026" / "发票.pdf").write_bytes(b"%PDF-1.7 invoice")
    async with env.daemon(settings(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        submit(
            env, "c1", inline("收据.png", receipt), {"name": "发票.pdf", "path": "2026/发票.pdf"}
        )
        await daemon.drain()
    assert row(env, "c1")[:2] == ("running", None)
    [instance] = env.sim.instances(process_code="PROC-SIM-EXPENSE")
    [value] = [json.loads(c["value"]) for c in instance.form if c["name"] == "附件"]
    assert [item["fileName"] for item in value] == ["收据.png", "发票.pdf"]
    assert instance.files == [item["fileId"] for item in value]
    stored = [env.sim.storage.files[file_id] for file_id in instance.files]
    assert [f.data for f in stored] == [receipt, b"%PDF-1.7 invoice"]
    assert {f.creator for f in stored} == {"u1"}
    recorded = env.sql(
        "SELECT component, file_index, file_id, file_size FROM syncd.attachment ORDER BY file_index"
    )
    assert recorded == [
        ("附件", 0, instance.files[0], len(receipt)),
        ("附件", 1, instance.files[1], 16),
    ]
    calls = env.sql(
        "SELECT endpoint FROM syncd.approval_event WHERE event_type = 'call' ORDER BY id"
    )
    uploads = [e for (e,) in calls if e not in ("schema", "create")]
    assert uploads == ["space_info", "upload_info", "upload", "commit"] * 2
    assert usage(env, "attach") == 6  # space info, upload info, commit: the PUT is free
    [(spent,)] = env.sql("SELECT calls_spent FROM syncd.approval")
    assert spent == len(calls)


async def test_a_round_with_files_waits_for_the_first_full_sync_then_uploads(
    env: Env, tmp_path: Path
) -> None:
    """The originator's unionId comes from the directory: before its first full sync the
    round waits (pending, no attempt spent, nothing uploaded), as a look-up's does; after
    it, the files go up and the instance is created."""
    async with env.daemon(settings(env, tmp_path)) as daemon:
        submit(env, "w1", inline("收据.png", b"receipt"))
        await daemon.drain()
        state, code, message, attempts = row(env, "w1")
        assert (state, code, attempts) == ("pending", "directory_not_synced", 0)
        assert message == (
            "waiting for the directory's first full sync: uploads name the originator 'u1' "
            "by the unionId it holds"
        )
        assert env.sim.instances() == [] and env.sim.storage.files == {}
        await fill_directory(env, daemon)
        await env.advance(120)
        await daemon.drain()
    assert row(env, "w1")[:2] == ("running", None)
    [instance] = env.sim.instances(process_code="PROC-SIM-EXPENSE")
    assert [env.sim.storage.files[f].data for f in instance.files] == [b"receipt"]


async def test_a_create_that_failed_after_the_commits_reuses_the_files(
    env: Env, tmp_path: Path
) -> None:
    env.sim.faults.update(error_5xx_rate=1.0, endpoints=["workflow.create"])
    data = b"%PDF receipt"
    async with env.daemon(settings(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        submit(env, "c1", inline("a.pdf", data))
        await daemon.drain()
        assert row(env, "c1")[0] == "unknown"
        assert env.sim.instances() == []
        env.sim.faults.reset()
        await env.advance(11)  # unknown_grace: it was never created, so submitted again
        await daemon.drain()
    assert row(env, "c1")[0] == "running" and row(env, "c1")[3] == 2
    [instance] = env.sim.instances()
    [(file_id,)] = env.sql("SELECT file_id FROM syncd.attachment")
    assert instance.files == [file_id] and env.sim.storage.files[file_id].data == data
    assert (env.sim.calls["oss.put"], env.sim.calls["storage.commit"]) == (1, 1)
    assert usage(env, "attach") == 3


async def test_a_commit_whose_answer_was_lost_is_adopted_not_stored_again(
    env: Env, tmp_path: Path
) -> None:
    """DingTalk stored the file but its answer never came: the retry finds the upload begun
    (syncd.upload_intent), takes the file under the name as its own (same person, same
    size, stored since), and the instance names that one file; nothing is stored twice
    and nothing is left in doubt."""
    env.sim.faults.update(response_lost_rate=1.0, endpoints=["storage.commit"])
    data = b"%PDF receipt"
    async with env.daemon(settings(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        submit(env, "c1", inline("a.pdf", data))
        await daemon.drain()
        assert row(env, "c1")[0] != "running"
        assert [f.name for f in env.sim.storage.files.values()] == ["a.pdf"]
        assert env.sql("SELECT slot, attempts FROM syncd.upload_intent") == [("附件/0", 1)]
        env.sim.faults.reset()
        await env.advance(120)
        await daemon.drain()
    assert row(env, "c1")[0] == "running"
    [instance] = env.sim.instances()
    [(file_id,)] = env.sql("SELECT file_id FROM syncd.attachment")
    assert instance.files == [file_id]
    assert [f.name for f in env.sim.storage.files.values()] == ["a.pdf"]
    assert env.sim.storage.files[file_id].data == data
    assert env.sql("SELECT count(*) FROM syncd.upload_intent") == [(0,)]


def refusing_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_file_that_cannot_be_had_parks_its_round_naming_it(
    env: Env, tmp_path: Path
) -> None:
    base = tmp_path / "files"
    base.mkdir()
    (tmp_path / "secret.pdf").write_bytes(b"not yours")
    (base / "link.pdf").symlink_to(tmp_path / "secret.pdf")
    (base / "big.pdf").write_bytes(b"x" * 101)
    port = refusing_port()
    cases = {
        "not_allowed": ({"name": "a.pdf", "url": "https://files.example.com/a.pdf"}, "not in"),
        "refused": ({"name": "b.pdf", "url": f"http://127.0.0.1:{port}/b.pdf"}, "unreachable"),
        "parent": ({"name": "c.pdf", "path": "../secret.pdf"}, "outside"),
        "absolute": ({"name": "d.pdf", "path": str(tmp_path / "secret.pdf")}, "outside"),
        "symlink": ({"name": "e.pdf", "path": "link.pdf"}, "outside"),
        "oversize": ({"name": "f.pdf", "path": "big.pdf"}, "over the limit of 100"),
        "inline_oversize": (inline("g.pdf", b"y" * 101), "over the limit of 100"),
    }
    config = settings(env, base, allow_hosts=["127.0.0.1"], max_file_size=100)
    async with env.daemon(config) as daemon:
        await fill_directory(env, daemon)
        for key, (ref, _) in cases.items():
            submit(env, key, inline("ok.pdf", b"%PDF fine"), ref)
        await daemon.drain()
    for key, (ref, why) in cases.items():
        state, code, message, _ = row(env, key)
        assert state == "invalid", key
        assert code in ("attachment_unavailable", "attachment_refused"), key
        assert f"attachment '附件' file 2 {ref['name']!r}" in message and why in message, key
    assert env.sim.instances() == []
    assert env.sim.calls["oss.put"] == len(cases)  # each round's good first file only
