"""The simulated DingTalk tenant: corp, apps, people, templates, rules, limits and faults.

A world is read from a TOML or JSON file (:meth:`World.load`) or taken from the built-in
demo (:meth:`World.default`). Keys are snake_case; see ``docs/simulator.md``.
"""

from __future__ import annotations

import json
import tomllib
import zlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from syncd.errors import ConfigError

Sign = Literal["AND", "OR", "NONE"]
Decision = Literal["agree", "refuse", "manual"]
Op = Literal["eq", "ne", "gt", "ge", "lt", "le", "contains", "any"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Corp(_Model):
    corp_id: str = "dingsimcorp0001"
    name: str = "Simulated Corp"


class App(_Model):
    """An internal app: credentials, and where its events go."""

    app_key: str
    app_secret: str
    agent_id: int = 1000001
    name: str = "syncd"
    unified_app_id: str = "6f1c7a5e-0000-4000-8000-000000000001"
    callback_url: str | None = None
    callback_token: str = "simtoken123"
    callback_aes_key: str = Field(default="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
    stream: bool = True


class Department(_Model):
    """A department; the root is ``dept_id`` 1 (no parent), every other one has a parent."""

    dept_id: int
    name: str
    parent_id: int | None = None


class User(_Model):
    """A person. ``active = false`` means they have left the organisation: the contact
    APIs no longer find them, and they can neither start nor approve. ``activated`` is the
    contact APIs' own ``active`` field (they have activated DingTalk). ``job_number``,
    ``mobile`` and ``email`` are what a legacy system knows them by (empty: none)."""

    user_id: str
    name: str
    dept_ids: list[int] = Field(default_factory=lambda: [1])
    active: bool = True
    activated: bool = True
    job_number: str = ""
    mobile: str = ""
    state_code: str = "86"
    email: str = ""
    title: str = ""
    #: The person's unionid (the storage APIs name people by it, contract §17.3); none:
    #: derived from ``user_id``.
    union_id: str | None = None


class Component(_Model):
    """A form component; ``label`` is a list of two labels for DDDateRangeField."""

    type: str
    label: str | list[str]
    id: str | None = None
    required: bool = False
    options: list[str] = Field(default_factory=list)
    unit: Literal["day", "hour"] = "day"
    biz_alias: str = ""
    placeholder: str = ""
    children: list[Component] = Field(default_factory=list)

    @property
    def label_text(self) -> str:
        """The label as DingTalk shows it (a JSON array for date ranges)."""
        if isinstance(self.label, list):
            return json.dumps(self.label, ensure_ascii=False, separators=(",", ":"))
        return self.label

    @property
    def component_id(self) -> str:
        return self.id or f"{self.type}-{zlib.crc32(self.label_text.encode()):08X}"


class Node(_Model):
    """One approval node: its approvers sign together (AND), any one (OR), or alone."""

    name: str = "审批人"
    activity_id: str | None = None
    approvers: list[str]
    sign: Sign = "OR"


class Template(_Model):
    process_code: str
    name: str
    status: Literal["PUBLISHED", "INVALID", "SAVED"] = "PUBLISHED"
    form_uuid: str = ""
    biz_category_id: str = ""
    allow_revoke: bool = True
    components: list[Component] = Field(default_factory=list)
    flow: list[Node] = Field(default_factory=list)
    cc: list[str] = Field(default_factory=list)


class Rule(_Model):
    """Decides instances: the first matching rule wins; no match leaves it to a person.

    ``field`` names a form component label; with ``op`` and ``value`` it compares the
    submitted value (numbers when both parse as numbers).
    """

    process_code: str | None = None
    field: str | None = None
    op: Op = "eq"
    value: str = ""
    decision: Decision = "agree"
    delay: float = 0.0
    remark: str = ""


class StorageSettings(_Model):
    """The file limits of the approval space (contract §17.9; DingTalk documents none for
    DDAttachment, so these are the simulator's strict choices)."""

    #: Bytes of one file: a single (non-multipart) upload is under 5 GB (§17.3).
    max_file_size: int = Field(default=5 * 1024**3 - 1, ge=1)
    #: Extensions (lower case, no dot) a file may have; empty: any, but it needs one.
    file_types: list[str] = Field(default_factory=list)
    #: Files in one DDAttachment value (the JSAPI selects at most 9).
    max_attachments: int = Field(default=9, ge=1)


class Limits(_Model):
    qps_per_api: int | None = 20
    qpm_per_api: int | None = None
    monthly_quota: int | None = None
    token_ttl: int = 7200


class StreamSettings(_Model):
    ack_timeout: float = 10.0
    later_delay: float = 5.0
    max_redeliveries: int = 20
    ping_interval: float = 30.0
    disconnect_grace: float = 10.0
    ticket_ttl: float = 90.0


class CallbackSettings(_Model):
    retry_delays: list[float] = Field(default_factory=lambda: [10.0, 30.0])
    timeout: float = 2.5
    check_timeout: float = 1.5  # the check_url push when a URL is registered (not scaled)


class Latency(_Model):
    distribution: Literal["fixed", "uniform", "normal", "exponential"] = "fixed"
    mean_ms: float = 0.0
    spread_ms: float = 0.0


class FaultSettings(_Model):
    """Fault switches; rates are probabilities in [0, 1] drawn from a seeded generator.

    ``seed`` seeds that generator and every id the simulator makes (instances, tasks,
    tokens, events): the same seed repeats a run; none (the default) draws a fresh one,
    so ids never repeat those of an earlier run.
    """

    seed: int | None = None
    latency: Latency = Field(default_factory=Latency)
    error_5xx_rate: float = Field(default=0.0, ge=0, le=1)
    error_429_rate: float = Field(default=0.0, ge=0, le=1)
    reset_rate: float = Field(default=0.0, ge=0, le=1)
    create_response_lost_rate: float = Field(default=0.0, ge=0, le=1)
    response_lost_rate: float = Field(default=0.0, ge=0, le=1)
    event_duplicate_rate: float = Field(default=0.0, ge=0, le=1)
    event_reorder_rate: float = Field(default=0.0, ge=0, le=1)
    reorder_delay: float = 3.0
    stream_disconnect_every: float | None = None
    stream_silent: bool = False
    endpoints: list[str] = Field(default_factory=list)


def check_directory(departments: list[Department], users: list[User]) -> None:
    """Raise ValueError unless ids are unique, the tree hangs from root 1 without loops,
    and no two present people share a mobile (DingTalk keeps mobiles unique in an org)."""
    by_id = {d.dept_id: d for d in departments}
    if len(by_id) != len(departments):
        raise ValueError("two departments share a dept_id")
    if len({u.user_id for u in users}) != len(users):
        raise ValueError("two users share a user_id")
    for dept in departments:
        seen, current = {dept.dept_id}, dept
        while current.dept_id != 1:
            parent = by_id.get(current.parent_id) if current.parent_id is not None else None
            if parent is None or parent.dept_id in seen:
                raise ValueError(f"department {dept.dept_id}: no path to root department 1")
            seen.add(parent.dept_id)
            current = parent
    mobiles = [u.mobile for u in users if u.active and u.mobile]
    if len(set(mobiles)) != len(mobiles):
        raise ValueError("two present users share a mobile")


class World(_Model):
    corp: Corp = Field(default_factory=Corp)
    apps: list[App] = Field(default_factory=list)
    departments: list[Department] = Field(default_factory=list)
    users: list[User] = Field(default_factory=list)
    templates: list[Template] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    callbacks: CallbackSettings = Field(default_factory=CallbackSettings)
    faults: FaultSettings = Field(default_factory=FaultSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)

    @model_validator(mode="after")
    def _check_references(self) -> World:
        users = {u.user_id for u in self.users}
        depts = {d.dept_id for d in self.departments}
        check_directory(self.departments, self.users)
        unions = [u.union_id for u in self.users if u.union_id]
        if len(set(unions)) != len(unions):
            raise ValueError("two users share a union_id")
        for user in self.users:
            for dept in user.dept_ids:
                if dept not in depts:
                    raise ValueError(f"user {user.user_id}: unknown department {dept}")
        for template in self.templates:
            for node in template.flow:
                missing = [a for a in node.approvers if a not in users]
                if missing or not node.approvers:
                    raise ValueError(f"{template.process_code}: bad approvers {missing}")
        return self

    @classmethod
    def load(cls, path: str | Path) -> World:
        """Read a world from a ``.toml`` or ``.json`` file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
            return cls.model_validate(data)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load simulator world {path}: {exc}") from exc

    @classmethod
    def default(cls) -> World:
        """The built-in demo world."""
        from syncd.simulator.default_world import DEFAULT_WORLD

        return cls.model_validate(DEFAULT_WORLD)

    def app(self, app_key: str) -> App | None:
        return next((a for a in self.apps if a.app_key == app_key), None)

    def user(self, user_id: str) -> User | None:
        return next((u for u in self.users if u.user_id == user_id), None)

    def department(self, dept_id: int) -> Department | None:
        return next((d for d in self.departments if d.dept_id == dept_id), None)

    def template(self, process_code: str) -> Template | None:
        return next((t for t in self.templates if t.process_code == process_code), None)

    def dump(self) -> dict[str, object]:
        """A plain dict, ready for JSON or TOML, without null values."""
        return self.model_dump(mode="json", exclude_none=True)
