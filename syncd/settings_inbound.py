"""``[kinds.<name>.inbound]``: approvals started in DingTalk, imported as business rows.

A kind with ``direction = "inbound"`` takes no outbox rows: every instance of its
``process_code`` started in DingTalk becomes exactly one row of ``inbound.table`` (its
``key_column`` gets the approval's business key, the instance id), its ``columns`` filled
from the instance's form components by label, or ``inbound.procedure`` is called with
them. Its outcome follows through ``write_back`` like any kind's, keyed by the instance
id (docs/inbound.md).
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: What an instance says besides its form, for ``instance_columns``.
INSTANCE_FIELDS = (
    "instance_id",
    "business_id",
    "title",
    "originator",
    "originator_dept_id",
    "created_at",
)
InstanceField = Literal[
    "instance_id", "business_id", "title", "originator", "originator_dept_id", "created_at"
]
#: The settings of a kind that mean nothing for an inbound kind (nothing is created).
OUTBOUND_ONLY = (
    "originator",
    "dept_id",
    "form",
    "approvers",
    "cc",
    "correlation_field",
    "on_resubmit",
    "attachments",
)
_QUALIFIED = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


class InboundSettings(BaseModel):
    """Where an instance started in DingTalk lands: a table mapping or a procedure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str | None = Field(default=None, description="schema-qualified table, e.g. app.leave")
    key_column: str | None = Field(
        default=None, description="the column that receives the instance id (the business key)"
    )
    columns: dict[str, str] = Field(
        default_factory=dict, description="business column → form component label"
    )
    instance_columns: dict[str, InstanceField] = Field(
        default_factory=dict, description="business column → a field of the instance"
    )
    originator_by: Literal["userid", "job_number", "mobile", "email"] = Field(
        default="userid",
        description="how instance_columns' originator is written: the userId, or translated "
        "by the directory",
    )
    procedure: str | None = Field(
        default=None,
        description="called as CALL proc(business_key text, instance jsonb) instead of a table",
    )

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.procedure is not None:
            if self.table or self.key_column or self.columns or self.instance_columns:
                raise ValueError(
                    "inbound: use either procedure or table + key_column + columns, not both"
                )
            _identifier(self.procedure, "inbound.procedure")
            return self
        if self.table is None or self.key_column is None:
            raise ValueError(
                "inbound needs table and key_column (the column that receives the instance "
                "id), or procedure"
            )
        if not self.columns and not self.instance_columns:
            raise ValueError("inbound needs columns: business column = form component label")
        _identifier(self.table, "inbound.table")
        for column in (self.key_column, *self.columns, *self.instance_columns):
            if not _COLUMN.match(column):
                raise ValueError(f"inbound: column {column!r} must be a plain column name")
        both = sorted(set(self.columns) & set(self.instance_columns))
        if both or self.key_column in {*self.columns, *self.instance_columns}:
            twice = both[0] if both else self.key_column
            raise ValueError(f"inbound: column {twice!r} is mapped twice")
        for column, label in self.columns.items():
            if not label.strip():
                raise ValueError(f"inbound.columns.{column}: the component label is empty")
        return self


def _identifier(name: str, what: str) -> None:
    if not _QUALIFIED.match(name):
        raise ValueError(f"{what} {name!r} must be name or schema.name (letters, digits, _)")


def check_direction(kind: Any) -> None:
    """A kind's ``direction`` and ``inbound`` agree, and an inbound kind sets nothing that
    only creating instances uses (raises ``ValueError`` naming the field)."""
    if kind.direction == "outbound":
        if kind.inbound is not None:
            raise ValueError(
                'inbound is set but direction is "outbound": add direction = "inbound"'
            )
        return
    if kind.inbound is None:
        raise ValueError(
            'direction = "inbound" needs [inbound]: table, key_column and columns '
            "(business column = form component label), or procedure"
        )
    for name in OUTBOUND_ONLY:
        if name in kind.model_fields_set:
            raise ValueError(
                f"{name} means nothing for an inbound kind (syncd creates no instance for "
                "it): remove it"
            )
    if kind.database is not None:
        raise ValueError(
            f"database = {kind.database!r}: an inbound kind imports into syncd's own "
            "PostgreSQL only (its business row and syncd's record in one transaction); "
            "remove database"
        )


def check_process_codes(kinds: dict[str, Any]) -> None:
    """No two inbound kinds share a process code (which would import an instance twice)."""
    seen: dict[str, str] = {}
    for name, kind in kinds.items():
        if kind.direction != "inbound":
            continue
        if kind.process_code in seen:
            raise ValueError(
                f"kinds.{name}: process_code {kind.process_code!r} is already imported by "
                f"kinds.{seen[kind.process_code]}; an instance becomes one row of one kind"
            )
        seen[kind.process_code] = name
