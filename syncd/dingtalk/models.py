"""Typed, lenient models of the DingTalk workflow API (contract §2-§7, pitfalls §14).

Requests are serialised exactly as DingTalk expects (camelCase, absent fields left out).
Responses are parsed leniently: unknown fields are ignored, ``null`` means "absent",
``success`` may be a string or a boolean, ``nextToken`` a string or a number, and times
may be ISO strings, ``yyyy-MM-dd HH:mm:ss`` strings or epoch milliseconds. Nothing that
real DingTalk could send is rejected; enumerations stay plain strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, Literal, NewType
from urllib.parse import quote

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

InstanceId = NewType("InstanceId", str)

#: Naive time strings from DingTalk are China Standard Time (contract §13.1: UNCONFIRMED).
DINGTALK_TZ = timezone(timedelta(hours=8))
_MS_THRESHOLD = 100_000_000_000  # below this an epoch number is in seconds


def _parse_bool(value: object) -> object:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"true", "1", "yes"}:
            return True
        if lowered in {"false", "0", "no", ""}:
            return False
    return value


def _epoch(number: float) -> datetime:
    seconds = number / 1000 if abs(number) >= _MS_THRESHOLD else number
    return datetime.fromtimestamp(seconds, UTC)


def parse_time(value: object) -> datetime | None:
    """A DingTalk time as an aware datetime; ``None`` for absent or empty values."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, int | float):
        return _epoch(float(value))
    if not isinstance(value, str):
        raise ValueError("unsupported time value")
    text = value.strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return _epoch(float(text))
    parsed = datetime.fromisoformat(text.replace("/", "-"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=DINGTALK_TZ)


def _parse_option(value: object) -> object:
    if isinstance(value, dict):
        inner = value.get("value", value.get("key"))
        return inner if isinstance(inner, str) else json.dumps(value, ensure_ascii=False)
    return value


LenientBool = Annotated[bool, BeforeValidator(_parse_bool)]
LenientTime = Annotated[datetime | None, BeforeValidator(parse_time)]
OptionText = Annotated[str, BeforeValidator(_parse_option)]


class WireModel(BaseModel):
    """Base of every wire model: camelCase aliases, unknown keys ignored, null = absent."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        coerce_numbers_to_str=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data

    def to_wire(self) -> dict[str, Any]:
        """The JSON body DingTalk expects."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- create (§3.1) -------------------------------------------------------------------


class FormComponentValue(WireModel):
    """One form value; every value is a string, with JSON pre-serialised (§7.3)."""

    name: str
    value: str
    id: str | None = None
    biz_alias: str | None = None
    ext_value: str | None = None
    component_type: str | None = None
    details: list[FormComponentValue] | None = None


class ApproverRule(WireModel):
    """One approval node when the caller overrides the console flow."""

    action_type: Literal["AND", "OR", "NONE"]
    user_ids: list[str]


class TargetSelectActioner(WireModel):
    """The approvers picked for an "initiator chooses" node."""

    actioner_key: str
    actioner_user_ids: list[str]


class CreateInstanceRequest(WireModel):
    """POST /v1.0/workflow/processInstances."""

    process_code: str
    originator_user_id: str
    form_component_values: list[FormComponentValue]
    dept_id: int | None = None
    microapp_agent_id: int | None = None
    approvers: list[ApproverRule] | None = None
    cc_list: list[str] | None = None
    cc_position: Literal["START", "FINISH", "START_FINISH"] | None = None
    target_select_actioners: list[TargetSelectActioner] | None = None
    biz_detail_page_url: str | None = None


# --- get (§4.1) ----------------------------------------------------------------------


class FormValue(WireModel):
    """A form value as read back; DingTalk may leave any part out."""

    name: str | None = None
    value: str | None = None
    id: str | None = None
    biz_alias: str | None = None
    ext_value: str | None = None
    component_type: str | None = None


class Attachment(WireModel):
    file_id: str | None = None
    file_name: str | None = None
    file_size: str | None = None
    file_type: str | None = None
    space_id: str | None = None


class OperationRecord(WireModel):
    """Who did what and when (``type`` and ``result`` are open enumerations)."""

    user_id: str | None = None
    date: LenientTime = None
    type: str | None = None
    result: str | None = None
    remark: str | None = None
    show_name: str | None = None
    activity_id: str | None = None
    cc_user_ids: list[str] = Field(default_factory=list)
    images: list[str] = Field(default_factory=list)
    attachments: list[Attachment] = Field(default_factory=list)


class Task(WireModel):
    """One approver task; ``task_id`` is an int64 on the wire, kept as text."""

    task_id: str | None = None
    user_id: str | None = None
    status: str | None = None
    result: str | None = None
    create_time: LenientTime = None
    finish_time: LenientTime = None
    activity_id: str | None = None
    process_instance_id: str | None = None
    task_group_name: str | None = None
    mobile_url: str | None = None
    pc_url: str | None = None


class ProcessInstance(WireModel):
    """An approval instance as GET returns it, plus the id it was asked for.

    ``status`` is ``RUNNING``, ``COMPLETED`` or ``TERMINATED`` (the old API also had
    ``NEW`` and ``CANCELED``); ``result`` is ``agree``/``refuse`` or ``None`` while open.
    """

    instance_id: str = ""
    title: str = ""
    status: str = ""
    result: str | None = None
    business_id: str | None = None
    originator_user_id: str | None = None
    originator_dept_id: str | None = None
    originator_dept_name: str | None = None
    create_time: LenientTime = None
    finish_time: LenientTime = None
    approver_user_ids: list[str] = Field(default_factory=list)
    cc_user_ids: list[str] = Field(default_factory=list)
    biz_action: str | None = None
    biz_data: str | None = None
    attached_process_instance_ids: list[str] = Field(default_factory=list)
    main_process_instance_id: str | None = None
    form_component_values: list[FormValue] = Field(default_factory=list)
    operation_records: list[OperationRecord] = Field(default_factory=list)
    tasks: list[Task] = Field(default_factory=list)

    @field_validator("status", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("result", mode="before")
    @classmethod
    def _lower_or_none(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

    @property
    def is_finished(self) -> bool:
        """The instance will not change any more."""
        return self.status in {"COMPLETED", "TERMINATED", "CANCELED"}

    @property
    def is_approved(self) -> bool:
        return self.status == "COMPLETED" and self.result == "agree"


# --- form schema (§7.1) --------------------------------------------------------------


class ComponentProps(WireModel):
    """A component's properties; the many rarer keys stay in ``model_extra``."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    label: str | None = None
    required: LenientBool = False
    biz_alias: str | None = None
    placeholder: str | None = None
    options: list[OptionText] = Field(default_factory=list)
    format: str | None = None
    unit: str | None = None


class FormComponent(WireModel):
    component_name: str = ""
    props: ComponentProps = Field(default_factory=ComponentProps)
    children: list[FormComponent] = Field(default_factory=list)


class SchemaContent(WireModel):
    title: str | None = None
    icon: str | None = None
    items: list[FormComponent] = Field(default_factory=list)


class FormSchema(WireModel):
    """A template's form; ``status`` other than ``PUBLISHED`` means create will fail."""

    form_code: str | None = None
    name: str | None = None
    status: str | None = None
    form_uuid: str | None = None
    app_uuid: str | None = None
    memo: str | None = None
    gmt_create: LenientTime = None
    gmt_modified: LenientTime = None
    schema_content: SchemaContent = Field(default_factory=SchemaContent)


# --- envelopes (parsed inside the client only) ---------------------------------------


class CreateInstanceResponse(WireModel):
    instance_id: str


class GetInstanceResponse(WireModel):
    success: LenientBool = True
    result: ProcessInstance


class InstanceIdPage(WireModel):
    ids: list[str] = Field(default_factory=list, alias="list")
    next_token: str | None = None

    @property
    def next_cursor(self) -> int | None:
        """The next page's token as the request wants it, or ``None`` when done."""
        token = (self.next_token or "").strip()
        return int(token) if token else None


class ListInstanceIdsResponse(WireModel):
    success: LenientBool = True
    result: InstanceIdPage = Field(default_factory=InstanceIdPage)


class ActionResponse(WireModel):
    """terminate / comment: ``{"result": true, "success": true}``."""

    success: LenientBool = True
    result: LenientBool = True


class SchemaResponse(WireModel):
    result: FormSchema


class TokenResponse(WireModel):
    access_token: str
    expire_in: int = 7200


class ConnectionTicket(WireModel):
    """POST /v1.0/gateway/connections/open (§11.1)."""

    endpoint: str
    ticket: str


# --- links that open an instance (§19) --------------------------------------------------

_AFLOW = "https://aflow.dingtalk.com/dingtalk"


@dataclass(frozen=True)
class InstanceLinks:
    """Links that open an instance in the DingTalk client, all opaque."""

    url: str | None
    pc_url: str | None
    mobile_url: str | None


def instance_links(
    corp_id: str,
    instance_id: str | None,
    *,
    url: str | None = None,
    task_pc_url: str | None = None,
    task_mobile_url: str | None = None,
) -> InstanceLinks:
    """What DingTalk gave (the instance event's ``url``, a task's ``pcUrl`` and
    ``mobileUrl``), else the aflow patterns of §19 built from ``corp_id`` and the id.

    ``url``: the event's link, else the mobile pattern. ``mobile_url``: the event's link,
    else the task's, else the mobile pattern. ``pc_url``: the task's, else the PC pattern.
    Without an instance, or without a corp id where DingTalk gave nothing, ``None``.
    """
    if not instance_id:
        return InstanceLinks(None, None, None)
    mobile = pc = None
    if corp_id:
        corp, instance = quote(corp_id, safe=""), quote(instance_id, safe="")
        mobile = (
            f"{_AFLOW}/mobile/homepage.htm?corpid={corp}&dd_share=false&showmenu=false"
            f"&dd_progress=false&back=native&procInstId={instance}&taskId=&swfrom=isv"
            "&dinghash=approval&dtaction=os&dd_from=#approval"
        )
        pc = f"{_AFLOW}/pc/query/pchomepage.htm?corpid={corp}#/approval?procInstId={instance}"
    return InstanceLinks(
        url=url or mobile,
        pc_url=task_pc_url or pc,
        mobile_url=url or task_mobile_url or mobile,
    )
