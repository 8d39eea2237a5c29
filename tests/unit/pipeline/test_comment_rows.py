"""Comment rows: any text of 1 to 1,024 characters is sent as it is; anything else is
refused with a message naming the row and the field."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.domain import ApprovalState, LatestRound, NoteOnRound, OutboxRow
from syncd.domain_comments import COMMENT_TEXT_MAX, CommentOnRound
from syncd.pipeline.comment_rows import decide_comment

TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
RUNNING = LatestRound(7, 1, ApprovalState.RUNNING, False)


def row(payload: object) -> OutboxRow:
    return OutboxRow(41, datetime(2026, 1, 1, tzinfo=UTC), "leave", "1", "comment", payload, None)


@settings(max_examples=300, deadline=None)
@given(text=TEXT | st.text(min_size=1000, max_size=1100), user=st.none() | TEXT)
def test_a_comment_is_sent_as_written_or_refused_naming_the_field(
    text: str, user: str | None
) -> None:
    payload = {"text": text} if user is None else {"text": text, "user": user}
    [decision] = decide_comment(row(payload), RUNNING, [])
    assert isinstance(decision, CommentOnRound) and decision.approval_id == 7
    good_text = bool(text.strip()) and len(text) <= COMMENT_TEXT_MAX
    good_user = user is None or (bool(user.strip()) and len(user) <= 256)
    if good_text and good_user:
        assert decision.error is None and decision.text == text and decision.user_id == user
    else:
        assert decision.error is not None and decision.error.startswith("outbox row 41: payload: ")
        assert ("text" if not good_text else "user") in decision.error


@given(payload=st.none() | st.integers() | st.lists(st.integers()) | st.just({"files": []}))
def test_other_payloads_are_refused(payload: object) -> None:
    [decision] = decide_comment(row(payload), RUNNING, [])
    assert isinstance(decision, CommentOnRound) and decision.error


@given(
    state=st.sampled_from(
        [s for s in ApprovalState if s.value not in ("pending", "submitting", "running", "unknown")]
    )
)
def test_a_finished_round_only_notes_the_comment(state: ApprovalState) -> None:
    [decision] = decide_comment(row({"text": "hi"}), LatestRound(7, 1, state, False), [])
    assert isinstance(decision, NoteOnRound) and state.value in decision.message


FILE = st.fixed_dictionaries(
    {"name": TEXT},
    optional={"content_base64": st.just("JVBERg=="), "path": TEXT, "url": TEXT},
)


@settings(max_examples=200, deadline=None)
@given(files=st.lists(FILE | st.integers(), max_size=22))
def test_a_comments_files_are_kept_or_refused_naming_the_file(files: list[object]) -> None:
    [decision] = decide_comment(row({"text": "see the files", "files": files}), RUNNING, [])
    assert isinstance(decision, CommentOnRound)
    good = len(files) <= 20 and all(
        isinstance(f, dict) and len(set(f) & {"content_base64", "path", "url"}) == 1 for f in files
    )
    if good:
        assert decision.error is None and decision.files == (files or None)
    else:
        assert decision.error is not None and "payload: files: " in decision.error
