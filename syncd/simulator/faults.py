"""Limits and fault switches, changeable at runtime, drawn from a seeded generator."""

from __future__ import annotations

import random
import secrets
from collections import defaultdict, deque
from typing import Any, Literal

from syncd.ports import Clock
from syncd.simulator.world import FaultSettings, Limits

RequestFault = Literal["reset", "5xx", "429"]

QPS_MESSAGE = "您的企业应用调用钉钉开放平台当前接口的所有请求都被暂时禁用了"
QUOTA_MESSAGE = "您的企业调用钉钉开放平台接口的次数已超过本月上限"


def fresh_seed() -> int:
    """A seed nobody chose: a run started with it repeats no earlier run's ids."""
    return secrets.randbits(63)


class Faults:
    """The fault switches and limits of a running simulator (also the admin API's view).

    ``settings.seed`` is always set here: the world's, or a fresh one (shown by the admin
    API, so a run can be repeated).
    """

    def __init__(self, settings: FaultSettings, limits: Limits) -> None:
        self.settings = settings.model_copy(deep=True)
        if self.settings.seed is None:
            self.settings.seed = fresh_seed()
        self.limits = limits.model_copy(deep=True)
        self.rng = random.Random(self.settings.seed)

    def snapshot(self) -> dict[str, Any]:
        return {
            "faults": self.settings.model_dump(mode="json"),
            "limits": self.limits.model_dump(mode="json"),
        }

    def update(self, **changes: Any) -> dict[str, Any]:
        """Change switches by name (fault or limit fields); a new ``seed`` reseeds (null:
        a fresh one)."""
        fault_fields = set(FaultSettings.model_fields)
        limit_fields = set(Limits.model_fields)
        unknown = set(changes) - fault_fields - limit_fields
        if unknown:
            raise ValueError(f"unknown fault switches: {sorted(unknown)}")
        faults = {k: v for k, v in changes.items() if k in fault_fields}
        if "seed" in faults and faults["seed"] is None:
            faults["seed"] = fresh_seed()
        limits = {k: v for k, v in changes.items() if k in limit_fields}
        self.settings = FaultSettings.model_validate(self.settings.model_dump() | faults)
        self.limits = Limits.model_validate(self.limits.model_dump() | limits)
        if "seed" in faults:
            self.rng.seed(self.settings.seed)
        return self.snapshot()

    def reset(self) -> None:
        """Switch every fault off (limits stay)."""
        self.update(**FaultSettings(seed=self.settings.seed).model_dump())

    def _draw(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def applies_to(self, endpoint: str) -> bool:
        return not self.settings.endpoints or endpoint in self.settings.endpoints

    def request_fault(self, endpoint: str) -> RequestFault | None:
        """Whether this request fails before it reaches the API, and how."""
        if not self.applies_to(endpoint):
            return None
        s = self.settings
        if self._draw(s.reset_rate):
            return "reset"
        if self._draw(s.error_5xx_rate):
            return "5xx"
        if self._draw(s.error_429_rate):
            return "429"
        return None

    def lose_response(self, api: str) -> bool:
        """Whether this call is carried out and its answer then lost (a broken connection)."""
        rate = self.settings.response_lost_rate
        if api == "workflow.create":
            rate = max(rate, self.settings.create_response_lost_rate)
        return self._draw(rate)

    def duplicate_event(self) -> bool:
        return self._draw(self.settings.event_duplicate_rate)

    def reorder_event(self) -> bool:
        return self._draw(self.settings.event_reorder_rate)

    def latency(self) -> float:
        """A latency in seconds drawn from the configured distribution."""
        spec = self.settings.latency
        mean, spread = spec.mean_ms / 1000, spec.spread_ms / 1000
        if spec.distribution == "uniform":
            value = self.rng.uniform(mean - spread, mean + spread)
        elif spec.distribution == "normal":
            value = self.rng.gauss(mean, spread)
        elif spec.distribution == "exponential":
            value = self.rng.expovariate(1 / mean) if mean > 0 else 0.0
        else:
            value = mean
        return max(value, 0.0)


class Limiter:
    """Per-app per-API QPS/QPM windows and the monthly call quota, on the injected clock."""

    def __init__(self, clock: Clock, faults: Faults) -> None:
        self._clock = clock
        self._faults = faults
        self._windows: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self.month_calls: dict[str, int] = defaultdict(int)

    def _over(self, key: tuple[str, str], limit: int | None, span: float) -> bool:
        if limit is None:
            return False
        now = self._clock.monotonic()
        window = self._windows[key]
        recent = sum(1 for t in window if t > now - span)
        return recent >= limit

    def check_rate(self, app_key: str, endpoint: str) -> str | None:
        """The 403 code when the call is over a rate limit, else record it and None."""
        key = (app_key, endpoint)
        limits = self._faults.limits
        if self._over(key, limits.qps_per_api, 1.0):
            return "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"
        if self._over(key, limits.qpm_per_api, 60.0):
            return "Forbidden.AccessDenied.QpmLimitForAppkeyAndApi"
        window = self._windows[key]
        now = self._clock.monotonic()
        window.append(now)
        while window and window[0] <= now - 60.0:
            window.popleft()
        return None

    def check_quota(self) -> bool:
        """Count a non-exempt call; False when this month's quota is used up."""
        month = self._clock.now().strftime("%Y-%m")
        quota = self._faults.limits.monthly_quota
        if quota is not None and self.month_calls[month] >= quota:
            return False
        self.month_calls[month] += 1
        return True
