"""Back pressure: the monthly quota running out pauses every DingTalk call until
DingTalk's next month, broken credentials pause them for a few minutes, throttling
holds back only the call DingTalk throttled, and polling keeps to its monthly budget."""

# The stages change the rows a test holds: mypy would take a second `row.state is ...`
# for one that cannot be true after the first.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from syncd.domain import DINGTALK_TZ, ApprovalState
from syncd.errors import DingTalkAuthError, DingTalkQuotaExhausted, DingTalkThrottled
from syncd.pipeline.pauses import AUTH_RETRY, Pause, Pauses
from syncd.testing import FakeClock
from tests.fakes import PASS, MemoryControlStore, MemoryDb, Rig
from tests.unit.pipeline.support import EXAMPLES, leave, only, simulated_rig, submit

A = ApprovalState
INSTANTS = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2099, 12, 1), timezones=st.just(UTC)
)


@given(now=INSTANTS, later=st.floats(0, 1))
async def test_the_quota_pause_lasts_until_dingtalks_next_month_in_china_time(
    now: datetime, later: float
) -> None:
    pauses = Pauses(MemoryControlStore(MemoryDb()))
    pause = await pauses.quota_exhausted(now)
    assert pause.reason == "quota" and pause.until is not None
    local = pause.until.astimezone(DINGTALK_TZ)
    assert (local.day, local.hour, local.minute, local.second) == (1, 0, 0, 0)
    assert now < pause.until <= now + timedelta(days=31)
    # no month starts between now and the end of the pause
    assert (pause.until - timedelta(days=1)).astimezone(DINGTALK_TZ).month == (
        now.astimezone(DINGTALK_TZ).month
    )
    assert await pauses.active(now + (pause.until - now) * later * 0.999) == pause
    assert await pauses.active(pause.until) is None
    await pauses.resume()
    assert await pauses.active(now) is None


async def test_the_credentials_pause_lasts_a_few_minutes_at_a_time() -> None:
    now = FakeClock().now()
    pauses = Pauses(MemoryControlStore(MemoryDb()))
    assert await pauses.auth_failed(now, "bad secret") == Pause("auth", now + AUTH_RETRY)
    assert await pauses.active(now + AUTH_RETRY - timedelta(seconds=1)) is not None
    assert await pauses.active(now + AUTH_RETRY) is None


def running(rig: Rig) -> list[str]:
    return sorted(a.business_key for a in rig.db.t.approvals.values() if a.state is A.RUNNING)


@EXAMPLES
@given(batch=st.integers(1, 6), data=st.data())
async def test_the_quota_running_out_pauses_creates_until_next_month(
    batch: int, data: st.DataObject
) -> None:
    """From the ``nth`` create on, DingTalk refuses: the approvals wait, none is charged
    an attempt, no call is made until the month turns, then all are created."""
    nth = data.draw(st.integers(1, batch), label="nth")
    async with simulated_rig() as (rig, sim, client):
        rig.submit.concurrency = 1  # the creates in id order
        keys = [str(n) for n in range(batch)]
        for key in keys:
            submit(rig, key, leave())
        await rig.ingest.run_once()
        refusal = DingTalkQuotaExhausted("monthly quota used up")
        client.script("create_instance", *[PASS] * (nth - 1), *[refusal] * (batch - nth + 1))
        await rig.submit.run_once()
        assert running(rig) == keys[: nth - 1]
        waiting = [only(rig, key) for key in keys[nth - 1 :]]
        assert all(a.state is A.PENDING and a.attempts == 0 for a in waiting)
        pause = await rig.pauses.active(rig.clock.now())
        assert pause is not None and pause.reason == "quota" and pause.until is not None
        creates = client.count("create_instance")
        await sim.advance((pause.until - rig.clock.now()).total_seconds() - 1)
        assert (await rig.cycle())["submit"] == 0
        assert client.count("create_instance") == creates
        await sim.advance(1)
        await rig.cycle()
        assert running(rig) == keys


