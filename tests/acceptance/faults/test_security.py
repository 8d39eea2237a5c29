"""Security under a running daemon: forged and replayed callbacks, what the daemon's
least-privilege role may not do, identifiers and values from configuration and payload
that try to inject SQL. (No secret in any log line is checked by the ``fault_env``
fixture for every test; every scenario's daemons run as ``syncd_daemon``.)"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import psycopg
import pytest

from syncd.dingtalk.crypto import CallbackCrypto, random_nonce
from syncd.embedded import free_port

from .harness import (
    APP_KEY,
    PROCESS_CODE,
    Report,
    query,
    syncd_command,
    timed,
    wait_settled,
)


def callback(crypto: CallbackCrypto, message: dict[str, object], *, age: float = 0.0):
    """Query parameters and body of a push as DingTalk signs and encrypts it."""
    encrypted = crypto.encrypt(json.dumps(message, ensure_ascii=False))
    timestamp, nonce = str(int((time.time() - age) * 1000)), random_nonce(8)
    signature = crypto.sign(timestamp, nonce, encrypted)
    params = {"signature": signature, "msg_signature": signature}
    return params | {"timestamp": timestamp, "nonce": nonce}, {"encrypt": encrypted}


def refuse(instance_id: str, event_id: str) -> dict[str, object]:
    """A finish event that would turn an approved request into a refused one."""
    return {
        "EventType": "bpms_instance_change",
        "eventId": event_id,
        "processInstanceId": instance_id,
        "processCode": PROCESS_CODE,
        "type": "finish",
        "result": "refuse",
        "finishTime": int(time.time() * 1000),
    }


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_forged_and_replayed_callbacks_are_rejected(fault_env):
    env = fault_env
    keys = env.keys
    port = free_port()
    fleet = env.fleet(stream=False, callback=True, http_port=port)
    url = f"http://127.0.0.1:{port}/dingtalk/callback"
    env.sim.callbacks.set_url(APP_KEY, url)
    await fleet.start("a")
    await query(
        env.app_dsn,
        "INSERT INTO app.leave_request (applicant, days, reason, status) "
        "VALUES ('u1', 1, 'rest', 'submitted')",
    )
    await wait_settled(env.admin_dsn, 1, 60)
    [(instance_id, written, error)] = await query(
        env.admin_dsn, "SELECT instance_id, written_back_at, last_error_message FROM syncd.approval"
    )
    assert instance_id, error
    real = CallbackCrypto(keys.callback_token, keys.aes_key, APP_KEY)
    forged = {
        "wrong token": CallbackCrypto("not-the-token", keys.aes_key, APP_KEY),
        "wrong aes key": CallbackCrypto(keys.callback_token, "b" * 43, APP_KEY),
        "wrong owner": CallbackCrypto(keys.callback_token, keys.aes_key, "dingotherapp"),
    }
    statuses: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for name, crypto in forged.items():
            params, body = callback(crypto, refuse(instance_id, f"forged-{len(statuses)}"))
            statuses[name] = (await http.post(url, params=params, json=body)).status_code
        params, body = callback(real, refuse(instance_id, "forged-stale"), age=3600)
        statuses["stale timestamp"] = (await http.post(url, params=params, json=body)).status_code
        params, body = callback(real, refuse(instance_id, "forged-tampered"))
        body["encrypt"] = body["encrypt"][:-8] + "AAAAAAA="
        statuses["tampered body"] = (await http.post(url, params=params, json=body)).status_code
        statuses["not json"] = (await http.post(url, params=params, content=b"{")).status_code
        # A genuine push (as DingTalk would send it): accepted once, refused when replayed.
        task = {"EventType": "bpms_task_change", "eventId": "genuine-1", "type": "start"}
        params, body = callback(real, task | {"processInstanceId": instance_id})
        first = (await http.post(url, params=params, json=body)).status_code
        statuses["replayed"] = (await http.post(url, params=params, json=body)).status_code
        upper = {key: value.upper() for key, value in params.items() if "signature" in key}
        replay = params | upper
        statuses["replayed, upper case"] = (
            await http.post(url, params=replay, json=body)
        ).status_code
        metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    assert first == 200
    counted = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("syncd_callbacks_rejected_total{")
    ]
    assert sum(counted) == len(statuses), metrics
    assert all(status in (400, 403) for status in statuses.values()), statuses
    assert await fleet.stop("a") == 0
    stored = await query(env.admin_dsn, "SELECT payload->>'eventId' FROM syncd.inbox")
    assert not [e for (e,) in stored if e and e.startswith("forged")]
    assert [e for (e,) in stored if e == "genuine-1"] == ["genuine-1"]
    after = await query(env.admin_dsn, "SELECT state, written_back_at FROM syncd.approval")
    assert after == [("approved", written)]
    rejected = [
        line for line in fleet.log_text().splitlines() if '"action": "callback_rejected"' in line
    ]
    assert len(rejected) == len(statuses)
    Report(
        "forged and replayed callbacks",
        approvals=1,
        approved=1,
        faults={"rejected": statuses, "accepted_genuine": 1},
        invariants="hold",
    ).emit()


ODD_TABLE = """
CREATE TABLE app."Leave_Q_Requests" (
    "Order No" serial PRIMARY KEY,
    applicant text NOT NULL,
    leave_type text NOT NULL DEFAULT '年假',
    start_date date NOT NULL DEFAULT '2026-01-10',
    end_date date NOT NULL DEFAULT '2026-01-11',
    days numeric NOT NULL,
    reason text,
    status text NOT NULL DEFAULT 'draft',
    "user" text,
    "select" text
);
"""

#: Identifiers that need quoting, and a status value that tries to end the statement.
ODD_WRITE_BACK = """table = "app.Leave_Q_Requests"
key_column = "Order No"
columns = { user = "status", select = "instance_id" }
status_map = { approved = "ok'); DROP TABLE app.writes; --", rejected = "no" }"""

#: What the table's owner, the application, grants the daemon (USAGE on app it has).
APP_GRANTS = """
GRANT SELECT ("Order No"), UPDATE ("user", "select") ON app."Leave_Q_Requests" TO syncd_daemon;
"""


async def _run_cli(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        syncd_command(),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin"},
    )
    out, _ = await process.communicate()
    return int(process.returncode or 0), out.decode()


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_least_privilege_role_and_quoted_identifiers(fault_env):
    env = fault_env
    total = 40
    report = Report("least-privilege role, identifiers that need quoting, SQL-like config value")
    # The application makes the table, moves its capture there (one capture per kind: the
    # trigger name is per kind) and grants the daemon the key and the two columns.
    async with await psycopg.AsyncConnection.connect(env.app_dsn, autocommit=True) as conn:
        await conn.execute(ODD_TABLE)
        await conn.execute(APP_GRANTS)
    code, out = await _run_cli(
        "capture", "remove", "--dsn", env.app_dsn, "--kind", "leave",
        "--table", "app.leave_request",
    )  # fmt: skip
    assert code == 0, out
    code, out = await _run_cli(
        "capture", "add", "--dsn", env.app_dsn, "--kind", "leave",
        "--table", 'app."Leave_Q_Requests"', "--key", "Order No",
        "--when", "NEW.status = 'submitted'",
    )  # fmt: skip
    assert code == 0, out
    await _least_privilege_run(env, env.dsn, total, report)
    report.emit()


async def _least_privilege_run(env, role_dsn: str, total: int, report: Report) -> None:
    fleet = env.fleet(role_dsn, write_back=ODD_WRITE_BACK)
    async with timed(report):
        await fleet.start("least")
        await query(
            env.app_dsn,
            'INSERT INTO app."Leave_Q_Requests" (applicant, days, reason, status) '
            "SELECT 'u' || (1 + i %% 6), 1 + i %% 4, 'rest', 'submitted' "
            "  FROM generate_series(0, %s) i",
            [total - 1],
        )
        await wait_settled(env.admin_dsn, total, 120)
        assert await fleet.stop("least") == 0
    rows = await query(
        env.admin_dsn,
        'SELECT "user", days, "select" FROM app."Leave_Q_Requests" ORDER BY "Order No"',
    )
    for status, days, instance_id in rows:
        assert status == ("ok'); DROP TABLE app.writes; --" if days <= 3 else "no")
        assert instance_id
    assert len({r[2] for r in rows}) == total == len(env.sim.instances())
    assert await query(env.admin_dsn, "SELECT count(*) FROM app.writes") == [(0,)]  # still there
    # What the role may not do.
    async with await psycopg.AsyncConnection.connect(role_dsn, autocommit=True) as conn:
        for statement in (
            "UPDATE app.\"Leave_Q_Requests\" SET status = 'x'",
            "SELECT * FROM app.leave_request",
            "CREATE TABLE syncd.x (a int)",
            "DELETE FROM syncd.schema_migrations",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await conn.execute(statement)
    # An identifier from configuration that tries to inject: refused at start, exit 2.
    evil = ODD_WRITE_BACK.replace(
        'select = "instance_id"', '"x\\"; DROP TABLE app.writes; --" = "status"'
    )
    bad = env.fleet(role_dsn, write_back=evil)
    replica = await bad.start("evil", ready=False)
    async with asyncio.timeout(30):
        assert await replica.process.wait() == 2
    assert "has no column" in bad.log_text()
    assert await query(env.admin_dsn, "SELECT count(*) FROM app.writes") == [(0,)]
    report.approvals = total
    report.approved = sum(1 for r in rows if r[1] <= 3)
    report.rejected = total - report.approved
    report.instances = len(env.sim.instances())
    report.faults = {"role": "syncd_daemon (password in the DSN)", "denied_statements": 4}
    report.invariants = "hold"
