"""Attachments back, ``to = "links"``: once the instance is decided, the business row's
column holds each file's download link (valid 15 minutes) and metadata as JSON, written
after the outcome, and each link gives the file's bytes as the simulator stores them;
a business row that is missing releases the round to be tried again."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from .conftest import Env
from .test_attachments import AGENT, KIND, fill_directory, inline, submit
from .test_attachments_back import decide_with_comment, outcomes, stored

CREATE = """
CREATE TABLE app.claim_links (key text PRIMARY KEY, status text, file_links jsonb);
GRANT USAGE ON SCHEMA app TO syncd_daemon;
GRANT SELECT (key), UPDATE (status, file_links) ON app.claim_links TO syncd_daemon;
"""
WRITE_BACK = {"table": "app.claim_links", "key_column": "key", "columns": {"status": "status"}}


def links_settings(env: Env, tmp_path: Path) -> Any:
    back = {"to": "links", "column": "file_links"}
    kind = {**KIND, "write_back": WRITE_BACK, "attachments_back": back}
    return env.settings(
        kinds={"expense": kind},
        dingtalk={"agent_id": AGENT},
        attachments={"base_dir": str(tmp_path)},
    )


async def test_the_links_land_in_the_business_row_and_give_the_bytes(
    env: Env, tmp_path: Path
) -> None:
    env.app_sql(CREATE)
    env.app_sql("INSERT INTO app.claim_links (key) VALUES ('c1')")
    receipt = "收据".encode() * 50
    async with env.daemon(links_settings(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        submit(env, "c1", inline("收据.png", receipt), inline("empty.txt", b""))
        approver = await decide_with_comment(env, daemon, [("核对.pdf", b"%PDF checked")])
    [(status, links)] = env.app_sql("SELECT status, file_links FROM app.claim_links")
    assert status == "approved"
    by_name = {link["name"]: link for link in links}
    assert set(by_name) == {"收据.png", "empty.txt", "核对.pdf"}
    assert (by_name["核对.pdf"]["attached_in"], by_name["核对.pdf"]["attached_by"]) == (
        "comment",
        approver,
    )
    assert by_name["empty.txt"]["url"] is None  # a zero-byte file has no link (§17.7)
    now = env.clock.now()
    fetched = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=env.sim.app)) as http:
        for link in links:
            expires = datetime.fromisoformat(link["expires_at"]) if link["url"] else None
            assert expires is None or now < expires <= now + timedelta(minutes=15)
            data = (await http.get(link["url"])).content if link["url"] else b""
            fetched.append((link["name"], link["size"], link["attached_by"], data))
    assert sorted(fetched) == stored(env)
    recorded = env.sql("SELECT state, stored_as, count(*) FROM syncd.attachment_in GROUP BY 1, 2")
    assert recorded == [("linked", "app.claim_links.file_links", 3)]
    assert outcomes(daemon) == {"fetched": 0, "linked": 3, "failed": 0}
    [(done,)] = env.sql("SELECT count(*) FROM syncd.attachment_fetch WHERE done_at IS NOT NULL")
    assert done == 1


async def test_a_missing_business_row_is_tried_again(env: Env, tmp_path: Path) -> None:
    env.app_sql(CREATE)
    async with env.daemon(links_settings(env, tmp_path)) as daemon:
        await fill_directory(env, daemon)
        submit(env, "c2", inline("a.pdf", b"%PDF a"))
        await decide_with_comment(env, daemon, [])
        [(error, done)] = env.sql("SELECT last_error, done_at FROM syncd.attachment_fetch")
        assert done is None and "no row of app.claim_links has key = 'c2'" in error
        env.app_sql("INSERT INTO app.claim_links (key) VALUES ('c2')")
        await env.advance(3600)
        await daemon.drain()
    [(links,)] = env.app_sql("SELECT file_links FROM app.claim_links")
    assert [link["name"] for link in links] == ["a.pdf"]
    assert env.sql("SELECT state FROM syncd.attachment_in") == [("linked",)]
