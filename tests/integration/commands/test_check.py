"""``syncd check`` names the real cause: a template DingTalk does not give is a
configuration problem (exit 2, the kind and its process code named); refused credentials
or an unreachable DingTalk mean nothing was checked (exit 1), and no process code is
blamed."""

from __future__ import annotations

from syncd.embedded import free_port

from .conftest import LEAVE_KIND, config_data

WRONG_SECRET = "not-the-app-secret-7f3a"


async def test_wrong_app_secret_names_the_credentials_not_the_process_code(world, cli, dingtalk):
    cli.configure(config_data(world.daemon_dsn, dingtalk={**dingtalk, "app_secret": WRONG_SECRET}))
    code, out, err = await cli("check")
    assert code == 1, out + err
    assert "DingTalk refused the app's credentials: check dingtalk.app_key and " in err
    assert "dingtalk.app_secret" in err and "no template was checked" in err
    assert "process_code" not in err and "kind leave: form mapping fits" not in out
    assert WRONG_SECRET not in out + err


async def test_a_wrong_process_code_is_a_configuration_problem(world, cli, dingtalk):
    kinds = {"leave": {**LEAVE_KIND, "process_code": "PROC-TYPO"}}
    cli.configure(config_data(world.daemon_dsn, kinds=kinds, dingtalk=dingtalk))
    code, _, err = await cli("check")
    assert code == 2 and "[kinds.leave] process_code 'PROC-TYPO'" in err
    assert "credentials" not in err


async def test_dingtalk_unreachable_exits_1(world, cli):
    nowhere = f"http://127.0.0.1:{free_port()}"
    urls = {"api_url": nowhere, "oapi_url": nowhere, "timeout": 2.0}
    cli.configure(config_data(world.daemon_dsn, dingtalk=urls))
    code, _, err = await cli("check")
    assert code == 1 and "DingTalk cannot be reached or is failing for now" in err
    assert "process_code" not in err
