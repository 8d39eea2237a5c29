"""When a run ends, and what the views and the summary show."""

from __future__ import annotations

import io
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.demo.inbound import Imported
from syncd.demo.runner import DemoOptions, progress_status
from syncd.demo.stats import Snapshot
from syncd.demo.view import (
    Links,
    LiveView,
    LogTail,
    Progress,
    clip,
    display_width,
    frame,
    summary_lines,
    worth_showing,
)

DONE_BY_RULES = Snapshot(
    inserted=20, states={"approved": 14, "rejected": 4, "running": 2}, waiting_for_person=2
)


@pytest.mark.parametrize(
    ("options", "snapshot", "submitted_all", "elapsed", "finished"),
    [
        (DemoOptions(), DONE_BY_RULES, False, 5.0, False),
        (DemoOptions(), DONE_BY_RULES, True, 5.0, True),
        (DemoOptions(live=True), DONE_BY_RULES, True, 5.0, False),
        (DemoOptions(duration=60), DONE_BY_RULES, True, 5.0, False),
        (DemoOptions(duration=60), DONE_BY_RULES, True, 60.0, True),
        (DemoOptions(live=True), Snapshot(inserted=2, states={"approved": 2}), True, 1.0, True),
        # a running approval that a rule will still decide keeps the run going
        (DemoOptions(), Snapshot(inserted=1, states={"running": 1}), True, 1.0, False),
        # an approval finished but not yet written back keeps the run going
        (
            DemoOptions(),
            Snapshot(inserted=1, states={"approved": 1}, unwritten=1),
            True,
            1.0,
            False,
        ),
        # an outbox row not yet ingested keeps the run going
        (DemoOptions(), Snapshot(inserted=2, states={"approved": 1}), True, 1.0, False),
    ],
)
def test_when_the_run_ends(options, snapshot, submitted_all, elapsed, finished):
    assert progress_status(options, snapshot, submitted_all, elapsed)[0] is finished


def test_the_summary_counts_every_state():
    snapshot = Snapshot(
        inserted=20,
        states={"approved": 12, "rejected": 4, "running": 2, "pending": 1, "dead": 1},
        calls_spent=30,
        waiting_for_person=2,
        created_p50=0.123,
        created_p95=0.5,
    )
    text = "\n".join(summary_lines(snapshot))
    assert "approved        12" in text
    assert "pending          3   (2 waiting for a person)" in text
    assert "parked           1   (invalid 0, dead 1)" in text
    assert "p50 0.12 s   p95 0.50 s" in text
    assert "decision → written back      p50 –" in text
    assert "calls per approval  1.7" in text  # 30 calls over 18 approvals with an instance


def test_clip_counts_wide_characters_twice():
    assert display_width("请假ab") == 6
    assert clip("请假请假ab", 6) == "请假…"
    assert clip("short", 10) == "short"


