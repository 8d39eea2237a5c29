"""Registering a callback URL on the simulator proves it against syncd's real callback
endpoint (contract §9.5) before the first approval: the right keys register and carry
an outcome; a wrong aes key is refused with the reason, and nothing is pushed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from syncd.runner import Runner
from syncd.settings import Settings
from syncd.simulator.events import mobile_link
from tests.integration.pipeline.conftest import APP_KEY, Env

TOKEN = "simtoken123"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # the demo world's callback_aes_key
OTHER_AES_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlk9"
URL = "http://syncd/dingtalk/callback"


@pytest.fixture
async def admin(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator's admin API, in-process."""
    transport = httpx.ASGITransport(app=env.sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        yield client


def _settings(env: Env, aes_key: str) -> Settings:
    callback = {"enabled": True, "token": TOKEN, "aes_key": aes_key}
    return env.settings(events={"stream": False, "callback": callback})


async def _register(env: Env, admin: httpx.AsyncClient, daemon: Runner) -> httpx.Response:
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=daemon.app.http_app()), base_url="http://syncd"
    )
    env.sim.callbacks.set_client(http)
    return await admin.put(f"/_sim/apps/{APP_KEY}/callback", json={"url": URL})


async def test_the_daemon_answers_the_check_and_then_gets_the_events(env, admin) -> None:
    key = env.submit_leave(days=2)
    async with env.daemon(_settings(env, AES_KEY)) as daemon:
        r = await _register(env, admin, daemon)
        assert r.status_code == 200 and r.json() == {"appKey": APP_KEY, "url": URL}
        assert env.sql("SELECT count(*) FROM syncd.inbox") == [(0,)]  # a check is no event
        await daemon.drain()
        await env.advance(120)  # the leave rule approves after 30 s per node
        await daemon.drain()
    assert env.sql("SELECT approval_status FROM app.leave_request WHERE id = %s", key) == [
        ("APPROVED",)
    ]
    assert env.sql("SELECT DISTINCT channel FROM syncd.inbox") == [("callback",)]
    links = env.sql(  # the approval's link reaches the daemon with each instance event
        "SELECT DISTINCT payload->>'url' FROM syncd.inbox WHERE event_type = 'bpms_instance_change'"
    )
    [(instance_id,)] = env.sql("SELECT instance_id FROM syncd.approval")
    assert links == [(mobile_link(env.sim.world.corp.corp_id, instance_id),)]


async def test_a_wrong_aes_key_fails_the_registration(env, admin) -> None:
    async with env.daemon(_settings(env, OTHER_AES_KEY)) as daemon:
        r = await _register(env, admin, daemon)
    assert r.status_code == 400 and r.json()["reason"] == "reply"
    error = r.json()["error"]
    assert error.startswith(f"callback URL not registered: {URL} answered the check_url push")
    assert "HTTP 403" in error and "aes_key" in error
    assert AES_KEY not in error and OTHER_AES_KEY not in error and TOKEN not in error
    assert env.sim.callbacks.url(APP_KEY) is None and env.sim.events_pushed == []
