"""Retry timing: a pure policy, tested with plain numbers."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter and a cap; ``dead`` after ``max_attempts``."""

    base: float = 2.0
    cap: float = 900.0
    max_attempts: int = 12
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.cap, self.base * 2.0 ** max(attempt - 1, 0))
        return float(ceiling * (0.5 + self.rng.random() / 2))

    def exhausted(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
