"""What the simulated DingTalk remembers: instances with their tasks and records, tokens."""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from syncd.ports import Clock
from syncd.simulator.world import Sign


def ms(moment: datetime) -> int:
    """Milliseconds since the epoch, as events carry times."""
    return int(moment.timestamp() * 1000)


def iso_minutes(moment: datetime) -> str:
    """The GET time format of the contract's sample: ``2022-08-31T11:52Z`` (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


@dataclass
class FlowNode:
    activity_id: str
    name: str
    approvers: list[str]
    sign: Sign


@dataclass
class Task:
    task_id: int
    user_id: str
    activity_id: str
    node_index: int
    create_time: datetime
    status: str = "RUNNING"
    result: str = "NONE"
    finish_time: datetime | None = None


@dataclass
class Record:
    user_id: str
    date: datetime
    type: str
    result: str = "NONE"
    remark: str = ""
    activity_id: str = ""
    show_name: str = ""
    #: Files attached to a comment, each as a DDAttachment element (all strings, §18.2).
    attachments: list[dict[str, str]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)


@dataclass
class Instance:
    instance_id: str
    process_code: str
    title: str
    business_id: str
    originator: str
    dept_id: int
    dept_name: str
    app_key: str
    biz_category_id: str
    create_time: datetime
    form: list[dict[str, str]]
    nodes: list[FlowNode]
    cc: list[str]
    from_api_approvers: bool = False
    corp_id: str = ""
    #: Started in DingTalk itself (the simulator's page or admin API), not by an app.
    in_client: bool = False
    #: The ids of the files attached in the form's DDAttachment components.
    files: list[str] = field(default_factory=list)
    status: str = "RUNNING"
    result: str = ""
    finish_time: datetime | None = None
    current_node: int = 0
    tasks: list[Task] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)

    def running_tasks(self) -> list[Task]:
        return [t for t in self.tasks if t.status == "RUNNING"]

    def last_decision(self) -> tuple[str | None, str | None]:
        """Who last agreed or refused, and the last non-empty remark (an approver's or a
        comment or a revoke), in the order of the instance's operation records."""
        approver = remark = None
        for record in self.records:
            if record.result in ("AGREE", "REFUSE"):
                approver = record.user_id
            if record.remark:
                remark = record.remark
        return approver, remark

    def summary(self) -> dict[str, Any]:
        """The admin API's view of an instance."""
        return {
            "instanceId": self.instance_id,
            "processCode": self.process_code,
            "title": self.title,
            "businessId": self.business_id,
            "originatorUserId": self.originator,
            "status": self.status,
            "result": self.result,
            "createTime": ms(self.create_time),
            "finishTime": ms(self.finish_time) if self.finish_time else None,
            "pendingApprovers": [t.user_id for t in self.running_tasks()],
            "startedIn": "client" if self.in_client else "api",
            "formComponentValues": self.form,
        }


def task_page(base_url: str, instance_id: str, task_id: int, client: str) -> str:
    """The simulator's page that opens an instance for a task's approver: the task's
    ``pcUrl`` (client ``pc``) and ``mobileUrl`` (``mobile``) point at it (contract A6)."""
    query = urlencode({"taskId": task_id, "client": client})
    return f"{base_url.rstrip('/')}/_sim/instances/{quote(instance_id, safe='')}/view?{query}"


def _task_json(task: Task, instance_id: str, base_url: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "taskId": task.task_id,
        "userId": task.user_id,
        "status": task.status,
        "result": task.result,
        "createTime": iso_minutes(task.create_time),
        "activityId": task.activity_id,
        "processInstanceId": instance_id,
        "mobileUrl": task_page(base_url, instance_id, task.task_id, "mobile"),
        "pcUrl": task_page(base_url, instance_id, task.task_id, "pc"),
    }
    if task.finish_time:
        out["finishTime"] = iso_minutes(task.finish_time)
    return out


def _record_json(record: Record) -> dict[str, Any]:
    return {
        "userId": record.user_id,
        "date": iso_minutes(record.date),
        "type": record.type,
        "result": record.result,
        "remark": record.remark,
        "showName": record.show_name,
        "activityId": record.activity_id,
        "ccUserIds": [],
        "images": list(record.images),
        "attachments": [dict(a) for a in record.attachments],
    }


def get_result(instance: Instance, base_url: str) -> dict[str, Any]:
    """The ``result`` object of GET /v1.0/workflow/processInstances (contract §4.1);
    ``base_url`` is where the caller reached the simulator, for the tasks' links."""
    out: dict[str, Any] = {
        "title": instance.title,
        "status": instance.status,
        "result": instance.result,
        "businessId": instance.business_id,
        "originatorUserId": instance.originator,
        "originatorDeptId": str(instance.dept_id),
        "originatorDeptName": instance.dept_name,
        "createTime": iso_minutes(instance.create_time),
        "ccUserIds": list(instance.cc),
        "bizAction": "NONE",
        "bizData": "",
        "attachedProcessInstanceIds": [],
        "mainProcessInstanceId": "",
        "formComponentValues": [dict(v) for v in instance.form],
        "operationRecords": [_record_json(r) for r in instance.records],
        "tasks": [_task_json(t, instance.instance_id, base_url) for t in instance.tasks],
    }
    if instance.from_api_approvers:
        out["approverUserIds"] = [a for node in instance.nodes for a in node.approvers]
    if instance.finish_time:
        out["finishTime"] = iso_minutes(instance.finish_time)
    return out


@dataclass
class Token:
    value: str
    app_key: str
    expires_at: datetime


class TokenStore:
    """Access tokens: 7200 s on the injected clock, the same token re-issued while valid."""

    def __init__(self, clock: Clock, rng: random.Random, ttl: Callable[[], int]) -> None:
        self._clock = clock
        self._rng = rng
        self._ttl = ttl
        self._by_app: dict[str, Token] = {}
        self._by_value: dict[str, Token] = {}

    def issue(self, app_key: str) -> Token:
        now = self._clock.now()
        token = self._by_app.get(app_key)
        if token is None or token.expires_at <= now:
            value = "".join(self._rng.choices(string.hexdigits.lower()[:16], k=32))
            token = Token(value, app_key, now)
            self._by_app[app_key] = token
            self._by_value[value] = token
        token.expires_at = now + timedelta(seconds=self._ttl())
        return token

    def check(self, value: str) -> str | None:
        """The app key the token belongs to, or None when unknown or expired."""
        token = self._by_value.get(value)
        if token is None or token.expires_at <= self._clock.now():
            return None
        return token.app_key

    def expire_all(self) -> None:
        for token in self._by_value.values():
            token.expires_at = self._clock.now()
