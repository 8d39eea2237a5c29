"""Showing a demo run: a live terminal view (plain ANSI redraw) or plain log lines.

Both views receive a :class:`~syncd.demo.stats.Snapshot` a few times a second. The live
view redraws a block of lines in place and shows the last log lines under it; the plain
view (``--no-ui``, or when stdout is not a terminal) logs a progress line when the
counts change. :func:`summary_lines` is the text printed at the end of every run.
"""

from __future__ import annotations

import collections
import io
import logging
import shutil
import time
import unicodedata
from dataclasses import dataclass, field
from typing import TextIO

from syncd.demo.stats import Snapshot

logger = logging.getLogger(__name__)

STATE_ROWS = ("pending", "submitting", "running", "approved", "rejected", "canceled")
# Too frequent for the live view's few log lines; the counts above show their effect.
CHATTY_ACTIONS = frozenset({"events_received", "event_received", "demo_request"})
BAR = "█"
BAR_WIDTH = 30


@dataclass(frozen=True)
class Links:
    """Where to look while the demo runs."""

    simulator: str
    daemon: str
    database: str
    #: The business database when it is not syncd's PostgreSQL: (server, its URL).
    business: tuple[str, str] | None = None
    #: Whether the run imports leave requests started in DingTalk (the inbound kind).
    inbound: bool = False

    def lines(self) -> list[str]:
        here = "decide, start leave here" if self.inbound else "decide requests here"
        lines = [
            f"  simulator page  {self.simulator}/_sim/   ({here})",
            f"  metrics         {self.daemon}/metrics",
            f"  readiness       {self.daemon}/readyz",
            f"  database        {self.database}",
        ]
        if self.business is not None:
            server, url = self.business
            lines[-1] = f"  syncd's state   {self.database}"
            lines.append(f"  business db     {server}  {url}")
            lines.append("  (receipts and leave started in DingTalk: with PostgreSQL only)")
        return lines


@dataclass(frozen=True)
class Progress:
    """Where the run is: the latest snapshot and what the runner is waiting for."""

    snapshot: Snapshot
    requests: int
    rate: float
    elapsed: float
    status: str


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def _latency_lines(s: Snapshot) -> list[str]:
    per_approval = "–" if s.calls_per_approval is None else f"{s.calls_per_approval:.1f}"
    return [
        f"  outbox → DingTalk instance   p50 {_seconds(s.created_p50)}"
        f"   p95 {_seconds(s.created_p95)}",
        f"  decision → written back      p50 {_seconds(s.written_p50)}"
        f"   p95 {_seconds(s.written_p95)}",
        f"  DingTalk calls per approval  {per_approval}   ({s.calls_spent} made,"
        f" {s.simulator_calls} at the simulator)",
    ]


def summary_lines(s: Snapshot) -> list[str]:
    """The end-of-run summary; one ``name  number`` pair per line, for people and scripts."""
    parked = s.count("invalid", "dead")
    return [
        "syncd demo summary",
        f"  requests     {s.inserted:>5}",
        f"  approved     {s.count('approved'):>5}",
        f"  rejected     {s.count('rejected'):>5}",
        f"  canceled     {s.count('canceled'):>5}",
        f"  pending      {s.in_flight:>5}   ({s.waiting_for_person} waiting for a person)",
        f"  parked       {parked:>5}   (invalid {s.count('invalid')}, dead {s.count('dead')})",
        *_latency_lines(s),
        *_inbound_summary(s),
    ]


def _inbound_summary(s: Snapshot) -> list[str]:
    if not s.started_in_dingtalk and not s.inbound_states:
        return []
    states = s.inbound_states
    return [
        f"  from DingTalk {s.inbound_imported:>5}   (of {s.started_in_dingtalk} started;"
        f" approved {states.get('approved', 0)}, rejected {states.get('rejected', 0)})"
    ]


