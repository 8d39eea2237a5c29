from __future__ import annotations

import re

from syncd.db.queries import sql_dir
from syncd.domain import FINISHED, TRANSITIONS, ApprovalState, can_move


def test_schema_check_lists_exactly_the_domain_states():
    schema = (sql_dir() / "schema.sql").read_text()
    check = re.search(r"approval_state_check CHECK \(state IN \(([^)]*)\)", schema)
    assert check is not None
    assert set(re.findall(r"'([a-z]+)'", check[1])) == {s.value for s in ApprovalState}


def test_finished_states_never_move_and_nothing_skips_to_finished_without_running():
    for state in FINISHED:
        assert TRANSITIONS[state] == frozenset()
    sources = {s for s, targets in TRANSITIONS.items() if targets & FINISHED}
    assert sources == {ApprovalState.RUNNING, ApprovalState.PENDING}
    assert can_move(ApprovalState.PENDING, ApprovalState.CANCELED)
    assert not can_move(ApprovalState.APPROVED, ApprovalState.REJECTED)
    assert ApprovalState.DEAD.parked and ApprovalState.APPROVED.finished
