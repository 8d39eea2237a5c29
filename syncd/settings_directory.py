"""[directory]: the synced DingTalk directory's settings (``Settings.directory``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from syncd.settings_kinds import KindSettings


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds_of(value: Any) -> Any:
    """A duration as seconds: a number, or text such as ``90s``, ``30m``, ``24h``, ``90d``."""
    if isinstance(value, str):
        found = _DURATION.match(value)
        if found is None:
            raise ValueError("a duration is a number of seconds or e.g. 30m, 24h, 90d")
        return float(found.group(1)) * _UNIT_SECONDS[found.group(2) or "s"]
    return value


class DirectorySettings(_Section):
    """[directory]: the synced DingTalk directory (people named by job number, mobile or
    email). ``enabled`` unset: on when a kind names someone by anything but userid."""

    enabled: bool | None = None
    resync_interval: float = Field(
        default=86400.0, ge=60, le=30 * 86400, description="seconds (or 24h) between full syncs"
    )
    forget_departed_after: float = Field(
        default=90 * 86400.0,
        ge=3600,
        le=3650 * 86400,
        description="seconds (or 90d) a departed user's row is kept",
    )
    page_size: int = Field(default=100, ge=1, le=100, description="members per page")

    @field_validator("resync_interval", "forget_departed_after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return seconds_of(value)


def names_people_by_directory(kinds: Mapping[str, KindSettings]) -> bool:
    """Whether some kind names someone by job number, mobile or email, or its department
    by name (``by = ...``)."""
    return any(kind.uses_directory for kind in kinds.values())
