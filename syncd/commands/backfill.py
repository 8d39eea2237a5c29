"""``syncd backfill --kind K --since DATE``: import an inbound kind's instances started
before syncd ran. The walk over DingTalk's listing is
:class:`~syncd.pipeline.inbound_list.Backfill` (resumable: its cursor is kept in
``syncd.inbound_backfill``), the imports the App's ``inbound`` stage; this module parses
and prints."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TextIO

from syncd.app import App
from syncd.app_inbound import inbound_backfill
from syncd.commands.common import out, settings_from
from syncd.commands.operator import actor, utcnow
from syncd.errors import ConfigError, SyncdError
from syncd.pipeline.inbound import Inbound, import_all
from syncd.pipeline.inbound_list import MAX_WINDOW, BackfillState

#: DingTalk lists instances created at most this long ago (contract §5.1).
OLDEST = timedelta(days=365)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "backfill",
        help="import an inbound kind's instances started in DingTalk since a date",
        description="List the instances of an inbound kind's template started since DATE "
        "(window by window, page by page), queue those syncd does not know and import them. "
        "Cut anywhere, the next run with the same --since resumes where it stopped.",
    )
    parser.add_argument("--kind", required=True, help="an inbound kind")
    parser.add_argument("--since", required=True, help="YYYY-MM-DD or an ISO time (UTC if bare)")
    parser.add_argument("--until", help="default: now")
    parser.add_argument(
        "--window-days", type=int, default=MAX_WINDOW.days,
        help=f"days listed per query (1 to {MAX_WINDOW.days}; smaller when busy)",
    )  # fmt: skip
    parser.set_defaults(handler=run_backfill)


def _date(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class Progress:
    """One line rewritten in place on a terminal; nothing otherwise (the logs say it)."""

    def __init__(self, terminal: TextIO | None) -> None:
        self.terminal = terminal
        self.started = time.monotonic()
        self.width = 0

    def listed(self, state: BackfillState) -> None:
        rate = state.pages / max(time.monotonic() - self.started, 1e-3)
        self._show(
            f"{state.kind}: listing {state.window_start:%Y-%m-%d}..{state.window_end:%Y-%m-%d}"
            f" (to {state.until:%Y-%m-%d}) · {state.listed} listed · {state.queued} new"
            f" · {rate:.1f} pages/s"
        )

    def imported(self, taken: int) -> None:
        self._show(f"importing: {taken} taken")

    def _show(self, text: str) -> None:
        if self.terminal is not None:
            self.terminal.write("\r" + text.ljust(self.width))
            self.terminal.flush()
            self.width = max(self.width, len(text))

    def close(self) -> None:
        if self.terminal is not None and self.width:
            self.terminal.write("\r" + " " * self.width + "\r")
            self.terminal.flush()


async def run_backfill(args: argparse.Namespace) -> int:
    settings = settings_from(args).model_copy(update={"replica_name": actor()})
    kind = settings.kinds.get(args.kind)
    if kind is None or kind.direction != "inbound":
        raise ConfigError(f"--kind {args.kind}: not an inbound kind of the configuration")
    if not 1 <= args.window_days <= MAX_WINDOW.days:
        raise ConfigError(f"--window-days must be 1 to {MAX_WINDOW.days}")
    since, until = _date("--since", args.since), _date("--until", args.until)
    assert since is not None
    if since < utcnow() - OLDEST:
        raise ConfigError("--since: DingTalk lists instances of the last 365 days only")
    progress = Progress(sys.stderr if sys.stderr.isatty() else None)
    async with App(settings) as app:
        backfill = inbound_backfill(app, timedelta(days=args.window_days))
        try:
            state = await backfill.run(args.kind, kind.process_code, since, until, progress.listed)
            stage = app.stages["inbound"]
            assert isinstance(stage, Inbound)
            taken = await import_all(stage, progress.imported)
        except SyncdError as exc:
            progress.close()
            out(f"syncd: backfill of {args.kind} stopped: {exc}; run it again to resume")
            return 1
    progress.close()
    out(
        f"{args.kind}: {state.listed} instances listed, {state.queued} new, {taken} imports handled"
    )
    return 0
