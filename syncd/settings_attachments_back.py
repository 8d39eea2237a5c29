"""``[kinds.<name>.attachments_back]``: the files of a kind's finished instances fetched
back from DingTalk (contract §17.7, §18.2) into a table of syncd's PostgreSQL or a
directory, each exactly once.

``to = "table"`` inserts one row per file into ``table`` (columns ``business_key``,
``file_id``, ``file_name``, ``file_size``, ``file_type``, ``attached_by``,
``attached_at``, ``attached_in``, ``content``; see README); ``to = "directory"`` writes
``<directory>/<kind>/<business_key>/<fileId>-<name>`` and a ``.json`` sidecar beside it;
``to = "links"`` writes only the download links (valid 15 minutes) as a JSON array into
``column`` of the kind's write-back table (syncd's PostgreSQL), in the business row.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

_QUALIFIED = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


class AttachmentsBackSettings(BaseModel):
    """Where a kind's files go after the decision, and which files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    to: Literal["table", "directory", "links"] = Field(
        description="table (syncd's PostgreSQL, one row per file), directory, or links (the "
        "download links, valid 15 minutes, as JSON in a column of the business row)"
    )
    table: str | None = Field(default=None, description="schema.table receiving the files")
    directory: str | None = Field(default=None, description="directory receiving the files")
    column: str | None = Field(
        default=None, description="column of the write-back table receiving the links' JSON"
    )
    components: list[str] | None = Field(
        default=None, description="DDAttachment labels to fetch (default: every one)"
    )
    comments: bool = Field(default=True, description="also files on approvers' comments")
    since: datetime | date | None = Field(
        default=None,
        description="only rounds finished after this date or time (UTC unless it says; "
        "default: every finished round)",
    )

    @model_validator(mode="after")
    def _links(self) -> Self:
        if (self.column is not None) != (self.to == "links"):
            raise ValueError(
                'to = "links" needs column = "name" (the write-back table\'s column that '
                "receives the links' JSON)"
                if self.to == "links"
                else f'column means nothing with to = "{self.to}"; remove it'
            )
        if self.to == "links":
            if not _COLUMN.match(self.column or ""):
                raise ValueError(f"column {self.column!r}: letters, digits and _ only")
            if self.table is not None or self.directory is not None:
                raise ValueError('table and directory mean nothing with to = "links"')
        return self

    @model_validator(mode="after")
    def _place(self) -> Self:
        if self.to == "table":
            if self.table is None or not _QUALIFIED.match(self.table):
                raise ValueError(
                    'to = "table" needs table = "schema.name" (letters, digits, _): the '
                    "table in syncd's PostgreSQL that receives one row per file"
                )
            if self.directory is not None:
                raise ValueError('directory means nothing with to = "table"; remove it')
        elif self.to == "directory":
            if not self.directory or not self.directory.startswith("/"):
                raise ValueError(
                    'to = "directory" needs directory = "/absolute/path" (it must exist and '
                    "be writable by syncd)"
                )
            if self.table is not None:
                raise ValueError('table means nothing with to = "directory"; remove it')
        if self.components is not None and not all(c.strip() for c in self.components):
            raise ValueError("components: labels must not be empty")
        return self

    @property
    def since_at(self) -> datetime | None:
        """``since`` as a moment: a date is its midnight, a time without zone UTC."""
        if self.since is None:
            return None
        at = self.since
        if not isinstance(at, datetime):
            at = datetime.combine(at, time())
        return at if at.tzinfo else at.replace(tzinfo=UTC)

    @property
    def labels(self) -> frozenset[str] | None:
        return None if self.components is None else frozenset(self.components)
