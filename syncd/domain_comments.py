"""Comments an application asks syncd to add to its approvals (outbox ``action = 'comment'``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: DingTalk takes comments of 1 to this many characters (contract §18.1).
COMMENT_TEXT_MAX = 1024
#: The longest user value syncd takes in a comment row (a userId, or what ``by`` names).
COMMENT_USER_MAX = 256
#: Files on one comment (``file.attachments``, contract §18.1).
COMMENT_FILES_MAX = 20


@dataclass(frozen=True)
class CommentOnRound:
    """Ingest decision: add a comment to the round's instance (held until it exists)."""

    approval_id: int
    text: str
    user_id: str | None = None
    #: Why the row cannot be sent (the comment is kept as ``failed`` with it); None: send.
    error: str | None = None
    #: The payload's ``files`` (each: name and one of content_base64, path or url).
    files: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class CommentItem:
    """A waiting comment the comment stage claimed, with what sending it needs."""

    id: int
    approval_id: int
    kind: str
    business_key: str
    instance_id: str
    text: str
    user_id: str | None  # as the outbox row named them (None: the default user)
    originator_user_id: str | None  # the userId the round's create was sent with
    in_doubt: bool  # an earlier send's outcome is unknown: read the records first
    attempts: int
    files: list[dict[str, Any]] | None = None  # as the outbox row named them


def written_comments(raw: object) -> tuple[dict[str, Any], ...]:
    """The write-back source ``comments``, the approvers' comments oldest first, each
    ``{user, at, text}``, from the JSON array ``syncd.approval_written_comments`` returns."""
    return tuple(c for c in raw if isinstance(c, dict)) if isinstance(raw, list) else ()


def last_comment(comments: tuple[dict[str, Any], ...]) -> str | None:
    """The write-back source ``last_comment``: the latest comment's text, or None."""
    return str(comments[-1].get("text") or "") if comments else None
