"""``syncd report`` and the statistics views, against figures computed in Python.

The property generates approval rounds with known times, outcomes and tasks over two
kinds (one configured, one not): business keys with several rounds (decided, withdrawn,
superseded by a resubmission, parked and submitted again) whose last round may also be
parked, pending or still running; tasks at named and unnamed nodes, decided, passed on,
canceled, still waiting, or without a finish time. The rounds start around a month's
end and New York's change from summer time, and the report is cut per day, week or
month in UTC, Asia/Shanghai or America/New_York. Then:

- ``syncd report --format json`` as the daemon's role, per kind, node and approver,
  equals the figures computed in Python from the same rounds: every period of the range
  for every group, counts, percentiles and the oldest waiting task;
- the CSV of the same report parses into the same rows;
- the views, read as ``syncd_reader`` with the session's time zone set, hold the same
  figures, and ``syncd.stats_rounds`` gives each round the outcome it was made for.

Other tests: zeros for periods without rounds, the errors, the reader role, and a real
daemon's rounds and tasks (with the decision-time metric) through the simulator.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from syncd.cli import main
from syncd.commands.config import render_toml
from syncd.db.report import LAYOUTS, Breakdown, Period, next_start

from .conftest import APP_KEY, config_data

READER = "syncd_reader"
#: A Monday; November begins five days later, and New York leaves summer time on the 2nd.
BASE = datetime(2025, 10, 27, 6, 0, tzinfo=UTC)
SINCE, UNTIL = date(2025, 10, 20), date(2025, 12, 31)
ZONES = ("UTC", "Asia/Shanghai", "America/New_York")
NODES = ("node_a", "node_b", None)
APPROVERS = ("u1", "u2", "u3")
DAY = 86400

#: What a round was made to become, and the outcome the views must give it.
OUTCOME = {
    "approved": "approved",
    "rejected": "rejected",
    "withdrawn": "canceled",  # in DingTalk or by a cancel row, before any resubmission
    "superseded": "superseded",  # canceled because the key was submitted again
    "replaced": "superseded",  # parked, then the key was submitted again
    "invalid": "parked",
    "dead": "parked",
    "dismissed": "dismissed",  # parked, then closed by an operator
    "pending": "pending",
    "submitting": "pending",
    "unknown": "pending",
    "running": "running",
}
EARLIER = ("approved", "rejected", "withdrawn", "superseded", "replaced")
LAST = tuple(fate for fate in OUTCOME if fate not in ("superseded", "replaced"))
WITH_INSTANCE = {"approved", "rejected", "withdrawn", "superseded", "running"}
FINAL = {"approved", "rejected", "withdrawn", "superseded"}


@dataclass(frozen=True)
class TaskSpec:
    node: str | None
    approver: str
    start: int  # seconds after the instance was created
    duration: int | None  # None: DingTalk gave no finish time
    status: str | None
    result: str | None


@dataclass(frozen=True)
class RoundSpec:
    fate: str
    gap: int  # seconds from the key's previous round (or its first submission)
    to_instance: int
    to_decision: int
    canceled_by_row: bool
    tasks: tuple[TaskSpec, ...]


@dataclass(frozen=True)
class KeySpec:
    kind: str
    start: int
    rounds: tuple[RoundSpec, ...]


TASKS = st.lists(
    st.builds(
        TaskSpec,
        node=st.sampled_from(NODES),
        approver=st.sampled_from(APPROVERS),
        start=st.integers(0, 3 * DAY),
        duration=st.one_of(st.none(), st.integers(0, 4 * DAY)),
        status=st.sampled_from(["RUNNING", "COMPLETED", "CANCELED", "NEW", None]),
        result=st.sampled_from([None, "AGREE", "REFUSE", "agree", "REDIRECTED", "NONE"]),
    ),
    max_size=4,
).map(tuple)


def rounds(fates: tuple[str, ...]) -> st.SearchStrategy[RoundSpec]:
    return st.builds(
        RoundSpec,
        fate=st.sampled_from(fates),
        gap=st.integers(60, 4 * DAY),
        to_instance=st.integers(0, 600),
        to_decision=st.integers(0, 10 * DAY),
        canceled_by_row=st.booleans(),
        tasks=TASKS,
    )


KEYS = st.builds(
    KeySpec,
    kind=st.sampled_from(["leave", "expense"]),
    start=st.integers(0, 21 * DAY),
    rounds=st.tuples(st.lists(rounds(EARLIER), max_size=2), rounds(LAST)).map(
        lambda t: (*t[0], t[1])
    ),
)


# --- the rounds as syncd would have stored them ------------------------------------------


@dataclass
class Task:
    id: int
    node: str | None
    approver: str | None
    status: str | None
    result: str | None
    started_at: datetime
    finished_at: datetime | None


@dataclass
class Round:
    key: str
    kind: str
    number: int
    fate: str
    state: str
    submitted_at: datetime
    instance_created_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    tasks: list[Task] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        return OUTCOME[self.fate]


_STATE = {"withdrawn": "canceled", "superseded": "canceled", "replaced": "invalid"}


def build(keys: list[KeySpec]) -> list[Round]:
    """The rounds of ``keys`` with their times (and task records)."""
    made: list[Round] = []
    for number, key in enumerate(keys):
        at = BASE + timedelta(seconds=key.start)
        mine: list[Round] = []
        for n, spec in enumerate(key.rounds, start=1):
            at += timedelta(seconds=spec.gap)
            state = _STATE.get(spec.fate, spec.fate)
            mine.append(Round(f"k{number}", key.kind, n, spec.fate, state, at))
        for this, spec, after in zip(mine, key.rounds, [*mine[1:], None], strict=True):
            _times(this, spec, after)
        made += mine
    return made


def _times(this: Round, spec: RoundSpec, after: Round | None) -> None:
    if spec.fate not in WITH_INSTANCE:
        return
    created = this.submitted_at + timedelta(seconds=spec.to_instance)
    this.instance_created_at = created
    if spec.fate == "superseded":
        assert after is not None
        this.cancel_requested_at = after.submitted_at  # ingest asks in the same transaction
        this.finished_at = after.submitted_at + timedelta(seconds=5)
    elif spec.fate in FINAL:
        this.finished_at = created + timedelta(seconds=spec.to_decision)
        if spec.fate == "withdrawn" and spec.canceled_by_row:
            this.cancel_requested_at = this.submitted_at + timedelta(seconds=1)
    for t in spec.tasks:
        started = created + timedelta(seconds=t.start)
        finished = None if t.duration is None else started + timedelta(seconds=t.duration)
        this.tasks.append(Task(0, t.node, t.approver, t.status, t.result, started, finished))


INSERT_ROUND = """
INSERT INTO syncd.approval (kind, business_key, round, state, instance_id, captured_at,
                            created_at, instance_created_at, finished_at, cancel_requested_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id
"""
INSERT_TASK = """
INSERT INTO syncd.task (approval_id, instance_id, record_type, record_key, activity_id,
                        user_id, status, result, started_at, finished_at)
VALUES (%s, %s, 'task', %s, %s, %s, %s, %s, %s, %s) RETURNING id
"""


def store(admin: str, made: list[Round]) -> None:
    """The rounds into an emptied syncd.approval and syncd.task (as the superuser)."""
    with psycopg.connect(admin) as conn:
        conn.execute("TRUNCATE syncd.task, syncd.approval_event, syncd.approval CASCADE")
        for r in made:
            instance = f"inst-{r.kind}-{r.key}-{r.number}" if r.instance_created_at else None
            [(approval_id,)] = conn.execute(
                INSERT_ROUND,
                [
                    *(r.kind, r.key, r.number, r.state, instance, r.submitted_at),
                    *(r.submitted_at, r.instance_created_at, r.finished_at, r.cancel_requested_at),
                ],
            ).fetchall()
            for number, t in enumerate(r.tasks):
                [(t.id,)] = conn.execute(
                    INSERT_TASK,
                    [
                        *(approval_id, instance, f"t{number}", t.node, t.approver),
                        *(t.status, t.result, t.started_at, t.finished_at),
                    ],
                ).fetchall()


# --- the figures, computed in Python from the same rounds ---------------------------------


def trunc(day: date, period: Period) -> date:
    """The first day of the period holding ``day``."""
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1) if period == "month" else day


def period_of(moment: datetime, period: Period, zone: str) -> date:
    return trunc(moment.astimezone(ZoneInfo(zone)).date(), period)


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks (PostgreSQL's percentile_cont)."""
    xs = sorted(values)
    if not xs:
        return None
    position = q * (len(xs) - 1)
    low, high = math.floor(position), math.ceil(position)
    return xs[low] + (xs[high] - xs[low]) * (position - low)


def seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return max(0.0, (later - earlier).total_seconds())


@dataclass
class TaskFact:
    round: Round
    task: Task
    outcome: str
    ended_at: datetime | None
    wait: float | None


def task_facts(made: list[Round]) -> list[TaskFact]:
    facts = []
    for r in made:
        for t in r.tasks:
            if t.status == "NEW":
                continue  # not with anyone yet
            result = (t.result or "").upper()
            if result in ("AGREE", "REFUSE"):
                outcome = "agreed" if result == "AGREE" else "refused"
            elif t.finished_at is None and r.state == "running" and t.status in (None, "RUNNING"):
                outcome = "waiting"
            else:
                outcome = "without_decision"
            ended = t.finished_at or (r.finished_at if r.fate in FINAL else None)
            wait = None if outcome == "waiting" else seconds(ended, t.started_at)
            facts.append(TaskFact(r, t, outcome, ended, wait))
    return facts


@dataclass
class Visit:
    round: Round
    node: str | None
    outcome: str
    started_at: datetime
    wait: float | None


def visits(facts: list[TaskFact]) -> list[Visit]:
    groups: dict[tuple[int, object], list[TaskFact]] = defaultdict(list)
    for f in facts:
        groups[id(f.round), f.task.node or ("task", f.task.id)].append(f)
    found = []
    for group in groups.values():
        outcomes = {f.outcome for f in group}
        if "refused" in outcomes:
            outcome = "refused"
        elif "waiting" in outcomes:
            outcome = "waiting"
        else:
            outcome = "passed" if "agreed" in outcomes else "without_decision"
        started = min(f.task.started_at for f in group)
        ends = [f.ended_at for f in group if f.ended_at is not None]
        ended = max(ends) if ends and outcome != "waiting" else None
        wait = seconds(ended, started) if outcome in ("passed", "refused") else None
        found.append(Visit(group[0].round, group[0].task.node, outcome, started, wait))
    return found


#: One thing counted: its round, group, outcome, timed wait (or None), and start.
Item = tuple[Round, tuple[Any, ...], str, float | None, datetime]


def items(made: list[Round], by: Breakdown) -> list[Item]:
    if by == "kind":
        return [(r, (r.kind,), r.outcome, _decision(r), r.submitted_at) for r in made]
    if by == "node":
        return [
            (v.round, (v.round.kind, v.node), v.outcome, v.wait, v.started_at)
            for v in visits(task_facts(made))
        ]
    return [
        (f.round, (f.round.kind, f.task.approver), f.outcome, _decided_wait(f), f.task.started_at)
        for f in task_facts(made)
    ]


def figures(
    made: list[Round], by: Breakdown, period: Period, zone: str
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The rows the views hold: per (period start, group), the columns of ``by``. The first
    count is of everything; each other count is of one outcome, named as its column."""
    layout = LAYOUTS[by]
    grouped: dict[tuple[Any, ...], list[Item]] = defaultdict(list)
    for item in items(made, by):
        grouped[(period_of(item[0].submitted_at, period, zone), *item[1])].append(item)
    rows = {}
    for key, group in grouped.items():
        row: dict[str, Any] = dict(zip(layout.columns, key, strict=False))
        row[layout.counts[0]] = len(group)
        for column in layout.counts[1:]:
            row[column] = sum(1 for i in group if i[2] == column)
        timed = [i[3] for i in group if i[3] is not None]
        row[layout.figures[0]] = percentile(timed, 0.5)
        row[layout.figures[1]] = percentile(timed, 0.9)
        if by != "kind":
            waiting = [i[4] for i in group if i[2] == "waiting"]
            row["waiting_since"] = min(waiting) if waiting else None
        rows[key] = row
    return rows


def _decision(r: Round) -> float | None:
    return (
        seconds(r.finished_at, r.instance_created_at)
        if r.fate in ("approved", "rejected")
        else None
    )


def _decided_wait(f: TaskFact) -> float | None:
    return f.wait if f.outcome in ("agreed", "refused") else None


def expected_report(
    made: list[Round], by: Breakdown, period: Period, zone: str, configured: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The report: every period from SINCE to UNTIL for every group, zeros where empty."""
    layout = LAYOUTS[by]
    rows = figures(made, by, period, zone)
    groups = {key[1:] for key in rows} | ({(k,) for k in configured} if by == "kind" else set())
    starts, start = [], trunc(SINCE, period)
    while start <= trunc(UNTIL, period):
        starts.append(start)
        start = next_start(period, start)
    report = []
    for start in starts:
        for group in sorted(groups, key=lambda g: tuple((v is None, v or "") for v in g)):
            zero = dict(zip(layout.columns, (start, *group), strict=False))
            zero |= dict.fromkeys(layout.counts, 0) | dict.fromkeys(layout.figures)
            report.append(rows.get((start, *group), zero))
    return report


# --- running the command -----------------------------------------------------------------


@contextlib.contextmanager
def _own_logging() -> Iterator[None]:
    """main() routes logging to this process's stderr; give pytest its handlers back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def report(config: Path, *argv: str) -> tuple[int, str, str]:
    """``syncd report ARGV`` with ``config``: exit code, stdout, stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        _own_logging(),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            code = main(["--config", str(config), "--log-format", "json", "report", *argv])
        except SystemExit as exc:  # argparse refused the options
            code = int(exc.code or 0)
    return code, stdout.getvalue(), stderr.getvalue()


def report_json(config: Path, *argv: str) -> dict[str, Any]:
    code, out, err = report(config, "--format", "json", *argv)
    assert code == 0, err
    return dict(json.loads(out))


def configure(path: Path, dsn: str) -> Path:
    """A configuration with the database and one kind (leave) configured."""
    path.write_text(render_toml(config_data(dsn)), encoding="utf-8")
    return path


@pytest.fixture
def as_daemon(daemon_dsn: str, tmp_path: Path) -> Path:
    return configure(tmp_path / "daemon.toml", daemon_dsn)


@pytest.fixture
def reader_dsn(database: str, logins) -> str:
    """``database`` as a member of syncd_reader (a reporting tool's login)."""
    return str(logins.new(database, "reader", acts_as=READER))


def same(found: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> None:
    """Rows equal column by column; seconds to the millisecond (JSON and CSV round them)."""
    assert [list(r) for r in found] == [list(r) for r in wanted]
    for got, row in zip(found, wanted, strict=True):
        for column, value in row.items():
            if isinstance(value, float):
                assert got[column] == pytest.approx(value, abs=1e-3), (column, row)
            else:
                assert got[column] == value, (column, got, row)


def as_text(row: dict[str, Any]) -> dict[str, Any]:
    """A row of figures as the JSON report carries it."""
    converted: dict[str, Any] = {}
    for column, value in row.items():
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat()
        elif isinstance(value, date):
            value = value.isoformat()
        converted[column] = value
    return converted


def from_csv(text: str, columns: list[str]) -> list[dict[str, Any]]:
    """CSV rows as JSON carries them: numbers as numbers, empty cells as None."""
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == columns
    rows = []
    for line in reader:
        row: dict[str, Any] = {}
        for column, cell in line.items():
            if cell == "":
                row[column] = None
            elif column.endswith("_seconds"):
                row[column] = float(cell)
            elif cell.isdigit():
                row[column] = int(cell)
            else:
                row[column] = cell
        rows.append(row)
    return rows


# --- the property ------------------------------------------------------------------------


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    keys=st.lists(KEYS, min_size=1, max_size=8),
    period=st.sampled_from(["day", "week", "month"]),
    zone=st.sampled_from(ZONES),
)
def test_report_and_views_equal_the_figures_computed_from_the_rounds(
    database, as_daemon, reader_dsn, keys, period, zone
):
    made = build(keys)
    store(database, made)
    span = ("--period", period, "--tz", zone, "--since", str(SINCE), "--until", str(UNTIL))
    for by in ("kind", "node", "approver"):
        wanted = [as_text(r) for r in expected_report(made, by, period, zone, ("leave",))]
        found = report_json(as_daemon, *span, "--by", by)
        assert found["columns"] == list(LAYOUTS[by].columns)
        assert (found["first_period"], found["time_zone"]) == (str(trunc(SINCE, period)), zone)
        same(found["rows"], wanted)
        code, out, err = report(as_daemon, *span, "--by", by, "--format", "csv")
        assert code == 0, err
        same(from_csv(out, found["columns"]), found["rows"])
        in_views(reader_dsn, made, by, period, zone)
    with psycopg.connect(reader_dsn) as conn:
        outcomes = conn.execute(
            "SELECT kind, business_key, round, outcome FROM syncd.stats_rounds"
        ).fetchall()
    assert sorted(outcomes) == sorted((r.kind, r.key, r.number, r.outcome) for r in made)


VIEWS = {"kind": "stats_by_period", "node": "stats_by_node", "approver": "stats_by_approver"}


def in_views(reader: str, made: list[Round], by: Breakdown, period: Period, zone: str) -> None:
    """The view of ``by``, read as syncd_reader in ``zone``, holds exactly the figures."""
    layout = LAYOUTS[by]
    wanted = figures(made, by, period, zone)
    with psycopg.connect(reader) as conn:
        conn.execute("SELECT set_config('TimeZone', %s, false)", [zone])
        cursor = conn.execute(
            f"SELECT {', '.join(layout.columns)} FROM syncd.{VIEWS[by]} WHERE period = %s",
            [period],
        )
        names = [c.name for c in cursor.description or ()]
        found = {
            tuple(row[: 1 + len(layout.group)]): dict(zip(names, row, strict=True))
            for row in cursor.fetchall()
        }
    assert set(found) == set(wanted)
    for key, row in wanted.items():
        same([found[key]], [row])


# --- ranges, zeros, formats and errors -----------------------------------------------------


def test_a_range_without_rounds_shows_each_period_with_zeros(database, as_daemon):
    span = ("--period", "week", "--since", "2025-01-01", "--until", "2025-02-28")
    found = report_json(as_daemon, *span)
    weeks = [date(2024, 12, 30) + timedelta(weeks=n) for n in range(9)]  # Mondays
    assert [(r["period_start"], r["kind"]) for r in found["rows"]] == [
        (str(w), "leave") for w in weeks
    ]
    zero = {c: 0 for c in LAYOUTS["kind"].counts} | dict.fromkeys(LAYOUTS["kind"].figures)
    assert all({c: r[c] for c in zero} == zero for r in found["rows"])

    code, out, err = report(as_daemon, *span, "--kind", "expense", "--format", "csv")
    assert code == 0 and '"action": "report_unknown_kind"' in err
    rows = from_csv(out, list(LAYOUTS["kind"].columns))
    assert [(r["period_start"], r["kind"], r["submitted"]) for r in rows] == [
        (str(w), "expense", 0) for w in weeks
    ]
    code, out, _ = report(as_daemon, *span)
    lines = out.splitlines()
    assert lines[0] == "Approvals submitted per week (UTC), 2024-12-30 to 2025-02-24"
    assert lines[2].split() == [
        "week", "of", "kind", "submitted", "approved", "rejected", "canceled", "superseded",
        "parked", "dismissed", "pending", "running", "decision", "p50", "p90",
    ]  # fmt: skip
    assert lines[3].split() == ["2024-12-30", "leave", *["0"] * 9, "-", "-"]


def test_without_a_range_the_last_twelve_months_up_to_this_one(database, as_daemon):
    before = datetime.now(UTC).date()
    found = report_json(as_daemon)
    after = datetime.now(UTC).date()
    assert found["last_period"] in {str(before.replace(day=1)), str(after.replace(day=1))}
    last = date.fromisoformat(found["last_period"])
    first = date(last.year - (last.month < 12), (last.month % 12) + 1, 1)
    assert found["first_period"] == str(first)
    assert [r["period_start"] for r in found["rows"]] == [str(d) for d in _months(first, last)]
    found = report_json(as_daemon, "--period", "day", "--until", "2025-03-10")
    assert (found["first_period"], found["last_period"]) == ("2025-02-09", "2025-03-10")


def _months(first: date, last: date) -> Iterator[date]:
    while first <= last:
        yield first
        first = next_start("month", first)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--since", "2025-13-01"], "'2025-13-01' is not a date: use YYYY-MM-DD"),
        (["--since", "2025-03-01", "--until", "2025-02-01"], "--since 2025-03-01 comes after"),
        (["--tz", "Mars/Olympus"], "time zone 'Mars/Olympus': PostgreSQL does not know it"),
        (["--period", "year"], "invalid choice: 'year'"),
        (["--by", "user"], "invalid choice: 'user'"),
    ],
)
def test_bad_options_exit_2_and_say_what_to_give(database, as_daemon, argv, says):
    code, out, err = report(as_daemon, *argv)
    assert (code, out) == (2, "")
    assert says in err


