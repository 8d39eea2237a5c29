"""``[kinds.<name>]``: how one kind of business request becomes a DingTalk approval.

A *value source* says where a value comes from. In the TOML file it is either a bare
string (a payload path such as ``"applicant"`` or ``"amount.total"``) or a table with
exactly one of ``field`` (payload path), ``fields`` (several payload paths, for a date
range), ``template`` (``"{reason} ({days} days)"`` over payload paths), ``value`` (a
constant) or ``column`` (an outbox column: ``originator``, ``business_key``, ``kind``).

People (the originator, approvers, cc) may be named as the legacy system knows them:
``by = "userid"`` (the default: a DingTalk userId), ``"job_number"``, ``"mobile"`` or
``"email"``; the originator's department by ``by = "dept_id"`` (the default) or
``"name"`` (a name, or a path of names from the top: ``"研发部/后端组"``). Anything other
than a userId or a department id is looked up in the synced DingTalk directory at submit.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from syncd.settings_attachments import AttachmentSource
from syncd.settings_attachments_back import AttachmentsBackSettings
from syncd.settings_inbound import InboundSettings, check_direction

OUTBOX_COLUMNS = ("originator", "business_key", "kind")
#: How a kind names a person (``syncd.people.By``) and a department (``DeptBy``).
PERSON_BYS = ("userid", "job_number", "mobile", "email")
DEPT_BYS = ("dept_id", "name")
PersonBy = Literal["userid", "job_number", "mobile", "email"]
WRITE_BACK_SOURCES = (
    "status",
    "dingtalk_status",
    "result",
    "instance_id",
    "business_id",
    "finished_at",
    "remark",
    "approver",
    "approval_id",
    "round",
    "error",
    "url",
    "pc_url",
    "mobile_url",
    "current_node",
    "pending_approvers",
    "reason",
    "state_changed_at",
    "seq",
    # the approvers' comments (JSON) and the latest one's text: see README "Comments"
    "comments",
    "last_comment",
)
#: Sources known only while a round is unfinished (``NULL`` in a final write).
PROGRESS_SOURCES = ("current_node", "pending_approvers", "reason")
PROGRESS_STATES = ("submitted", "running", "invalid", "dead")
FINAL_STATES = ("approved", "rejected", "canceled")
ProgressState = Literal["submitted", "running", "invalid", "dead"]
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_QUALIFIED = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_path(path: str) -> str:
    if not _PATH.match(path):
        raise ValueError(f"{path!r} is not a payload path like 'amount' or 'items.0.name'")
    return path


class ValueSource(_Model):
    """Where one value comes from; exactly one of the fields is set."""

    field: str | None = None
    fields: list[str] | None = None
    template: str | None = None
    value: str | int | float | bool | None = None
    column: Literal["originator", "business_key", "kind"] | None = None
    columns: dict[str, str] | None = Field(
        default=None, description="TableField: child component label → key in each row"
    )
    by: Literal["userid", "job_number", "mobile", "email", "dept_id", "name"] | None = Field(
        default=None,
        description="originator: userid, job_number, mobile or email; dept_id: dept_id or name",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"field": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        chosen = [
            name
            for name in ("field", "fields", "template", "value", "column")
            if getattr(self, name) is not None
        ]
        if len(chosen) != 1:
            raise ValueError(
                "set exactly one of field, fields, template, value or column"
                + (f" (got {', '.join(chosen)})" if chosen else "")
            )
        if self.field is not None:
            _check_path(self.field)
        for path in self.fields or []:
            _check_path(path)
        for path in _PLACEHOLDER.findall(self.template or ""):
            _check_path(path)
        if self.columns is not None and self.field is None:
            raise ValueError("columns (for a table) needs field, the payload list of rows")
        return self

    def paths(self) -> list[str]:
        """The payload paths this source reads."""
        if self.field is not None:
            return [self.field]
        if self.template is not None:
            return _PLACEHOLDER.findall(self.template)
        return list(self.fields or [])


class ApproverStep(_Model):
    """One step of an explicit approval flow (overrides the template's flow)."""

    action: Literal["AND", "OR", "NONE"] = "NONE"
    users: list[str] | None = None
    field: str | None = Field(default=None, description="payload path to a list of user ids")
    by: PersonBy = Field(default="userid", description="what users or field name people by")

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.users is None) == (self.field is None):
            raise ValueError("set users (a list of user ids) or field (a payload path)")
        if self.field is not None:
            _check_path(self.field)
        return self


