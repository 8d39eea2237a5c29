"""Secrets never reach logs, errors, metrics, probes or ``syncd config show``.

The log check reads the raw records, before the redacting handler, so it proves the code
never logs a secret rather than that the safety net hides it.
"""

from __future__ import annotations

import json
import logging

import httpx
import psycopg
import pytest

from syncd.app import App
from syncd.cli import main
from syncd.errors import SyncdError
from syncd.logging import JsonFormatter
from tests.integration.pipeline.conftest import settings_for

DSN_PASSWORD = "dsn-pw-5ecret-9a"
APP_SECRET = "wrong-app-secret-7f3k"  # refused by the simulator: the auth error path runs
TOKEN = "cb-token-5ecret-1z"
AES_KEY = "Zyxwvutsrqponmlkjihgfedcba9876543210ABCDEFG"
SECRETS = (DSN_PASSWORD, APP_SECRET, TOKEN, AES_KEY)


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


async def test_no_secret_in_logs_metrics_or_probes(env, caplog):
    caplog.set_level(logging.DEBUG)
    dsn = psycopg.conninfo.make_conninfo(env.daemon_dsn, password=DSN_PASSWORD)
    callback = {"enabled": True, "token": TOKEN, "aes_key": AES_KEY}
    settings = settings_for(
        dsn, dingtalk={"app_secret": APP_SECRET}, events={"stream": False, "callback": callback}
    )
    env.submit_leave()
    texts = []
    async with env.daemon(settings) as daemon:
        await daemon.drain()
        assert (await daemon.app.pause()) is not None  # the refused secret paused DingTalk calls
        transport = httpx.ASGITransport(app=daemon.app.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://syncd") as http:
            for path in ("/metrics", "/healthz", "/readyz"):
                texts.append((await http.get(path)).text)
        texts.append(repr(daemon.app.stream) + repr(daemon.app.client) + repr(daemon.app.http.auth))
    formatter = JsonFormatter()
    texts += [formatter.format(record) for record in caplog.records]
    assert any(getattr(r, "action", None) == "auth_paused" for r in caplog.records)
    assert leaks("\n".join(texts)) == []


async def test_no_secret_in_the_error_when_the_database_is_unreachable(env):
    dsn = f"postgresql://syncd:{DSN_PASSWORD}@127.0.0.1:1/nowhere?connect_timeout=1"
    settings = settings_for(dsn, dingtalk={"app_secret": APP_SECRET})
    with pytest.raises(SyncdError) as caught:
        async with App(settings):
            pass
    chain: list[str] = []
    exc: BaseException | None = caught.value
    while exc is not None:
        chain.append(f"{exc!s} {exc!r}")
        exc = exc.__cause__ or exc.__context__
    assert leaks("\n".join(chain)) == []


def test_no_secret_in_config_show(monkeypatch, capsys, tmp_path):
    secret_file = tmp_path / "app_secret"
    secret_file.write_text(APP_SECRET + "\n")
    monkeypatch.setenv("SYNCD_DATABASE__DSN", f"postgresql://syncd:{DSN_PASSWORD}@db/app")
    monkeypatch.setenv("SYNCD_DINGTALK__APP_SECRET_FILE", str(secret_file))
    monkeypatch.setenv("SYNCD_EVENTS__CALLBACK__ENABLED", "true")
    monkeypatch.setenv("SYNCD_EVENTS__CALLBACK__TOKEN", TOKEN)
    monkeypatch.setenv("SYNCD_EVENTS__CALLBACK__AES_KEY", AES_KEY)
    assert main(["config", "show"]) == 0
    out, err = capsys.readouterr()
    assert "********" in out
    assert leaks(out + err) == []


def test_a_password_given_with_dsn_is_warned_about_and_never_printed(env, capsys):
    dsn = psycopg.conninfo.make_conninfo(env.daemon_dsn, password=DSN_PASSWORD)
    assert main(["--log-format", "json", "migrate", "--check", "--dsn", dsn]) == 0
    out, err = capsys.readouterr()
    [warning] = [json.loads(line) for line in err.splitlines() if "dsn_password_argument" in line]
    assert warning["level"] == "warning"
    assert "process list" in warning["message"] and "DSN_FILE" in warning["message"]
    assert "pending: none" in out
    logging.getLogger("syncd.test").warning("connecting to %s", dsn, extra={"action": "x"})
    assert leaks(out + err + capsys.readouterr().err) == []


def test_a_dsn_without_a_password_on_the_command_line_is_not_warned_about(env, capsys):
    parts = psycopg.conninfo.conninfo_to_dict(env.daemon_dsn)
    parts.pop("password", None)
    dsn = psycopg.conninfo.make_conninfo("", **parts)
    assert main(["--log-format", "json", "migrate", "--check", "--dsn", dsn]) == 0
    assert "dsn_password_argument" not in capsys.readouterr().err