def test_the_live_view_redraws_in_place(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("LINES", "40")
    stream = io.StringIO()
    logs = LogTail(lines=2)
    view = LiveView(stream, Links("http://sim:1", "http://d:2", "postgresql://db"), logs)
    progress = Progress(DONE_BY_RULES, 20, 2.0, 3.0, "working")
    view.show(progress)
    logs.write("one\ntwo\nthree\n")
    view.show(progress)
    view.close()
    first, second = stream.getvalue().split("\x1b[", 2)[1:]
    assert first.startswith("?25l") and "http://sim:1/_sim/" in first
    drawn = first.count("\n")
    assert second.startswith(f"{drawn}F")
    assert "three" in second and "one" not in second
    assert stream.getvalue().endswith("\x1b[?25h")


def test_the_live_view_fits_a_small_terminal_dropping_old_log_lines_first(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("LINES", "26")
    stream = io.StringIO()
    logs = LogTail()
    view = LiveView(stream, Links("http://sim:1", "http://d:2", "postgresql://db"), logs)
    logs.write("old\nnew 请假" + "x" * 60 + "\n")
    view.show(Progress(DONE_BY_RULES, 20, 2.0, 3.0, "working"))
    lines = stream.getvalue().removeprefix("\x1b[?25l").splitlines()
    assert len(lines) <= 25
    assert all(display_width(line) <= 39 for line in lines)
    assert lines[-1].startswith("  new 请假") and "old" not in lines


def test_the_live_view_leaves_out_chatty_log_records():
    def record(level: int, action: str) -> logging.LogRecord:
        entry = logging.LogRecord("syncd", level, __file__, 1, "m", None, None)
        entry.action = action
        return entry

    assert worth_showing(record(logging.INFO, "writeback_done"))
    assert not worth_showing(record(logging.INFO, "event_received"))
    assert worth_showing(record(logging.WARNING, "event_received"))


_COUNT = st.integers(0, 99_999)
_STATES = st.sampled_from(["running", "approved", "rejected", "canceled", "invalid"])
_IMPORTED = st.builds(
    Imported,
    id=st.integers(1, 99_999),
    applicant=st.sampled_from(["u1", "manager1", "finance2"]),
    leave_type=st.sampled_from(["年假", "事假", "病假"]),
    days=st.integers(1, 999).map(str),
    outcome=st.sampled_from(["", "APPROVED", "REJECTED", "CANCELED"]),
)
_SNAPSHOTS = st.builds(
    Snapshot,
    inserted=_COUNT,
    states=st.dictionaries(
        st.sampled_from(
            [
                "pending",
                "submitting",
                "running",
                "approved",
                "rejected",
                "canceled",
                "invalid",
                "dead",
                "unknown",
            ]
        ),
        _COUNT,
    ),
    waiting_for_person=_COUNT,
    calls_spent=_COUNT,
    simulator_calls=_COUNT,
    created_p50=st.none() | st.floats(0, 9_999),
    created_p95=st.none() | st.floats(0, 9_999),
    written_p50=st.none() | st.floats(0, 9_999),
    written_p95=st.none() | st.floats(0, 9_999),
    started_in_dingtalk=_COUNT,
    inbound_states=st.dictionaries(_STATES, _COUNT),
    imported=st.lists(_IMPORTED, max_size=3).map(tuple),
)


@settings(max_examples=200)
@given(
    snapshot=_SNAPSHOTS,
    requests=st.integers(1, 99_999),
    rate=st.sampled_from([0.5, 1.0, 2.0, 20.0, 100.0]),
    elapsed=st.floats(0, 99_999),
    options=st.builds(DemoOptions, live=st.booleans(), duration=st.none() | st.floats(1, 3600)),
    submitted_all=st.booleans(),
    inbound=st.booleans(),
)
def test_every_line_of_the_live_view_and_the_summary_fits_80_columns(
    snapshot, requests, rate, elapsed, options, submitted_all, inbound
):
    _, status = progress_status(options, snapshot, submitted_all, elapsed)
    links = Links(
        "http://127.0.0.1:65535",
        "http://127.0.0.1:65534",
        "postgresql://postgres@127.0.0.1:65533/syncd_demo",
        inbound=inbound,
    )
    lines = frame(Progress(snapshot, requests, rate, elapsed, status), links)
    lines += summary_lines(snapshot)
    assert [line for line in lines if display_width(line) > 79] == []


def test_with_a_business_database_the_links_name_both_databases_within_80_columns():
    links = Links(
        "http://127.0.0.1:65535",
        "http://127.0.0.1:65534",
        "postgresql://postgres@127.0.0.1:65533/postgres",
        ("MariaDB", "mysql://syncd_admin:***@127.0.0.1:65532/syncd_demo"),
    )
    lines = links.lines()
    assert lines[-3] == "  syncd's state   postgresql://postgres@127.0.0.1:65533/postgres"
    assert (
        lines[-2] == "  business db     MariaDB  mysql://syncd_admin:***@127.0.0.1:65532/syncd_demo"
    )
    # the parts a MySQL/MariaDB business table cannot have are said to be missing
    assert lines[-1] == "  (receipts and leave started in DingTalk: with PostgreSQL only)"
    assert all(display_width(line) <= 79 for line in lines)
    # without one, the lines are the PostgreSQL demo's
    assert Links("s", "d", "db").lines()[-1] == "  database        db"


def test_the_live_view_lists_the_leave_imported_from_dingtalk_and_where_to_start_more():
    snapshot = Snapshot(
        started_in_dingtalk=2,
        inbound_states={"approved": 1, "running": 1},
        imported=(Imported(2, "u5", "事假", "7", ""), Imported(1, "u2", "年假", "2", "APPROVED")),
    )
    lines = frame(Progress(snapshot, 20, 2.0, 3.0, "working"), Links("s", "d", "db", inbound=True))
    text = "\n".join(lines)
    assert "started in DingTalk     2, imported 2 → app.leave_from_dingtalk" in text
    assert "    #1 u2 年假 2 d → APPROVED" in text
    assert "    #2 u5 事假 7 d → waiting for a decision" in text
    assert "Start in DingTalk" in text and "start leave here" in text
    summary = "\n".join(summary_lines(snapshot))
    assert "from DingTalk     2   (of 2 started; approved 1, rejected 0)" in summary
    # without the inbound part (MariaDB), the frame has no such lines
    plain = frame(Progress(Snapshot(), 20, 2.0, 3.0, "working"), Links("s", "d", "db"))
    assert not any("started in DingTalk" in line for line in plain)