class CcSettings(_Model):
    """Who gets a copy; DingTalk honours it only with explicit approvers."""

    users: list[str] = Field(default_factory=list)
    field: str | None = None
    position: Literal["START", "FINISH", "START_FINISH"] = "FINISH"
    by: PersonBy = Field(default="userid", description="what users or field name people by")


class WriteBackSettings(_Model):
    """How an approval is written into the business table: a table mapping or a procedure.

    By default only final outcomes are written (``approved``, ``rejected``,
    ``canceled``). With ``progress`` the row also follows the round while it runs: the
    instance created (``submitted``), its approvers at work (``running``), or the round
    parked (``invalid``, ``dead``)."""

    table: str | None = Field(default=None, description="schema-qualified table, e.g. app.leave")
    key_column: str | None = Field(default=None, description="column matching business_key")
    columns: dict[str, str] = Field(
        default_factory=dict, description="business column → outcome field"
    )
    status_map: dict[str, str] = Field(
        default_factory=dict, description="syncd state → value written for 'status'"
    )
    procedure: str | None = Field(
        default=None, description="called as CALL proc(business_key text, outcome jsonb)"
    )
    progress: bool | list[ProgressState] = Field(
        default=False,
        description="also write these unfinished states (true: submitted, running, invalid, dead)",
    )

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.procedure is not None:
            if self.table is not None or self.columns:
                raise ValueError("use either procedure or table + columns, not both")
            _check_identifier(self.procedure, "procedure")
            return self
        if self.table is None or self.key_column is None or not self.columns:
            raise ValueError("a table write-back needs table, key_column and columns")
        _check_identifier(self.table, "table")
        for column, source in self.columns.items():
            if source not in WRITE_BACK_SOURCES:
                raise ValueError(
                    f"columns.{column} = {source!r}: expected one of "
                    + ", ".join(WRITE_BACK_SOURCES)
                )
            if source in PROGRESS_SOURCES and not self.progress_states:
                raise ValueError(
                    f"columns.{column} = {source!r} is known only while the approval runs: "
                    "add progress = true to write the states before the outcome"
                )
        unknown = sorted(set(self.status_map) - {*PROGRESS_STATES, *FINAL_STATES})
        if unknown:
            raise ValueError(
                f"status_map keys must be {', '.join(PROGRESS_STATES + FINAL_STATES)} "
                f"(got {unknown})"
            )
        unused = [state for state in PROGRESS_STATES if state in self.status_map]
        unused = [state for state in unused if state not in self.progress_states]
        if unused:
            raise ValueError(
                f"status_map.{unused[0]} is never written: add progress = true "
                f'(or list "{unused[0]}" in progress)'
            )
        return self

    @property
    def progress_states(self) -> frozenset[str]:
        """The unfinished states written (none by default)."""
        if self.progress is True:
            return frozenset(PROGRESS_STATES)
        return frozenset(self.progress or ())

    @property
    def sources(self) -> frozenset[str]:
        """The outcome fields this write-back uses (a procedure receives them all)."""
        if self.procedure is not None:
            return frozenset(WRITE_BACK_SOURCES)
        return frozenset(self.columns.values())


def _check_identifier(name: str, what: str) -> None:
    if not _QUALIFIED.match(name):
        raise ValueError(f"{what} {name!r} must be name or schema.name (letters, digits, _)")


