"""What the operator commands share: who is acting, time and duration formats, JSON."""

from __future__ import annotations

import getpass
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from syncd.errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+)([smhdw])")


def actor() -> str:
    """The name the history records for changes made from the command line."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"cli:{user}"


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_duration(text: str, option: str = "--since") -> timedelta:
    """``30m``, ``2h``, ``3d``, ``1w`` or combinations like ``1d12h``."""
    value = text.strip().lower()
    parts = _DURATION.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise ConfigError(
            f"{option} {text!r}: use a number and a unit (s, m, h, d, w), e.g. 30m, 2h, 3d or 1d12h"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"{option} {text!r}: the duration must be longer than zero")
    return timedelta(seconds=seconds)


def age(delta: timedelta) -> str:
    """A short human age: ``45s``, ``12m``, ``3h 5m``, ``4d 2h``."""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs and minutes < 10 else f"{minutes}m"
    return f"{secs}s"


def when(moment: datetime | None) -> str:
    """A timestamp in UTC to the second, or ``-``."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def to_json(data: Any) -> str:
    return json.dumps(data, default=_default, ensure_ascii=False, indent=2)


def table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; columns of numbers right-aligned."""
    columns = range(len(header))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in columns]
    numeric = [bool(rows) and all(str(r[i]).isdigit() for r in rows) for i in columns]

    def line(cells: list[str]) -> str:
        padded = [
            str(c).rjust(widths[i]) if numeric[i] else str(c).ljust(widths[i])
            for i, c in enumerate(cells)
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])
