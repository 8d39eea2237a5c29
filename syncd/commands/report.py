"""``syncd report``: statistics for management, per kind and period, as a table, CSV or
JSON. The figures come from :class:`syncd.db.report.ReportStore`; this module parses the
options and prints."""

from __future__ import annotations

import argparse
import csv
import io
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from syncd.commands.common import database_dsn, out, settings_from
from syncd.commands.operator import actor, age, table, to_json, utcnow
from syncd.db.admin_store import open_pool
from syncd.db.report import BREAKDOWNS, DEFAULT_PERIODS, PERIODS, Report, ReportRequest, ReportStore

logger = logging.getLogger(__name__)

FORMATS = ("table", "csv", "json")
#: Table headings of the columns that are not shown under their own name.
_HEADINGS = {
    "decision_p50_seconds": "decision p50",
    "decision_p90_seconds": "p90",
    "wait_p50_seconds": "wait p50",
    "wait_p90_seconds": "p90",
    "waiting_since": "oldest waiting",
    "without_decision": "no decision",
}
_PERIOD_HEADINGS = {"day": "day", "week": "week of", "month": "month"}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser(
        "report",
        help="statistics for management: approvals per kind and period, decision times, "
        "where approvals wait",
        description="What became of the approvals submitted in each period (approved, "
        "rejected, canceled, superseded, parked, dismissed, pending, running) and how long "
        "DingTalk's decisions took (median, 90th percentile); with --by, the wait at each "
        "node or with each approver. Each round counts in the period the application submitted it. "
        f"Without --since: the last {DEFAULT_PERIODS['day']} days, "
        f"{DEFAULT_PERIODS['week']} weeks or {DEFAULT_PERIODS['month']} months. Periods with "
        "nothing show zeros.",
    )
    report.add_argument("--kind", help="only this approval kind")
    report.add_argument("--period", choices=PERIODS, default="month", help="default: month")
    report.add_argument(
        "--since", type=_day, metavar="DATE", help="first day (YYYY-MM-DD): from its period on"
    )
    report.add_argument(
        "--until", type=_day, metavar="DATE", help="last day (YYYY-MM-DD; default: today)"
    )
    report.add_argument(
        "--by",
        choices=BREAKDOWNS,
        default="kind",
        help="kind (default); node: the wait at each node; approver: with each approver",
    )
    report.add_argument("--format", choices=FORMATS, default="table", help="default: table")
    report.add_argument(
        "--tz",
        default="UTC",
        metavar="ZONE",
        help="time zone the periods begin in, e.g. Asia/Shanghai (default: UTC)",
    )
    report.add_argument("--dsn", help="database (default: database.dsn)")
    report.set_defaults(handler=run_report)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD") from None


async def run_report(args: argparse.Namespace) -> int:
    configured = tuple(settings_from(args).kinds)
    if args.kind is not None and args.kind not in configured:
        logger.warning(
            "kind not in the configuration: its recorded approvals only",
            extra={"action": "report_unknown_kind", "kind": args.kind},
        )
    request = ReportRequest(
        period=args.period,
        by=args.by,
        kind=args.kind,
        since=args.since,
        until=args.until,
        time_zone=args.tz,
        kinds=configured,
    )
    now = utcnow()
    async with open_pool(database_dsn(args)) as pool:
        report = await ReportStore(pool, actor=actor()).report(request, now)
    if args.format == "json":
        out(render_json(report))
    elif args.format == "csv":
        out(render_csv(report))
    else:
        out(render_table(report, now))
    return 0


def plain(value: Any) -> Any:
    """A value as CSV and JSON carry it: days and times in ISO 8601 (times in UTC),
    seconds to the millisecond."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 3)
    return value


def render_json(report: Report) -> str:
    r = report.request
    return to_json(
        {
            "period": r.period,
            "by": r.by,
            "kind": r.kind,
            "time_zone": r.time_zone,
            "first_period": report.first.isoformat(),
            "last_period": report.last.isoformat(),
            "columns": list(report.columns),
            "rows": [{c: plain(row[c]) for c in report.columns} for row in report.rows],
        }
    )


def render_csv(report: Report) -> str:
    """A header line with the column names, then one line per row; empty for None."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(report.columns)
    for row in report.rows:
        writer.writerow(["" if row[c] is None else plain(row[c]) for c in report.columns])
    return buffer.getvalue()


def render_table(report: Report, now: datetime) -> str:
    r = report.request
    title = (
        f"Approvals submitted per {r.period} ({r.time_zone}), "
        f"{_label(r.period, report.first)} to {_label(r.period, report.last)}"
        + (f", kind {r.kind}" if r.kind else "")
        + ("" if r.by == "kind" else f", by {r.by}")
    )
    if not report.rows:
        return f"{title}\nno approvals in this range"
    header = [_PERIOD_HEADINGS[r.period], *(_HEADINGS.get(c, c) for c in report.columns[1:])]
    lines = [
        [_label(r.period, row["period_start"]), *(_cell(row[c], now) for c in report.columns[1:])]
        for row in report.rows
    ]
    return f"{title}\n\n{table(header, lines)}"


def _label(period: str, start: date) -> str:
    return start.strftime("%Y-%m") if period == "month" else start.isoformat()


def _cell(value: Any, now: datetime) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return age(now - value)
    if isinstance(value, float):
        return age(timedelta(seconds=value))
    return str(value)