class KindSettings(_Model):
    """One approval kind: template, people, form mapping and write-back."""

    process_code: str = Field(min_length=1, description="the DingTalk template's process code")
    originator: ValueSource = ValueSource(column="originator")
    dept_id: ValueSource = ValueSource(value=-1)
    form: dict[str, ValueSource] = Field(
        default_factory=dict, description="DingTalk component label → value source"
    )
    approvers: list[ApproverStep] = Field(default_factory=list, max_length=20)
    cc: CcSettings | None = None
    correlation_field: str | None = Field(
        default=None,
        description="label of a text component that syncd fills with the approval's key",
    )
    on_resubmit: Literal["reject", "supersede"] = "reject"
    cancel_remark: str = "Canceled by the requesting system"
    comment_user: str | None = Field(
        default=None,
        min_length=1,
        description="who comments when a comment row names nobody, as the originator's by "
        "says (default: the round's originator)",
    )
    write_back: WriteBackSettings | None = None
    attachments: dict[str, AttachmentSource] = Field(
        default_factory=dict, description="DDAttachment component label → its files"
    )
    database: str | None = Field(
        default=None,
        description="the [databases.<name>] holding the business table (default: syncd's own "
        "PostgreSQL)",
    )
    attachments_back: AttachmentsBackSettings | None = None

    @model_validator(mode="after")
    def _back(self) -> Self:
        if self.attachments_back and self.attachments_back.to == "table" and self.database:
            raise ValueError(
                f'attachments_back: to = "table" writes into syncd\'s own PostgreSQL only, and '
                f"this kind's business table is in database {self.database!r}; use "
                'to = "directory", or a table in syncd\'s PostgreSQL'
            )
        if self.attachments_back and self.attachments_back.to == "links":
            back = self.write_back
            if self.database or back is None or back.table is None:
                raise ValueError(
                    'attachments_back: to = "links" writes into the kind\'s write-back table '
                    "(write_back.table and key_column) in syncd's own PostgreSQL; this kind "
                    + (f"writes into database {self.database!r}" if self.database else "has none")
                    + ': use to = "directory"'
                )
        return self

    # Inbound kinds (syncd/settings_inbound.py): instances started in DingTalk.
    direction: Literal["outbound", "inbound"] = "outbound"
    inbound: InboundSettings | None = None

    @model_validator(mode="after")
    def _by(self) -> Self:
        check_direction(self)
        for label, source in self.form.items():
            if source.by is not None:
                raise ValueError(
                    f"form {label!r}: by = {source.by!r} means nothing for a form value (it "
                    "says how originator, approvers, cc and dept_id name people); remove it"
                )
        if self.originator.by not in (None, *PERSON_BYS):
            raise ValueError(
                f"originator: by = {self.originator.by!r} does not name a person; use "
                + ", ".join(repr(b) for b in PERSON_BYS)
            )
        if self.dept_id.by not in (None, *DEPT_BYS):
            raise ValueError(
                f"dept_id: by = {self.dept_id.by!r} does not name a department; use "
                "'dept_id' (DingTalk's department id) or 'name' (a name or a path of names "
                "from the top, such as '研发部/后端组')"
            )
        return self

    @model_validator(mode="after")
    def _file_tables(self) -> Self:
        # Files from a table are read from syncd's own PostgreSQL only (attachments).
        tables = [label for label, a in self.attachments.items() if a.table is not None]
        if tables and self.database is not None:
            raise ValueError(
                f"attachments {tables[0]!r}: files from a table are read from syncd's own "
                f"PostgreSQL, not business database {self.database!r}; put the files in the "
                "payload (field) instead"
            )
        return self

    @property
    def originator_by(self) -> PersonBy:
        """What the originator's value is: a userId unless ``by`` says otherwise."""
        by = self.originator.by or "userid"
        assert by in PERSON_BYS
        return by  # type: ignore[return-value]

    @property
    def dept_by(self) -> Literal["dept_id", "name"]:
        return "name" if self.dept_id.by == "name" else "dept_id"

    @property
    def uses_directory(self) -> bool:
        """Whether this kind names anyone by something the DingTalk directory translates."""
        bys = [self.originator_by, *(step.by for step in self.approvers)]
        bys += [self.cc.by] if self.cc else []
        bys += [self.inbound.originator_by] if self.inbound else []
        return self.dept_by == "name" or any(by != "userid" for by in bys)