def test_the_reader_role_reads_the_statistics_and_nothing_else(database, reader_dsn, tmp_path):
    store(database, build([KeySpec("leave", 0, (RoundSpec("approved", 60, 5, 90, False, ()),))]))
    with psycopg.connect(reader_dsn, autocommit=True) as conn:
        for view in ("stats_rounds", "stats_tasks", "stats_node_visits", *VIEWS.values()):
            conn.execute(f"SELECT * FROM syncd.{view}").fetchall()
        [(outcome, seconds_)] = conn.execute(
            "SELECT outcome, decision_seconds FROM syncd.stats_rounds"
        ).fetchall()
        assert (outcome, seconds_) == ("approved", 90.0)
        for table in ("approval", "task", "approval_event", "outbox", "inbox", "usage"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM syncd.{table}")
    config = configure(tmp_path / "reader.toml", reader_dsn)
    found = report_json(
        config, "--period", "month", "--since", "2025-10-01", "--until", "2025-10-31"
    )
    assert [(r["kind"], r["submitted"], r["approved"]) for r in found["rows"]] == [("leave", 1, 1)]


def test_views_list_for_dbas(database):
    """Each statistics view carries a comment (psql's \\dv+ shows it)."""
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'syncd' AND c.relname LIKE 'stats\\_%%' AND c.relkind = 'v'"
        ).fetchall()
    assert {name for name, _ in rows} == {
        "stats_rounds",
        "stats_tasks",
        "stats_node_visits",
        *VIEWS.values(),
    }
    assert all(comment for _, comment in rows)


