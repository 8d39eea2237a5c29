"""``syncd status`` against the monthly quota: the month's use, its projection to the
month's end (the same figure as ``syncd_dingtalk_quota_projected_calls``) and the polling
budget that the quota leaves."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from syncd.db.store import PostgresControlStore
from syncd.quota import PollingBudget, projected

from .conftest import config_data


async def test_status_shows_the_projection_and_warns_before_the_quota_runs_out(world, cli):
    now = datetime.now(UTC)
    async with world.daemon() as daemon:
        control = PostgresControlStore(daemon.app.pool)
        await control.add_usage(now, "create", 400)
        await control.add_usage(now, "poll", 20)
        await control.add_usage(now, "directory", 900)  # exempt: not counted
    cli.configure(config_data(world.daemon_dsn, dingtalk={"monthly_quota": 10_000}))
    code, out, _ = await cli("status", "--json")
    d = json.loads(out)["dingtalk"]
    assert code == 0 and d["total"] == 420
    # one function: what the gauge shows is what status shows
    assert abs(d["projected"] - projected(420, now)) <= max(1.0, projected(420, now) * 0.01)
    usage = {"create": 400, "poll": 20, "directory": 900}
    budget = PollingBudget(1000, 10_000).budget(usage, now)
    assert d["polling_budget"] == budget and d["polling_budget_configured"] == 1000
    code, out, _ = await cli("status")
    assert f"projected to the month's end: {d['projected']}" in out

    # a quota the month's rate will pass: attention, before a single call is refused
    tight = max(421, d["projected"] - 1)
    cli.configure(config_data(world.daemon_dsn, dingtalk={"monthly_quota": tight}))
    code, out, _ = await cli("status", "--check")
    assert code == 1
    assert f"over the monthly quota of {tight}: polling already holds back" in out
    left = PollingBudget(1000, tight).budget(usage, datetime.now(UTC))
    assert left < 1000
    assert f"polling: 20 of {left} budgeted calls (what the quota leaves; 1000 configured)" in out
