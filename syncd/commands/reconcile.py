"""``syncd reconcile --since DURATION``: compare DingTalk's instances with syncd's approvals.

Parses the window, runs :class:`~syncd.pipeline.reconcile_window.ReconcileWindow` over an
:class:`~syncd.app.App` (which says what is compared and fixed), and prints what each
kind's comparison found. ``--dry-run`` reads and reports, and changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TextIO

from syncd.app import App
from syncd.commands.common import out, settings_from
from syncd.commands.operator import actor, parse_duration, table, when
from syncd.errors import ConfigError, SyncdError
from syncd.pipeline.reconcile_window import CATEGORIES, KindReport
from syncd.settings_kinds import KindSettings

#: DingTalk lists instances at most this far back.
LONGEST = timedelta(days=365)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "reconcile",
        help="compare DingTalk's instances with syncd's approvals, fix the differences",
        description="List each kind's DingTalk instances started in the last DURATION and "
        "compare them with syncd's approvals: apply outcomes syncd missed, adopt instances "
        "of lost creates, report duplicates, other systems' instances and instances "
        "DingTalk no longer has. Exit 0 when consistent or all fixed, 1 if differences "
        "remain.",
    )
    parser.add_argument(
        "--since", required=True, metavar="DURATION", help="window, e.g. 30m, 2h, 3d (max 365d)"
    )
    parser.add_argument("--kind", help="only this approval kind")
    parser.add_argument("--dry-run", action="store_true", help="report only; change nothing")
    parser.set_defaults(handler=run)


class Progress:
    """One status line on a terminal, rewritten in place; silent when not a terminal."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.width = 0

    def show(self, text: str) -> None:
        if self.stream is None:
            return
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = max(self.width, len(text))

    def close(self) -> None:
        if self.stream is not None and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0

    def listing(self, kind: str, since: datetime) -> None:
        self.show(f"{kind}: listing DingTalk instances since {when(since)}")

    def reading(self, kind: str, which: str, number: int, total: int) -> None:
        self.show(f"{kind}: reading {which} instance {number}/{total}")


async def run(args: argparse.Namespace) -> int:
    since = parse_duration(args.since)
    if since > LONGEST:
        raise ConfigError(f"--since {args.since}: DingTalk lists instances at most 365 days back")
    settings = settings_from(args)
    kinds = _kinds(settings.kinds, args.kind)
    settings = settings.model_copy(update={"replica_name": actor()})
    progress = Progress(sys.stderr if sys.stderr.isatty() else None)
    async with App(settings) as app:
        pause = await app.pause()
        if pause is not None:
            until = f" until {when(pause.until)}" if pause.until else ""
            raise SyncdError(
                f"DingTalk calls are paused ({pause.reason}){until}; "
                "`syncd resume` first if the cause is fixed"
            )
        try:
            window = app.reconcile_window(dry_run=args.dry_run, progress=progress)
            reports = await window.run(kinds, since)
        finally:
            progress.close()
    out(render(reports, dry_run=args.dry_run))
    return 1 if any(r.remaining for r in reports) else 0


def _kinds(configured: dict[str, KindSettings], only: str | None) -> dict[str, KindSettings]:
    if only is None:
        if not configured:
            raise ConfigError(
                "no approval kinds are configured ([kinds.<name>]); nothing to compare"
            )
        return dict(configured)
    if only not in configured:
        known = ", ".join(sorted(configured)) or "none"
        raise ConfigError(f"--kind {only!r} is not configured (configured kinds: {known})")
    return {only: configured[only]}


def render(reports: Sequence[KindReport], *, dry_run: bool) -> str:
    lines = []
    for report in reports:
        for finding in sorted(report.findings, key=lambda f: CATEGORIES.index(f.category)):
            mark = "!" if finding.remains else "-"
            lines.append(f"{mark} {report.kind}: {finding.text}")
    header = ["KIND", "LISTED", "OURS", *(c.upper() for c in CATEGORIES), "LEFT", "CALLS"]
    rows = []
    for report in reports:
        counts = Counter(f.category for f in report.findings)
        rows.append(
            [
                report.kind,
                str(report.listed),
                str(report.ours),
                *(str(counts[c]) for c in CATEGORIES),
                str(report.remaining),
                str(report.calls),
            ]
        )
    left = sum(r.remaining for r in reports)
    verdict = (
        "consistent"
        if not left
        else f"{left} difference(s) left" + (" (dry run)" if dry_run else "")
    )
    return "\n".join([*lines, *([""] if lines else []), table(header, rows), "", verdict])
