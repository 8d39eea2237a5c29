"""Files on outgoing comments, end to end: the daemon as ``syncd_daemon``, the simulator as
DingTalk. A comment row's files (base64 in the payload, a path under base_dir) are
uploaded into the commenting user's approval space and the comment carries them; a crash
after the commit and before the comment call uploads nothing again; a file that cannot be
had fails the comment with a message naming it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.app_comments import comment_stage

from .conftest import Env
from .test_attachments import AGENT, fill_directory, inline
from .test_attachments_back import NAMES


def comment(env: Env, key: int, text: str, files: list[dict[str, str]]) -> None:
    env.app_sql(
        "INSERT INTO syncd.outbox (kind, business_key, action, payload) "
        "VALUES ('leave', %s, 'comment', %s)",
        str(key),
        json.dumps({"text": text, "files": files}),
    )


def config(env: Env, base_dir: Path) -> Any:
    return env.settings(dingtalk={"agent_id": AGENT}, attachments={"base_dir": str(base_dir)})


def commented(env: Env) -> list[tuple[str, str, list[tuple[str, bytes, str]]]]:
    """The simulator's ADD_REMARK records: user, text, and each file's name, bytes, creator."""
    [(instance_id,)] = env.sql("SELECT instance_id FROM syncd.approval")
    records = env.sim.instance(instance_id).records
    out = []
    for r in records:
        if r.type == "ADD_REMARK":
            files = [env.sim.storage.files[a["fileId"]] for a in r.attachments]
            named = [a["fileName"] for a in r.attachments]
            out.append(
                (
                    r.user_id,
                    r.remark,
                    [(n, f.data, f.creator) for n, f in zip(named, files, strict=True)],
                )
            )
    return out


async def test_a_comments_files_reach_the_instance_byte_for_byte(env: Env, tmp_path: Path) -> None:
    receipt = "收据".encode() * 100 + bytes(range(256))
    (tmp_path / "发票.pdf").write_bytes(b"%PDF-1.7 invoice")
    key = env.submit_leave(applicant="u1")
    async with env.daemon(config(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        await daemon.drain()
        files = [inline("收据.png", receipt), {"name": "发票.pdf", "path": "发票.pdf"}]
        comment(env, key, "附上收据", files)
        await daemon.drain()
    assert commented(env) == [
        ("u1", "附上收据", [("收据.png", receipt, "u1"), ("发票.pdf", b"%PDF-1.7 invoice", "u1")])
    ]
    assert env.sql("SELECT state, sent_as FROM syncd.comment") == [("sent", "u1")]
    [(kept,)] = env.sql("SELECT files FROM syncd.comment")  # the bytes are not kept
    assert kept == [{"name": "收据.png"}, {"name": "发票.pdf", "path": "发票.pdf"}]
    assert env.sql("SELECT file_index, file_size FROM syncd.comment_file ORDER BY 1") == [
        (0, len(receipt)),
        (1, 16),
    ]


async def test_a_crash_after_the_upload_and_before_the_comment_uploads_nothing_again(
    env: Env, tmp_path: Path
) -> None:
    key = env.submit_leave(applicant="u1")
    async with env.daemon(config(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        await daemon.drain()
        comment(env, key, "once", [inline("a.pdf", b"%PDF a"), inline("b.pdf", b"%PDF b")])
        await daemon.app.stages["ingest"].run_once()
        stage = comment_stage(daemon.app)
        now = env.clock.now()
        [item] = await stage.store.claim_comments(
            5, now, "dead-replica", now + timedelta(seconds=1)
        )
        assert stage.files is not None
        await stage.files.attachments(item, "u1", [])  # both committed, then: killed
        assert env.sim.calls["storage.commit"] == 2
        await env.advance(2)  # the lease ends (before the simulator decides)
        await daemon.drain()
    assert env.sim.calls["storage.commit"] == 2  # nothing uploaded again
    assert commented(env) == [
        ("u1", "once", [("a.pdf", b"%PDF a", "u1"), ("b.pdf", b"%PDF b", "u1")])
    ]
    assert env.sql("SELECT state, attempts FROM syncd.comment") == [("sent", 2)]


async def test_a_file_that_cannot_be_had_fails_the_comment_naming_it(
    env: Env, tmp_path: Path
) -> None:
    key = env.submit_leave(applicant="u1")
    async with env.daemon(config(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        await daemon.drain()
        comment(env, key, "missing", [{"name": "gone.pdf", "path": "gone.pdf"}])
        comment(env, key, "no name", [{"path": "x.pdf"}])
        await daemon.drain()
    assert commented(env) == []
    rows = env.sql(
        "SELECT state, last_error_code, last_error_message FROM syncd.comment ORDER BY id"
    )
    assert [r[:2] for r in rows] == [
        ("failed", "attachment_unavailable"),
        ("failed", "bad_comment"),
    ]
    assert "'gone.pdf' (gone.pdf): cannot be read" in rows[0][2]
    assert "payload: files: file 1 must be an object with name" in rows[1][2]


async def test_an_upload_that_failed_leaves_the_comment_unsent_and_not_in_doubt(
    env: Env, tmp_path: Path
) -> None:
    key = env.submit_leave(applicant="u1")
    env.sim.faults.update(error_5xx_rate=1.0, endpoints=["storage.commit"])
    async with env.daemon(config(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        await daemon.drain()
        comment(env, key, "retry", [inline("a.pdf", b"%PDF a")])
        await daemon.drain()
        [(state, in_doubt, code)] = env.sql(
            "SELECT state, in_doubt, last_error_code FROM syncd.comment"
        )
        assert (state, in_doubt) == ("waiting", False) and code
        assert env.sql("SELECT count(*) FROM syncd.comment_file") == [(0,)]
        env.sim.faults.reset()
        await env.advance(2)
        await daemon.drain()
    assert commented(env) == [("u1", "retry", [("a.pdf", b"%PDF a", "u1")])]
    assert env.sql("SELECT state, in_doubt FROM syncd.comment") == [("sent", False)]


async def test_a_lost_commit_answer_is_adopted_for_a_comments_file(
    env: Env, tmp_path: Path
) -> None:
    key = env.submit_leave(applicant="u1")
    env.sim.faults.update(response_lost_rate=1.0, endpoints=["storage.commit"])
    async with env.daemon(config(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        await daemon.drain()
        comment(env, key, "lost", [inline("a.pdf", b"%PDF a")])
        await daemon.drain()
        assert env.sql("SELECT state FROM syncd.comment") == [("waiting",)]
        env.sim.faults.reset()
        await env.advance(2)
        await daemon.drain()
    assert commented(env) == [("u1", "lost", [("a.pdf", b"%PDF a", "u1")])]
    assert [f.name for f in env.sim.storage.files.values()] == ["a.pdf"]
    assert env.sql("SELECT count(*) FROM syncd.upload_intent") == [(0,)]


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(files=st.lists(st.tuples(NAMES, st.binary(max_size=2048)), min_size=1, max_size=3))
async def test_any_names_and_contents_reach_the_comment_as_sent(
    env: Env, tmp_path: Path, files: list[tuple[str, bytes]]
) -> None:
    env.sql("TRUNCATE syncd.approval CASCADE")
    env.sim.workflow.instances.clear()
    named = [(f"{name}.bin", data) for name, data in files]
    key = env.submit_leave(applicant="u1")
    async with env.daemon(config(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        await daemon.drain()
        comment(env, key, "files", [inline(n, d) for n, d in named])
        await daemon.drain()
    assert commented(env) == [("u1", "files", [(n, d, "u1") for n, d in named])]
