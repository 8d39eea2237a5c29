"""Bad rows in the middle of the load: each parked with a precise error, the rest flows.

Values that look like SQL are not bad input: they go to DingTalk verbatim and the row is
approved and written back like any other.
"""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest

from .harness import (
    CORRELATION,
    FULL,
    Loader,
    Report,
    check_invariants,
    load,
    query,
    timed,
    wait_settled,
)

LEAVE = {
    "applicant": "u1",
    "leave_type": "年假",
    "start_date": "2026-01-10",
    "end_date": "2026-01-11",
    "days": 1,
    "reason": "rest",
}
SQLISH = "'); DROP TABLE app.leave_request; -- \" OR 1=1; $$ \\x00"

#: business key -> (kind, action, payload, the fragment its parked error must contain)
BAD: dict[str, tuple[str, str, dict[str, object], str]] = {
    "bad-kind": ("travel", "submit", {"x": 1}, "kind 'travel' is not configured"),
    "bad-action": (
        "leave",
        "archive",
        LEAVE,
        "'archive' is not 'submit', 'cancel' or 'comment'",
    ),
    "bad-missing": (
        "leave",
        "submit",
        {k: v for k, v in LEAVE.items() if k != "days"},
        "form '天数': payload has no value at 'days'",
    ),
    "bad-number": ("leave", "submit", {**LEAVE, "days": "three"}, "expected a number, got 'three'"),
    "bad-option": (
        "leave",
        "submit",
        {**LEAVE, "leave_type": "婚假"},
        "'婚假' is not an option; options are: 年假, 事假, 病假",
    ),
    "bad-originator": ("leave", "submit", {**LEAVE, "applicant": "ghost"}, "ghost"),
    "bad-huge": ("leave", "submit", {**LEAVE, "reason": "x" * 70000}, "DingTalk accepts at most"),
    "bad-sql-originator": ("leave", "submit", {**LEAVE, "applicant": SQLISH}, "DROP TABLE"),
}


@pytest.mark.slow
@pytest.mark.timeout(600 if FULL else 180)
async def test_bad_rows_are_parked_precisely_while_the_load_flows(fault_env):
    env = fault_env
    good = load(150, 1000)
    report = Report("bad input among good rows")
    fleet = env.fleet()
    loader = Loader(env.app_dsn, good, batch=10, pause=0.2)
    async with timed(report):
        await fleet.start("a")
        loader.start()
        async with await psycopg.AsyncConnection.connect(env.app_dsn, autocommit=True) as conn:
            for key, (kind, action, payload, _) in BAD.items():
                await asyncio.sleep(0.3)
                await conn.execute(
                    "INSERT INTO syncd.outbox (kind, business_key, action, payload) "
                    "VALUES (%s, %s, %s, %s)",
                    [kind, key, action, json.dumps(payload)],
                )
            # SQL-looking values in the business row itself: a good row like any other
            sqlish = await conn.execute(
                "INSERT INTO app.leave_request (applicant, days, reason, status) "
                "VALUES ('u2', 2, %s, 'submitted') RETURNING id",
                [SQLISH],
            )
            row = await sqlish.fetchone()
            assert row is not None
        await loader.wait(300)
        await wait_settled(env.admin_dsn, good + len(BAD) + 1, 400 if FULL else 120)
        assert await fleet.stop("a") == 0
    parked = {key: fragment for key, (*_, fragment) in BAD.items()}
    await check_invariants(env.admin_dsn, env.sim, report, parked=parked)
    errors = await query(env.admin_dsn, "SELECT business_key, last_error_message FROM syncd.parked")
    report.faults = {"bad_rows": len(BAD), "errors": {k: m[:140] for k, m in errors}}
    report.emit()
    [instance] = [
        i
        for i in env.sim.instances()
        if any(f.get("name") == CORRELATION and f["value"] == f"syncd:leave/{row[0]}/1"
               for f in i.form)
    ]  # fmt: skip
    reason = next(f["value"] for f in instance.form if f.get("name") == "请假事由")
    assert reason == SQLISH  # sent as a value, unchanged
    assert await query(env.admin_dsn, "SELECT count(*) FROM app.leave_request") == [(good + 1,)]
    assert len(errors) == len(BAD)
