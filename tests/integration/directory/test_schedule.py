"""The directory's duty: the first sync, re-syncs every ``resync_interval``, backoff after a
DingTalk error (the row shows it), forgetting leavers; the directory's metrics; the
Runner schedules the duty only when the directory is enabled."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from syncd.metrics import Metrics, Sources
from syncd.pipeline.directory_schedule import DirectorySchedule
from syncd.runner import Runner
from syncd.simulator.world import Department, User
from tests.integration.pipeline.conftest import Env, env  # noqa: F401  (a fixture)

from .harness import LEASE, clear, rig, world_of

HOUR = timedelta(hours=1)


def _world() -> Any:
    departments = [
        Department(dept_id=1, name="总公司"),
        Department(dept_id=2, name="销售", parent_id=1),
    ]
    users = [
        User(user_id=f"u{n}", name=f"用户{n}", dept_ids=[1 + n % 2], mobile=f"1380013800{n}")
        for n in range(5)
    ]
    return world_of(departments, users)


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_first_sync_resyncs_backoff_and_forgetting(daemon_dsn: str, owner_dsn: str) -> None:
    clear(owner_dsn)
    async with rig(_world(), daemon_dsn) as r:
        metrics = Metrics(CollectorRegistry())
        sync = r.sync()
        sync.observer = metrics
        duty = DirectorySchedule(
            sync, r.store, r.clock, resync_interval=24 * HOUR, forget_after=48 * HOUR
        )
        sources = Sources(now=r.clock.now(), actor="replica-a", store=r.store)
        await metrics.refresh(sources)
        assert _value(metrics, "syncd_directory_users", state="present") == 0
        assert _value(metrics, "syncd_directory_users", state="departed") == 0
        assert _value(metrics, "syncd_directory_departments") == 0
        assert _value(metrics, "syncd_directory_last_sync_timestamp_seconds") == 0
        assert _value(metrics, "syncd_directory_syncs_total", outcome="done") == 0

        assert await duty.run_due() == "done"
        running, done = await r.store.latest()
        assert running is None and done is not None and done.trigger == "first"
        assert await duty.run_due() is None  # not due yet
        r.clock.advance(23 * 3600)
        assert await duty.run_due() is None

        r.sim.directory.remove_user("u3")
        r.clock.advance(3600)
        r.recorder.cut_at = len(r.recorder.reads) + 3  # DingTalk fails at the third call
        assert await duty.run_due() == "error"
        running, _ = await r.store.latest()
        assert running is not None and running.trigger == "schedule"
        assert running.attempts == 1 and running.retry_at is not None
        assert running.last_error is not None and "unreachable" in running.last_error
        assert running.lease_owner is None
        assert await duty.run_due() is None  # waits for its retry time
        r.clock.advance((running.retry_at - r.clock.now()).total_seconds())
        assert await duty.run_due() == "done"
        _, done = await r.store.latest()
        assert done is not None and done.id == running.id and done.attempts == 0
        assert done.last_error == running.last_error  # the last error stays visible

        await metrics.refresh(Sources(now=r.clock.now(), actor="replica-a", store=r.store))
        assert _value(metrics, "syncd_directory_users", state="present") == 4
        assert _value(metrics, "syncd_directory_users", state="departed") == 1
        assert _value(metrics, "syncd_directory_departments") == 2
        assert done.finished_at is not None
        last = _value(metrics, "syncd_directory_last_sync_timestamp_seconds")
        assert last == done.finished_at.timestamp()
        assert _value(metrics, "syncd_directory_syncs_total", outcome="done") == 2
        assert _value(metrics, "syncd_directory_syncs_total", outcome="error") == 1

        assert await duty.forget() == 0  # u3 left an hour ago
        r.clock.advance(48 * 3600 + 1)
        assert await duty.forget() == 1
        assert "u3" not in r.rows()["departed"]


async def test_the_contact_calls_are_shown_but_not_counted_against_the_quota(
    daemon_dsn: str, owner_dsn: str
) -> None:
    clear(owner_dsn)
    async with rig(_world(), daemon_dsn) as r:
        _, run = await r.sync().sync_now()
        metrics = Metrics(CollectorRegistry(), monthly_quota=5000)
        await metrics.refresh(Sources(now=r.clock.now(), actor="x", store=r.store))
        used = [
            s
            for family in metrics.scrape.collect()
            if family.name == "syncd_dingtalk_quota_used_calls"
            for s in family.samples
        ]
        assert used and all(s.value == 0 for s in used)
        assert "directory" not in {s.labels["purpose"] for s in used}
        assert _value(metrics, "syncd_dingtalk_quota_projected_calls") == 0
        assert run.calls > 0


async def test_the_runner_schedules_the_duty_only_when_the_directory_is_enabled(
    env: Env,  # noqa: F811
) -> None:
    for enabled, jobs in ((False, set()), (True, {"directory_sync", "directory_forget"})):
        settings = env.settings(directory={"enabled": enabled})
        async with env.daemon(settings) as runner:
            assert isinstance(runner, Runner)
            assert (runner.app.directory_schedule is not None) is enabled
            scheduled = {job.id for job in runner._schedule()._scheduler.get_jobs()}
            assert scheduled & {"directory_sync", "directory_forget"} == jobs
            assert runner.app.directory_sync.lease == timedelta(seconds=120) == LEASE


class Ended:
    """Told how each run of a sync ended; ``ended`` is set at the first."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []
        self.ended = asyncio.Event()

    def directory_sync_ended(self, outcome: str) -> None:
        self.outcomes.append(outcome)
        self.ended.set()


async def test_syncd_run_syncs_the_directory_at_start(env: Env) -> None:  # noqa: F811
    settings = env.settings(directory={"enabled": True}, events={"stream": False}, http={"port": 0})
    async with env.daemon(settings) as runner:
        seen = Ended()
        runner.app.directory_sync.observer = seen
        stop = asyncio.Event()
        running = asyncio.create_task(runner.run(stop))
        try:
            async with asyncio.timeout(30):
                await seen.ended.wait()
        finally:
            stop.set()
            async with asyncio.timeout(30):
                await running
    assert seen.outcomes == ["done"]
    [(trigger, state, users)] = env.sql("SELECT trigger, state, users FROM syncd.directory_sync")
    assert (trigger, state) == ("first", "done")
    assert users == len([u for u in env.sim.world.users if u.active])
