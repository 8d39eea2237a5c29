"""The relay's adaptive poll interval, over drawn bounds and runs of passes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from syncd.pipeline.relay import PollInterval
from syncd.settings_databases import BusinessDatabaseSettings

BOUNDS = st.tuples(st.floats(0.001, 5), st.floats(0.001, 60)).map(sorted)
PASSES = st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=40)


@given(BOUNDS, PASSES)
def test_the_interval_stays_within_its_bounds_fast_when_rows_flow(bounds, passes) -> None:
    poll = PollInterval(*bounds)
    interval = poll.min
    idle = 0
    for handled, full in passes:
        interval = poll.next(interval, handled, full and handled > 0)
        idle = 0 if handled else idle + 1
        if full and handled:
            assert interval == 0.0  # a full batch: read again at once
        elif handled:
            assert interval == poll.min
        else:
            assert poll.min <= interval <= poll.max
            assert interval == min(poll.min * 2**idle, poll.max) or idle == 0


def test_poll_min_may_not_exceed_poll_max() -> None:
    with pytest.raises(ValidationError, match=r"poll_min \(3.0\) must not exceed poll_max"):
        BusinessDatabaseSettings(dsn="mysql://u:p@h/erp", poll_min=3, poll_max=2)
