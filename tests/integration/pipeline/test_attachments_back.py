"""Attachments back, end to end: the daemon as ``syncd_daemon`` on PostgreSQL, the
simulator as DingTalk. An expense claim with receipts (uploaded by syncd) and an
approver's comment with a file: once the instance is decided, the business table (or the
directory) holds exactly those files, byte for byte as the simulator stores them, with
who attached them and where; each file once, whatever crashes or expired links come
between; the grant, the links and the GETs are paced and counted.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.dingtalk.pacing import MemoryPacer

from .conftest import Env
from .test_attachments import AGENT, CLAIM, KIND, fill_directory, inline, submit

TABLE = "app.expense_file"
CREATE = f"""
CREATE TABLE {TABLE} (
    business_key text NOT NULL, file_id text NOT NULL, file_name text NOT NULL,
    file_size bigint NOT NULL, file_type text NOT NULL, attached_by text,
    attached_at timestamptz, attached_in text NOT NULL, content bytea NOT NULL
);
GRANT USAGE ON SCHEMA app TO syncd_daemon;
GRANT INSERT ON {TABLE} TO syncd_daemon;
"""


def back_settings(env: Env, tmp_path: Path, **back: Any) -> Any:
    kind = {**KIND, "attachments_back": back or {"to": "table", "table": TABLE}}
    return env.settings(
        kinds={"expense": kind},
        dingtalk={"agent_id": AGENT},
        attachments={"base_dir": str(tmp_path)},
    )


def stored(env: Env) -> list[tuple[Any, ...]]:
    """What the simulator stores of the instance's files: the form's, then comments'."""
    [instance] = env.sim.instances(process_code="PROC-SIM-EXPENSE")
    ids = list(instance.files) + env.sim.workflow.comment_files(instance)
    files = [env.sim.storage.files[i] for i in ids]
    return sorted((f.name, f.size, f.creator, bytes(f.data)) for f in files)


def outcomes(daemon: Any) -> dict[str, float]:
    """``syncd_attachments_back_total`` by outcome."""
    registry = daemon.app.registry
    return {
        o: registry.get_sample_value("syncd_attachments_back_total", {"outcome": o})
        for o in ("fetched", "linked", "failed")
    }


def table(env: Env) -> list[tuple[Any, ...]]:
    rows = env.app_sql(
        f"SELECT file_name, file_size, attached_by, content, attached_in, business_key,"
        f" file_type FROM {TABLE}"
    )
    return sorted(rows)


async def decide_with_comment(env: Env, daemon: Any, comment_files: list[tuple[str, bytes]]) -> str:
    await daemon.drain()
    [instance] = env.sim.instances(process_code="PROC-SIM-EXPENSE")
    approver = next(t.user_id for t in env.sim.instance(instance.instance_id).tasks
                    if t.status == "RUNNING")  # fmt: skip
    env.sim.comment(instance.instance_id, approver, "收据看过了", comment_files)
    while env.sim.instance(instance.instance_id).status == "RUNNING":
        env.sim.approve(instance.instance_id)
    await env.advance(3600)  # the poll finds it decided
    await daemon.drain()
    return approver


