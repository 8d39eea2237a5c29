"""``syncd backfill``: instances started before syncd ran, over several windows and pages,
cut mid-way (a crash holding the lease) and resumed: each imported once, none missed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from syncd.app_inbound import inbound_backfill
from syncd.pipeline.inbound import Inbound, import_all
from syncd.pipeline.inbound_list import BackfillBusy, BackfillState

from .conftest import Env
from .test_inbound import CLAIM, PROCESS, config, rows, start, world  # noqa: F401

WINDOW = timedelta(days=7)


async def drain_imports(env: Env, stage: Inbound) -> None:
    """Import the queue; imports DingTalk throttled are due again a little later."""
    for _ in range(20):
        await import_all(stage)
        if not env.sql("SELECT 1 FROM syncd.inbound_import"):
            return
        await env.advance(120)
    raise AssertionError("imports left in the queue")


async def test_a_backfill_cut_and_resumed_imports_each_instance_once(world: Env) -> None:  # noqa: F811
    env = world
    since = env.clock.now() - timedelta(days=1)
    ids = [start(env, 事项=f"burst {n}") for n in range(25)]  # two pages in the first window
    for day in range(20):  # one a day: three more windows
        await env.advance(86400)
        ids.append(start(env, "u2", 事项=f"day {day}"))
    await env.advance(60)
    seen: list[BackfillState] = []
    async with env.daemon(config(env)) as daemon:
        first = inbound_backfill(daemon.app, WINDOW)
        cut = await first.run("claim", PROCESS, since, progress=seen.append, max_pages=1)
        assert not cut.done and cut.listed == 20  # the first of the first window's pages
        assert env.sql("SELECT next_token FROM syncd.inbound_backfill") == [(20,)]
        # a second run, killed after its first page: it keeps the lease
        now = env.clock.now()
        lease = now + timedelta(seconds=300)
        dead = inbound_backfill(daemon.app, WINDOW).cursor
        assert await dead.take("claim", PROCESS, since, now, now, "dead-replica", lease)
        with pytest.raises(BackfillBusy):
            await inbound_backfill(daemon.app, WINDOW).run("claim", PROCESS, since)
        env.clock.advance(301)
        done = await inbound_backfill(daemon.app, WINDOW).run(
            "claim", PROCESS, since, progress=seen.append
        )
        assert done.done and done.listed == len(ids) and done.queued == len(ids)
        stage = daemon.app.stages["inbound"]
        assert isinstance(stage, Inbound)
        await drain_imports(env, stage)
        again = await inbound_backfill(daemon.app, WINDOW).run("claim", PROCESS, since)
        assert again.queued == 0  # a new backfill of the same range: all known
    imported = [r[0] for r in rows(env)]
    assert sorted(imported) == sorted(ids)
    assert len({s.window_start for s in seen}) >= 2  # progress moved across windows
    [(listed, queued, finished)] = env.sql(
        "SELECT listed, queued, finished_at IS NOT NULL FROM syncd.inbound_backfill"
    )
    assert (queued, finished) == (0, True) and listed == len(ids)
