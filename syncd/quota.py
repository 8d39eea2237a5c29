"""DingTalk's monthly call quota: this month's use, its projection to the month's end, and
what polling may still spend.

One projection serves the ``syncd_dingtalk_quota_projected_calls`` gauge, ``syncd
status`` and the polling budget, so the three never disagree. The month is DingTalk's
(China time, :func:`syncd.domain.month_start`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from syncd.domain import month_start, next_month_start

if TYPE_CHECKING:
    from syncd.settings import Settings

#: Calls recorded in ``syncd.usage`` that DingTalk's monthly quota exempts (the contact
#: calls, contract §15.1): shown by ``syncd status``, left out of the quota's gauges.
EXEMPT_PURPOSES = ("directory",)
#: The shortest stretch of a month a projection extrapolates from (no wild guesses on
#: the month's first minutes).
MIN_ELAPSED = timedelta(hours=1)
#: Purposes that spend the polling budget (``polling.monthly_budget``).
POLLING_PURPOSES = ("poll", "inbound_list")
#: How far ahead of an even spread over the month polling may run: a day's share.
POLLING_HEADROOM = timedelta(days=1)
#: The polling budget projects the other purposes over at least a week: a month's first
#: hours (a Monday morning's creates times 744) would otherwise stop polling for a day.
POLLING_LEAST = timedelta(days=7)


def counted(usage: Mapping[str, int]) -> int:
    """Calls the quota counts (the contact calls are exempt, contract §15.1)."""
    return sum(n for purpose, n in usage.items() if purpose not in EXEMPT_PURPOSES)


def month_share(now: datetime, least: timedelta = MIN_ELAPSED) -> float:
    """The share of this month gone by at ``now`` (at least ``least``'s)."""
    start, end = month_start(now), next_month_start(now)
    elapsed = max(now - start, least)
    return min(1.0, elapsed / (end - start))


def projected(calls: float, now: datetime, least: timedelta = MIN_ELAPSED) -> float:
    """``calls`` spent so far this month, projected to its end at the month's rate so far
    (over at least ``least`` of it)."""
    return calls / month_share(now, least)


@dataclass(frozen=True)
class PollingBudget:
    """What polling (and the inbound listing, which shares it) may spend this month.

    Without a monthly quota (``quota`` 0) it is ``configured`` calls, spent as needed.
    With one, it is what the quota leaves after the other purposes' projected use (over
    at least a week of the month), never more than ``configured``; and it is spread over
    the month (at most the elapsed share of it, plus a day's), so a lost event late in
    the month still finds calls left.
    """

    configured: int
    quota: int = 0

    @classmethod
    def of(cls, settings: Settings) -> PollingBudget:
        return cls(settings.polling.monthly_budget, settings.dingtalk.monthly_quota)

    def budget(self, usage: Mapping[str, int], now: datetime) -> int:
        """This month's polling budget, given this month's ``usage`` per purpose."""
        if not self.quota:
            return self.configured
        others = counted({p: n for p, n in usage.items() if p not in POLLING_PURPOSES})
        left = self.quota - math.ceil(projected(others, now, POLLING_LEAST))
        return max(0, min(self.configured, left))

    def left(self, usage: Mapping[str, int], now: datetime) -> int:
        """Calls polling may still make now."""
        spent = sum(usage.get(p, 0) for p in POLLING_PURPOSES)
        budget = self.budget(usage, now)
        if self.quota:
            start, end = month_start(now), next_month_start(now)
            share = min(1.0, (now - start + POLLING_HEADROOM) / (end - start))
            budget = math.ceil(budget * share)
        return budget - spent
