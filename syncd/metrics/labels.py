"""The closed sets metric label values come from, and the functions that keep them closed.

A value outside its set becomes ``unknown`` (kinds) or ``other`` (everything else), so a
label never carries an id, a user, a process code or a raw DingTalk code. Channels come
from :data:`syncd.domain.CHANNELS`, endpoints and outcomes from
:mod:`syncd.dingtalk.endpoints`.
"""

from __future__ import annotations

from collections.abc import Iterable

from syncd import errors
from syncd.dingtalk.callback import REASONS as CALLBACK_REASONS
from syncd.domain import CHANNELS, ApprovalState

#: syncd's own reasons for parking a row (ingest and submit), beside exception classes.
PARK_REASONS = frozenset(
    {
        "unknown_kind",
        "empty_key",
        "unknown_action",
        "still_running",
        "bad_payload",
        "nothing_to_cancel",
        "not_created",
        "invalid",
        "key_too_long",
        "internal_error",
    }
)
#: Why the database refused an outbox row, by SQLSTATE class (quarantine reasons).
QUARANTINE_REASONS = {
    "22": "data_exception",
    "23": "integrity_violation",
    "54": "program_limit",
    "XX": "internal_error",
}
PAUSE_REASONS = frozenset({"quota", "auth"})


def _error_classes() -> frozenset[str]:
    found: set[str] = set()
    todo: list[type[BaseException]] = [errors.SyncdError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return frozenset(found)


class Labels:
    """Maps raw values onto their closed label sets (the kinds are the configured ones)."""

    def __init__(self, kinds: Iterable[str] = ()) -> None:
        self.kinds = frozenset(kinds)
        self.error_classes = _error_classes()

    def kind(self, value: object) -> str:
        return value if isinstance(value, str) and value in self.kinds else "unknown"

    def error_class(self, value: str) -> str:
        return value if value in self.error_classes else "other"

    def reason(self, value: str) -> str:
        return value if value in PARK_REASONS or value in self.error_classes else "other"

    @staticmethod
    def channel(value: str) -> str:
        return value if value in CHANNELS else "other"

    @staticmethod
    def state(value: str) -> str:
        return value if value in ApprovalState._value2member_map_ else "other"

    @staticmethod
    def quarantine_reason(sqlstate: str) -> str:
        return QUARANTINE_REASONS.get(sqlstate[:2], "other")

    @staticmethod
    def callback_reason(value: str) -> str:
        return value if value in CALLBACK_REASONS else "other"