def _inbound_lines(s: Snapshot) -> list[str]:
    """Leave requests started in DingTalk: how many, the latest imported rows."""
    return [
        "",
        f"  started in DingTalk {s.started_in_dingtalk:>5}, imported {s.inbound_imported}"
        " → app.leave_from_dingtalk",
        *(row.line() for row in s.imported),
        "  (start more on the simulator page: Start in DingTalk, 请假（钉钉发起）)",
    ]


def frame(progress: Progress, links: Links) -> list[str]:
    """The live view's lines (without log lines)."""
    s = progress.snapshot
    top = max([1, *s.states.values()])
    lines = [
        f"syncd demo · {progress.elapsed:.0f} s · {s.inserted} of {progress.requests}"
        f" requests in ({progress.rate:g}/s) · Ctrl-C stops",
        "",
        *links.lines(),
        "",
    ]
    for state in STATE_ROWS:
        count = s.count(state)
        note = f"   ({s.waiting_for_person} wait for a person)" if state == "running" else ""
        bar = BAR * round(BAR_WIDTH * count / top) if count else ""
        lines.append(f"  {state:<11} {count:>5}  {bar}{note}")
    parked = s.count("invalid", "dead")
    lines += [f"  {'parked':<11} {parked:>5}  {BAR * min(parked, BAR_WIDTH)}", ""]
    lines += [*_latency_lines(s), "", f"  {progress.status}"]
    if links.inbound:
        lines += _inbound_lines(s)
    return lines


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal columns (wide characters count two)."""
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for char in text:
        used += display_width(char)
        if used > width - 1:
            break
        out.append(char)
    return "".join(out) + "…"


def worth_showing(record: logging.LogRecord) -> bool:
    """A log filter for the live view: warnings, and the records that are not chatty."""
    return record.levelno >= logging.WARNING or (
        getattr(record, "action", None) not in CHATTY_ACTIONS
    )


class LogTail(io.StringIO):
    """A stream for the log handler that keeps the last few lines for the live view."""

    def __init__(self, lines: int = 6) -> None:
        super().__init__()
        self.lines: collections.deque[str] = collections.deque(maxlen=lines)

    def write(self, text: str) -> int:
        self.lines.extend(line for line in text.splitlines() if line.strip())
        return len(text)

    def isatty(self) -> bool:
        return False


@dataclass
class LiveView:
    """Redraws the frame in place on a terminal, the last log lines under it."""

    stream: TextIO
    links: Links
    logs: LogTail = field(default_factory=LogTail)
    _drawn: int = 0

    def show(self, progress: Progress) -> None:
        size = shutil.get_terminal_size()
        lines = frame(progress, self.links)[: max(size.lines - 1, 1)]
        room = size.lines - 1 - len(lines) - 2
        if self.logs.lines and room > 0:
            recent = list(self.logs.lines)[-room:]
            lines += ["", "  recent log lines:", *(f"  {line}" for line in recent)]
        lines = [clip(line, size.columns - 1) for line in lines]
        erase = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else "\x1b[?25l"
        self.stream.write(erase + "\n".join(lines) + "\n")
        self.stream.flush()
        self._drawn = len(lines)

    def close(self) -> None:
        self.stream.write("\x1b[?25h")
        self.stream.flush()


@dataclass
class PlainView:
    """Logs a progress line when the counts change (at most every ``every`` seconds)."""

    every: float = 2.0
    _last: tuple[int, ...] = ()
    _at: float = 0.0

    def show(self, progress: Progress) -> None:
        s = progress.snapshot
        key = (s.inserted, *(s.count(state) for state in STATE_ROWS), s.count("invalid", "dead"))
        now = time.monotonic()
        if key == self._last or now - self._at < self.every:
            return
        self._last, self._at = key, now
        logger.info(
            "demo progress",
            extra={
                "action": "demo_progress",
                "submitted": s.inserted,
                **{state: s.count(state) for state in STATE_ROWS},
                "parked": s.count("invalid", "dead"),
                "waiting_for_person": s.waiting_for_person,
            },
        )

    def close(self) -> None:
        pass
