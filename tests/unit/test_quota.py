"""The monthly quota's arithmetic: the projection, and the polling budget that spends
what the quota leaves, never more, spread over the month."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from syncd.domain import month_start, next_month_start
from syncd.quota import MIN_ELAPSED, POLLING_LEAST, PollingBudget, counted, projected

MOMENTS = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
CALLS = st.integers(0, 50_000)


@given(now=MOMENTS, calls=CALLS)
def test_the_projection_is_the_months_rate_so_far(now: datetime, calls: int) -> None:
    start, end = month_start(now), next_month_start(now)
    elapsed = max(now - start, MIN_ELAPSED)
    assert abs(projected(calls, now) - calls * ((end - start) / elapsed)) < 1e-6 * (calls + 1)
    assert projected(calls, now) >= calls


@given(
    now=MOMENTS,
    configured=st.integers(0, 20_000),
    quota=st.integers(0, 20_000),
    usage=st.dictionaries(
        st.sampled_from(["create", "poll", "inbound_list", "failed_list", "directory", "get"]),
        CALLS,
    ),
)
def test_polling_never_spends_more_than_the_quota_leaves_or_the_budget_allows(
    now: datetime, configured: int, quota: int, usage: dict[str, int]
) -> None:
    budget = PollingBudget(configured, quota)
    whole = budget.budget(usage, now)
    spent = usage.get("poll", 0) + usage.get("inbound_list", 0)
    assert 0 <= whole <= configured
    if not quota:
        assert whole == configured and budget.left(usage, now) == configured - spent
        return
    others = counted(usage) - spent
    assert whole <= max(0, quota - projected(others, now, POLLING_LEAST))
    assert projected(others, now, POLLING_LEAST) <= max(projected(others, now), others)
    # spread over the month: never more than the elapsed share plus a day's
    share = (now - month_start(now) + timedelta(days=1)) / (
        next_month_start(now) - month_start(now)
    )
    assert budget.left(usage, now) + spent <= whole * min(1.0, share) + 1


@given(quota=st.integers(1000, 20_000), per_day=st.floats(0.5, 3.0))
def test_a_steady_month_projects_past_ninety_percent_before_the_quota_is_spent(
    quota: int, per_day: float
) -> None:
    """What SyncdQuotaNearExhaustion watches: with use at a steady rate that ends the
    quota before the month's end, the projection passes 90% of the quota days ahead."""
    start = month_start(datetime(2026, 3, 1, 12, tzinfo=UTC))
    days = (next_month_start(start) - start).days
    rate = per_day * quota / days  # per_day > 1: the quota runs out before the month ends
    warned = spent_out = None
    for hour in range(1, days * 24):
        now = start + timedelta(hours=hour)
        used = rate * hour / 24
        if warned is None and projected(used, now) > 0.9 * quota:
            warned = hour
        if spent_out is None and used >= quota:
            spent_out = hour
    if per_day >= 1.0 and spent_out is not None:
        assert warned is not None and spent_out - warned >= 24  # a day's notice at least
