"""What an outbox row with ``action = 'comment'`` does (ingest's decision for it).

The payload is ``{"text": "...", "user": "...", "files": [...]}``: ``text`` the comment
(1 to 1,024 characters, DingTalk's limit), ``user`` optional, who comments (named as the
kind's originator is, by its ``by``; default: the kind's ``comment_user``, else the
round's originator), ``files`` optional, at most 20 files to attach, each ``{"name": ...}``
with one of ``content_base64``, ``path`` (under ``[attachments] base_dir``) or ``url`` (a
host on ``allow_hosts``), as a DDAttachment component's files are named.

The comment goes to the latest round of the business key: held while that
round has no instance yet, sent once it runs, and only noted when the round finished.
A payload syncd cannot send is kept with the round as a failed comment whose message
names the row and the field; a comment for a business key never submitted parks as an
``invalid`` round, as a cancel does.
"""

from __future__ import annotations

from typing import Any

from syncd.domain import ACTIVE, IngestDecision, LatestRound, NoteOnRound, OutboxRow
from syncd.domain_comments import (
    COMMENT_FILES_MAX,
    COMMENT_TEXT_MAX,
    COMMENT_USER_MAX,
    CommentOnRound,
)
from syncd.pipeline.attach import AttachmentProblem, file_ref

#: Payload fields of a comment row; anything else is refused (rather than dropped).
FIELDS = ("text", "user", "files")
_LATER = ("attachments", "photos")


def files_problem(files: Any) -> str | None:
    """Why a comment row's ``files`` cannot be sent (naming the file), or None."""
    if not isinstance(files, list):
        return 'payload: files: expected a list such as [{"name": "a.pdf", "path": "..."}]'
    if len(files) > COMMENT_FILES_MAX:
        return f"payload: files: {len(files)} files; DingTalk takes at most {COMMENT_FILES_MAX}"
    for n, raw in enumerate(files):
        try:
            file_ref(raw, f"payload: files: file {n + 1}")
        except AttachmentProblem as exc:
            return str(exc)
    return None


def comment_problem(payload: Any) -> str | None:
    """Why a comment row's payload cannot be sent (naming the field and the fix), or None."""
    if not isinstance(payload, dict):
        return 'payload: a comment row needs a JSON object such as {"text": "..."}'
    if later := [name for name in _LATER if name in payload]:
        return (
            f"payload: {later[0]}: not a comment field; name the comment's files in "
            '"files": [{"name": ..., "content_base64" | "path" | "url": ...}]'
        )
    if others := sorted(set(payload) - set(FIELDS)):
        return f"payload: {others[0][:60]!r} is not a comment field (only text, user, files)"
    text = payload.get("text")
    if not isinstance(text, str):
        return 'payload: text: missing or not a string; write {"text": "the comment"}'
    if not text.strip():
        return "payload: text: empty; DingTalk takes comments of 1 to 1,024 characters"
    if len(text) > COMMENT_TEXT_MAX:
        return (
            f"payload: text: {len(text)} characters, more than the {COMMENT_TEXT_MAX} DingTalk "
            "takes in a comment; shorten it or split it into several comment rows"
        )
    if payload.get("files") is not None and (problem := files_problem(payload["files"])):
        return problem
    return _user_problem(payload.get("user"))


def _user_problem(user: Any) -> str | None:
    if user is None:
        return None
    if isinstance(user, bool) or not isinstance(user, str | int):
        return "payload: user: expected a string (who comments) or leave it out"
    if not str(user).strip() or len(str(user)) > COMMENT_USER_MAX:
        return f"payload: user: must be 1 to {COMMENT_USER_MAX} characters, or left out"
    return None


def decide_comment(
    row: OutboxRow, latest: LatestRound | None, parked: list[IngestDecision]
) -> list[IngestDecision]:
    """A comment row's decision; ``parked`` is what a row with no round to go to becomes."""
    if latest is None:
        return parked
    problem = comment_problem(row.payload)
    if problem is not None:
        return [CommentOnRound(latest.id, "", None, error=f"outbox row {row.id}: {problem}")]
    if latest.state not in ACTIVE:
        return [
            NoteOnRound(
                latest.id,
                f"outbox row {row.id}: comment not sent, approval is already {latest.state.value}",
            )
        ]
    user = None if row.payload.get("user") is None else str(row.payload["user"])
    files = row.payload.get("files") or None
    return [CommentOnRound(latest.id, row.payload["text"], user, files=files)]