async def test_files_of_the_form_and_comments_land_in_the_table(env: Env, tmp_path: Path) -> None:
    env.app_sql(CREATE)
    receipt = "收据".encode() * 50 + bytes(range(256))
    async with env.daemon(back_settings(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        submit(env, "c1", inline("收据.png", receipt), inline("empty.txt", b""))
        approver = await decide_with_comment(env, daemon, [("核对.pdf", b"%PDF checked")])
    [(state,)] = env.sql("SELECT state FROM syncd.approval")
    assert state == "approved"
    rows = table(env)
    assert sorted(r[:4] for r in rows) == stored(env)
    assert {(r[0], r[4]) for r in rows} == {
        ("收据.png", "附件"), ("empty.txt", "附件"), ("核对.pdf", "comment"),
    }  # fmt: skip
    assert {r[2] for r in rows} == {"u1", approver}
    assert {r[5] for r in rows} == {"c1"}
    recorded = env.sql("SELECT state, count(*) FROM syncd.attachment_in GROUP BY state")
    assert recorded == [("fetched", 3)]
    [(done,)] = env.sql("SELECT count(*) FROM syncd.attachment_fetch WHERE done_at IS NOT NULL")
    assert done == 1
    calls = [e for (e,) in env.sql(
        "SELECT endpoint FROM syncd.approval_event WHERE event_type = 'call'"
        " AND endpoint IN ('grant_download', 'download_url', 'download') ORDER BY id"
    )]  # fmt: skip
    assert calls.count("grant_download") == 1
    assert calls.count("download_url") == 3
    assert calls.count("download") == 2  # a zero-byte file has no link (§17.7)
    [(usage,)] = env.sql("SELECT sum(calls) FROM syncd.usage WHERE purpose = 'attach_back'")
    assert usage == 1 + 1 + 3  # GET, grant, links: the GETs of the bytes are free


async def test_files_land_in_a_directory_with_sidecars(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    back = {"to": "directory", "directory": str(out)}
    async with env.daemon(back_settings(env, tmp_path, **back)) as daemon:
        await fill_directory(env, daemon)
        submit(env, "c/../1", inline("a b.pdf", b"%PDF a"))
        await decide_with_comment(env, daemon, [("a:b?.png", b"png")])
    files = sorted(p for p in out.rglob("*") if p.is_file() and not p.name.endswith(".json"))
    assert all(p.is_relative_to(out / "expense") for p in files)
    assert sorted(p.read_bytes() for p in files) == [b"%PDF a", b"png"]
    sidecars = [json.loads(p.with_name(p.name + ".json").read_text()) for p in files]
    assert sorted(s["name"] for s in sidecars) == ["a b.pdf", "a:b?.png"]
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temp file left


async def test_a_crash_between_the_rename_and_the_record_writes_the_same_file_again(
    env: Env, tmp_path: Path
) -> None:
    """Directory mode: the record of the first file fails after its rename (as a crash
    there would); the next pass writes it again over itself, under the same name, and
    records each file once."""
    out = tmp_path / "out"
    out.mkdir()
    env.sql(  # the first record fails after the file is in place
        "CREATE SEQUENCE syncd.fail_once;"
        "CREATE FUNCTION syncd.fail_once() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$"
        " BEGIN IF nextval('syncd.fail_once') = 1 THEN RAISE EXCEPTION 'crash'; END IF;"
        " RETURN NEW; END $$;"
        "CREATE TRIGGER fail_once BEFORE INSERT ON syncd.attachment_in"
        " FOR EACH ROW EXECUTE FUNCTION syncd.fail_once();"
    )
    back = {"to": "directory", "directory": str(out)}
    async with env.daemon(back_settings(env, tmp_path, **back)) as daemon:
        await fill_directory(env, daemon)
        submit(env, "c1", inline("a.pdf", b"%PDF a"), inline("b.pdf", b"%PDF b"))
        await decide_with_comment(env, daemon, [])
        assert len(list(out.rglob("*.pdf"))) == 1  # renamed into place, then not recorded
        assert env.sql("SELECT count(*) FROM syncd.attachment_in") == [(0,)]
        await env.advance(3600)
        await daemon.drain()
    files = sorted(p for p in out.rglob("*") if p.is_file() and not p.name.endswith(".json"))
    assert sorted(p.read_bytes() for p in files) == [b"%PDF a", b"%PDF b"]
    assert len(list(out.rglob("*.json"))) == 2
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temp file left
    recorded = env.sql("SELECT file_name, stored_as FROM syncd.attachment_in ORDER BY 1")
    assert [r[0] for r in recorded] == ["a.pdf", "b.pdf"]
    assert sorted(str(p) for p in files) == sorted(r[1] for r in recorded)
    assert outcomes(daemon) == {"fetched": 2, "linked": 0, "failed": 0}


async def test_a_crash_between_the_download_and_its_record_duplicates_nothing(
    env: Env, tmp_path: Path
) -> None:
    """The record and the business row commit together: a failure of that transaction
    leaves neither, and the next run fetches and inserts the file once."""
    env.app_sql(CREATE)
    env.app_sql(  # the first insert fails, as a crash before the commit would
        "CREATE SEQUENCE app.fail_once;"
        "CREATE FUNCTION app.fail_once() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$"
        " BEGIN IF nextval('app.fail_once') = 1 THEN RAISE EXCEPTION 'crash'; END IF;"
        " RETURN NEW; END $$;"
        f"CREATE TRIGGER fail_once BEFORE INSERT ON {TABLE}"
        " FOR EACH ROW EXECUTE FUNCTION app.fail_once();"
    )
    async with env.daemon(back_settings(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        submit(env, "c1", inline("a.pdf", b"%PDF a"), inline("b.pdf", b"%PDF b"))
        await decide_with_comment(env, daemon, [])
        [(attempts, owner, error)] = env.sql(
            "SELECT attempts, lease_owner, last_error FROM syncd.attachment_fetch"
        )  # released with backoff, not left to its lease
        assert (attempts, owner) == (1, None) and "StoreError" in error and "crash" in error
        await env.advance(3600)
        await daemon.drain()
    assert [r[0] for r in table(env)] == ["a.pdf", "b.pdf"]
    assert [n for (n,) in env.sql("SELECT count(*) FROM syncd.attachment_in")] == [2]
    assert outcomes(daemon) == {"fetched": 2, "linked": 0, "failed": 0}  # each once


async def test_an_expired_link_is_fetched_again(env: Env, tmp_path: Path) -> None:
    env.app_sql(CREATE)
    async with env.daemon(back_settings(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        submit(env, "c1", inline("a.pdf", b"%PDF a"))
        original = env.sim.storage.link

        def stale(file_id: str, base_url: str) -> dict[str, Any]:
            answer = original(file_id, base_url)
            env.sim.storage.link = original  # type: ignore[method-assign]
            env.clock.advance(15 * 60 + 1)  # the link expires before its GET
            return answer

        env.sim.storage.link = stale  # type: ignore[method-assign]
        await decide_with_comment(env, daemon, [])
    assert [r[:2] for r in table(env)] == [("a.pdf", 6)]
    links = env.sql("SELECT count(*) FROM syncd.approval_event WHERE endpoint = 'download_url'")
    assert links == [(2,)]


async def test_the_downloads_are_paced(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.app_sql(CREATE)
    acquired: list[str] = []
    acquire = MemoryPacer.acquire

    async def counted(self: MemoryPacer, name: str) -> None:
        acquired.append(name)
        await acquire(self, name)

    monkeypatch.setattr(MemoryPacer, "acquire", counted)
    async with env.daemon(back_settings(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        submit(env, "c1", inline("a.pdf", b"%PDF a"), inline("b.pdf", b"%PDF b"))
        await decide_with_comment(env, daemon, [])
    assert acquired.count("grant_download") == 1
    assert acquired.count("download_url") == 2
    assert acquired.count("download") == 2


NAMES = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='\t*"<>|/\\.'),
    min_size=1, max_size=20,
).map(lambda s: s.strip() or "x").filter(lambda s: s == s.strip())  # fmt: skip


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(files=st.lists(st.tuples(NAMES, st.binary(max_size=2048)), min_size=1, max_size=3,
                      unique_by=lambda f: f[0]))  # fmt: skip
async def test_any_names_and_contents_come_back_as_stored(
    env: Env, tmp_path: Path, files: list[tuple[str, bytes]]
) -> None:
    env.app_sql(f"DROP TABLE IF EXISTS {TABLE}; {CREATE}")
    env.sql("TRUNCATE syncd.approval CASCADE")
    env.sim.workflow.instances.clear()
    named = [(f"{name}.bin", data) for name, data in files]
    async with env.daemon(back_settings(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        submit(env, "c1", *(inline(n, d) for n, d in named))
        await decide_with_comment(env, daemon, [])
    assert sorted((r[0], r[1], r[3]) for r in table(env)) == sorted(
        (n, len(d), d) for n, d in named
    )


pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
_ = CLAIM


async def test_a_file_that_cannot_be_had_is_recorded_and_blocks_nothing(
    env: Env, tmp_path: Path
) -> None:
    env.app_sql(CREATE)
    async with env.daemon(back_settings(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        submit(env, "c1", inline("a.pdf", b"%PDF a"), inline("gone.pdf", b"%PDF gone"))
        await daemon.drain()
        [instance] = env.sim.instances(process_code="PROC-SIM-EXPENSE")
        del env.sim.storage.files[instance.files[1]]  # deleted from the space
        await decide_with_comment(env, daemon, [])
    assert env.sql("SELECT state FROM syncd.approval") == [("approved",)]
    assert [r[0] for r in table(env)] == ["a.pdf"]
    failed = env.sql("SELECT file_name, error_code FROM syncd.attachment_in WHERE state = 'failed'")
    assert failed == [("gone.pdf", "invalidFileInfos")]
    assert env.sql("SELECT count(*) FROM syncd.attachment_fetch WHERE done_at IS NOT NULL") == [
        (1,)
    ]
    assert outcomes(daemon) == {"fetched": 1, "linked": 0, "failed": 1}


async def test_since_leaves_out_rounds_finished_before_it(env: Env, tmp_path: Path) -> None:
    env.app_sql(CREATE)
    since = (env.clock.now() + timedelta(hours=2)).isoformat()
    settings = back_settings(env, tmp_path, to="table", table=TABLE, since=since)
    async with env.daemon(settings) as daemon:
        await fill_directory(env, daemon)
        submit(env, "before", inline("old.pdf", b"%PDF old"))
        await decide_with_comment(env, daemon, [])
        await env.advance(3700)
        submit(env, "after", inline("new.pdf", b"%PDF new"))
        await daemon.drain()
        [running] = [i for i in env.sim.instances() if i.status == "RUNNING"]
        while env.sim.instance(running.instance_id).status == "RUNNING":
            env.sim.approve(running.instance_id)
        await env.advance(3600)
        await daemon.drain()
    assert env.sql("SELECT state, count(*) FROM syncd.approval GROUP BY 1") == [("approved", 2)]
    assert [(r[0], r[5]) for r in table(env)] == [("new.pdf", "after")]
    fetched = env.sql(
        "SELECT a.business_key FROM syncd.attachment_fetch f"
        " JOIN syncd.approval a ON a.id = f.approval_id"
    )
    assert fetched == [("after",)]


async def test_a_round_that_keeps_failing_is_given_up_after_max_attempts(
    env: Env, tmp_path: Path
) -> None:
    """Every pass spends calls (the GET, the grants): a round whose grants always fail is
    tried ``pipeline.max_attempts`` times, then done with the error kept, and not again."""
    env.app_sql(CREATE)
    settings = back_settings(env, tmp_path).model_copy(
        update={"pipeline": env.settings().pipeline.model_copy(update={"max_attempts": 3})}
    )
    async with env.daemon(settings) as daemon:
        await fill_directory(env, daemon)
        submit(env, "c1", inline("a.pdf", b"%PDF a"))
        await daemon.drain()
        env.sim.faults.update(error_5xx_rate=1.0, endpoints=["workflow.authDownload"])
        await decide_with_comment(env, daemon, [])
        for _ in range(6):  # past every backoff, more passes than attempts allowed
            await env.advance(3600)
            await daemon.drain()
    [(attempts, done, error)] = env.sql(
        "SELECT attempts, done_at IS NOT NULL, last_error FROM syncd.attachment_fetch"
    )
    assert (attempts, done) == (3, True)
    assert error.startswith("given up after 3 attempts: ")
    grants = env.sql("SELECT count(*) FROM syncd.approval_event WHERE endpoint = 'grant_download'")
    assert grants == [(3,)]
    assert table(env) == []