# --- a real daemon's approvals -------------------------------------------------------------


CALLBACK = {
    "enabled": True,
    "token": "simtoken123",
    "aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
}


async def test_a_daemons_rounds_and_tasks_show_in_the_report_and_the_metric(world, cli):
    """Approved by the simulator's rule, refused by an approver, revoked, still with an
    approver, parked, with events over HTTP callbacks: the report of that day equals what
    syncd recorded, and the decision-time histogram counted the three outcomes."""
    registry = CollectorRegistry()
    parked = world.submit_leave(applicant="left1")
    approved, refused = world.submit_leave(days=2), world.submit_leave(days=8)
    revoked, running = world.submit_leave(days=9), world.submit_leave(days=5)
    settings = world.settings(events={"stream": False, "callback": CALLBACK})
    async with world.daemon(settings, registry=registry) as daemon:
        http = daemon.app.http_app()
        world.sim.callbacks.set_client(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=http), base_url="http://syncd")
        )
        world.sim.callbacks.set_url(APP_KEY, "http://syncd/dingtalk/callback")
        await daemon.drain()
        instances = dict(world.sql("SELECT business_key, instance_id FROM syncd.approval"))
        world.sim.refuse(instances[str(refused)], remark="no")
        world.sim.terminate(instances[str(revoked)])
        await world.advance(120)
        await daemon.drain()
    states = dict(world.sql("SELECT business_key, state FROM syncd.approval"))
    assert [states[str(k)] for k in (parked, approved, refused, revoked, running)] == [
        "invalid", "approved", "rejected", "canceled", "running"
    ]  # fmt: skip
    today = datetime.now(UTC).date()
    span = [
        *("--period", "month", "--format", "json"),
        *("--since", str(today - timedelta(days=1)), "--until", str(today + timedelta(days=1))),
    ]

    code, out, err = await cli("report", *span)
    assert code == 0, err
    rows = json.loads(out)["rows"]
    totals = {c: sum(r[c] for r in rows) for c in LAYOUTS["kind"].counts}
    assert totals == {
        "submitted": 5, "approved": 1, "rejected": 1, "canceled": 1, "superseded": 0,
        "parked": 1, "dismissed": 0, "pending": 0, "running": 1,
    }  # fmt: skip
    decisions = [
        s for (s,) in world.sql(
            "SELECT greatest(0, extract(epoch FROM finished_at - instance_created_at))::float8 "
            "FROM syncd.approval WHERE state IN ('approved', 'rejected')"
        )
    ]  # fmt: skip
    [row] = [r for r in rows if r["submitted"]]
    assert row["decision_p50_seconds"] == pytest.approx(percentile(decisions, 0.5), abs=1e-3)

    tasks = world.sql(
        "SELECT user_id, activity_id, result FROM syncd.task WHERE record_type = 'task'"
    )
    code, out, err = await cli("report", *span, "--by", "approver")
    assert code == 0, err
    by_approver = {r["approver"]: r for r in json.loads(out)["rows"] if r["tasks"]}
    assert {a: r["tasks"] for a, r in by_approver.items()} == {
        user: sum(1 for u, _, _ in tasks if u == user) for user, _, _ in tasks
    }
    assert sum(r["refused"] for r in by_approver.values()) == 1
    assert sum(r["waiting"] for r in by_approver.values()) >= 1
    code, out, err = await cli("report", *span, "--by", "node", "--format", "csv")
    assert code == 0, err
    by_node = from_csv(out, list(LAYOUTS["node"].columns))
    assert {r["node"] for r in by_node} == {node for _, node, _ in tasks}
    assert sum(r["refused"] for r in by_node) == 1

    assert (
        registry.get_sample_value(
            "syncd_decision_time_seconds_count", {"kind": "leave", "state": "approved"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "syncd_decision_time_seconds_count", {"kind": "leave", "state": "rejected"}
        )
        == 1
    )
