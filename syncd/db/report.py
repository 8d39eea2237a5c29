"""``ReportStore``: the figures of ``syncd report``, from the statistics views.

The views (``syncd.stats_by_period``, ``syncd.stats_by_node``, ``syncd.stats_by_approver``;
docs/operate.md, "Statistics") do the counting. This store picks a report's periods, has
their boundaries cut in the report's time zone (the views truncate in the session's),
and fills every period of the range that has no figures with zeros, so that a report
over a range shows each period of it for each kind (or node, or approver) it names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, get_args

import psycopg

from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, Conn
from syncd.errors import ConfigError

Period = Literal["day", "week", "month"]
Breakdown = Literal["kind", "node", "approver"]
PERIODS: tuple[Period, ...] = get_args(Period)
BREAKDOWNS: tuple[Breakdown, ...] = get_args(Breakdown)
#: How many periods a report covers when it is given no start.
DEFAULT_PERIODS: dict[Period, int] = {"day": 30, "week": 12, "month": 12}

Row = dict[str, Any]


@dataclass(frozen=True)
class Layout:
    """The columns of one breakdown: after ``period_start``, the columns naming a row's
    group, its counts (0 in an empty period) and its other figures (None there)."""

    query: str
    group: tuple[str, ...]
    counts: tuple[str, ...]
    figures: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return ("period_start", *self.group, *self.counts, *self.figures)


_WAITS = ("wait_p50_seconds", "wait_p90_seconds", "waiting_since")
LAYOUTS: dict[Breakdown, Layout] = {
    "kind": Layout(
        "select_stats_by_period",
        ("kind",),
        (
            "submitted",
            "approved",
            "rejected",
            "canceled",
            "superseded",
            "parked",
            "dismissed",
            "pending",
            "running",
        ),
        ("decision_p50_seconds", "decision_p90_seconds"),
    ),
    "node": Layout(
        "select_stats_by_node",
        ("kind", "node"),
        ("visits", "passed", "refused", "without_decision", "waiting"),
        _WAITS,
    ),
    "approver": Layout(
        "select_stats_by_approver",
        ("kind", "approver"),
        ("tasks", "agreed", "refused", "without_decision", "waiting"),
        _WAITS,
    ),
}


@dataclass(frozen=True)
class ReportRequest:
    """What a report covers. ``since`` and ``until`` are days in ``time_zone``: the
    report runs from the period holding ``since`` (default: :data:`DEFAULT_PERIODS`
    periods in all) to the one holding ``until`` (default: today), each period whole.
    ``kinds`` are shown even in periods without a round (the configured ones)."""

    period: Period = "month"
    by: Breakdown = "kind"
    kind: str | None = None
    since: date | None = None
    until: date | None = None
    time_zone: str = "UTC"
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    """The rows of a report, one per period and group, in order; ``first`` and ``last``
    are the first days of its first and last periods."""

    request: ReportRequest
    first: date
    last: date
    columns: tuple[str, ...]
    rows: list[Row]


def next_start(period: Period, start: date) -> date:
    """The first day of the period after the one beginning on ``start``."""
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def period_starts(period: Period, first: date, last: date) -> list[date]:
    """The first day of every period from the one beginning on ``first`` to ``last``."""
    starts: list[date] = []
    start = first
    while start <= last:
        starts.append(start)
        start = next_start(period, start)
    return starts


def _order(group: tuple[Any, ...]) -> tuple[tuple[bool, str], ...]:
    """Groups in name order, an unnamed node or approver (None) last."""
    return tuple((value is None, value or "") for value in group)


def fill(layout: Layout, rows: list[Row], starts: list[date], request: ReportRequest) -> list[Row]:
    """Every period of ``starts`` for every group found in ``rows`` (and, per kind, each
    of ``request.kinds``): the row found, else zeros."""
    found = {(r["period_start"], *(r[c] for c in layout.group)): r for r in rows}
    groups = {key[1:] for key in found}
    if layout.group == ("kind",):
        wanted = request.kinds if request.kind is None else (request.kind,)
        groups |= {(k,) for k in wanted}
    filled: list[Row] = []
    for start in starts:
        for group in sorted(groups, key=_order):
            row = found.get((start, *group))
            if row is None:
                row = {"period_start": start, **dict(zip(layout.group, group, strict=True))}
                row |= dict.fromkeys(layout.counts, 0) | dict.fromkeys(layout.figures)
            filled.append({c: row[c] for c in layout.columns})
    return filled


class ReportStore(BaseStore):
    async def report(self, request: ReportRequest, now: datetime) -> Report:
        """The figures of ``request``, ``now`` deciding which day is today."""
        layout = LAYOUTS[request.by]
        async with self.transaction() as conn:
            await _set_time_zone(conn, request.time_zone)
            first, last = await _range(conn, request, now)
            params = {"period": request.period, "first": first, "last": last, "kind": request.kind}
            rows = await (await conn.execute(QUERIES[layout.query], params)).fetchall()
        starts = period_starts(request.period, first, last)
        return Report(request, first, last, layout.columns, fill(layout, rows, starts, request))


async def _set_time_zone(conn: Conn, time_zone: str) -> None:
    try:
        await conn.execute(QUERIES["set_report_time_zone"], {"tz": time_zone})
    except psycopg.errors.InvalidParameterValue:
        raise ConfigError(
            f"time zone {time_zone!r}: PostgreSQL does not know it; give a name it lists in "
            "pg_timezone_names, such as UTC, Asia/Shanghai or Europe/Berlin"
        ) from None


async def _range(conn: Conn, request: ReportRequest, now: datetime) -> tuple[date, date]:
    params = {
        "period": request.period,
        "since": request.since,
        "until": request.until,
        "now": now,
        "count": DEFAULT_PERIODS[request.period],
    }
    row = await (await conn.execute(QUERIES["select_report_range"], params)).fetchone()
    assert row is not None  # one row, always
    first, last = row["first"], row["last"]
    if first > last:
        until = request.until or "today"
        raise ConfigError(
            f"--since {request.since} comes after --until {until}: the range holds no "
            f"{request.period}"
        )
    return first, last