@EXAMPLES
@given(batch=st.integers(1, 6), data=st.data(), wait=st.floats(0.5, 600))
async def test_throttling_holds_back_only_the_create_dingtalk_throttled(
    batch: int, data: st.DataObject, wait: float
) -> None:
    nth = data.draw(st.integers(1, batch), label="nth")
    async with simulated_rig() as (rig, sim, client):
        rig.submit.concurrency = 1
        keys = [str(n) for n in range(batch)]
        for key in keys:
            submit(rig, key, leave())
        await rig.ingest.run_once()
        client.script("create_instance", *[PASS] * (nth - 1), DingTalkThrottled(retry_after=wait))
        await rig.submit.run_once()
        assert running(rig) == [k for k in keys if k != keys[nth - 1]]
        held = only(rig, keys[nth - 1])
        assert held.state is A.PENDING and held.attempts == 0
        assert held.next_attempt_at == held.updated_at + timedelta(seconds=wait)
        assert await rig.pauses.active(rig.clock.now()) is None  # nothing else waits
        await sim.advance(wait)
        await rig.submit.run_once()
        assert running(rig) == keys


async def test_refused_credentials_pause_creates_for_a_few_minutes() -> None:
    async with simulated_rig() as (rig, sim, client):
        client.script("create_instance", DingTalkAuthError("invalid secret"))
        submit(rig, "7", leave())
        await rig.cycle()
        row = only(rig, "7")
        assert row.state is A.PENDING and row.attempts == 0
        await sim.advance(AUTH_RETRY.total_seconds() - 1)
        await rig.cycle()
        assert row.state is A.PENDING and client.count("create_instance") == 1
        await sim.advance(1)
        await rig.cycle()
        assert row.state is A.RUNNING


async def test_a_pause_holds_polls_and_revokes_but_not_cancels_that_need_no_call() -> None:
    async with simulated_rig() as (rig, sim, client):
        submit(rig, "7", leave())
        submit(rig, "8", leave())
        await rig.cycle()
        submit(rig, "9", leave())
        for key in ("7", "9"):
            rig.db.add_outbox("leave", key, {}, action="cancel", at=rig.clock.now())
        await rig.ingest.run_once()
        await rig.pauses.quota_exhausted(rig.clock.now())
        await sim.advance(3600)
        calls = len(client.calls)
        await rig.cycle()
        assert len(client.calls) == calls  # no poll of 8, no revoke of 7
        assert only(rig, "9").state is A.CANCELED  # never submitted: no call needed
        assert only(rig, "7").state is A.RUNNING and only(rig, "8").state is A.RUNNING
        await rig.pauses.resume()
        await rig.cycle()
        assert only(rig, "7").state is A.CANCELED
        assert client.count("get_instance") == 1  # 8 was polled


async def test_polls_keep_to_the_monthly_budget() -> None:
    async with simulated_rig(monthly_budget=2) as (rig, sim, client):
        for key in ("7", "8", "9"):
            submit(rig, key, leave())
        await rig.cycle()
        await sim.advance(61)
        assert await rig.poll.run_once() == 2 and client.count("get_instance") == 2
        await sim.advance(3600)
        assert await rig.poll.run_once() == 0 and rig.poll.budget_exhausted
        assert (await rig.control.usage(rig.clock.now())) == {"create": 3, "poll": 2, "schema": 1}
        month = rig.clock.now().astimezone(DINGTALK_TZ)
        next_month = (month.replace(day=28) + timedelta(days=5)).replace(day=1, hour=0)
        await sim.advance((next_month - rig.clock.now()).total_seconds())
        assert await rig.poll.run_once() == 2 and not rig.poll.budget_exhausted


async def test_a_poll_told_the_quota_is_gone_pauses_every_call() -> None:
    async with simulated_rig() as (rig, sim, client):
        submit(rig, "7", leave())
        await rig.cycle()
        await sim.advance(61)
        client.script("get_instance", DingTalkQuotaExhausted("quota"))
        assert await rig.poll.run_once() == 1
        pause = await rig.pauses.active(rig.clock.now())
        assert pause is not None and pause.reason == "quota"
        row = only(rig, "7")
        assert row.state is A.RUNNING
        assert row.next_poll_at == rig.clock.now() + rig.timing.quiet_after
