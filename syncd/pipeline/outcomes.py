"""DingTalk's view of an instance, as syncd's final states and task records."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from syncd.dingtalk.models import ProcessInstance, parse_time
from syncd.domain import ApprovalState, Decider, Final, TaskRecord

#: The write-back fields that only the instance's tasks and records can tell.
DECIDER_FIELDS = frozenset({"approver", "remark", "comments", "last_comment"})
_DECISIONS = ("AGREE", "REFUSE")


def final_from_instance(instance: ProcessInstance) -> Final | None:
    """The final outcome, or None while the instance still runs."""
    if instance.status == "COMPLETED":
        state = ApprovalState.APPROVED if instance.result == "agree" else ApprovalState.REJECTED
    elif instance.status in {"TERMINATED", "CANCELED"}:
        state = ApprovalState.CANCELED
    else:
        return None
    return Final(
        state=state,
        dingtalk_status=instance.status,
        dingtalk_result=instance.result or None,
        finished_at=instance.finish_time,
        business_id=instance.business_id,
        decider=decider_from_instance(instance),
    )


def decider_from_instance(instance: ProcessInstance) -> Decider:
    """The last approver to agree or refuse, and the last non-empty remark, in the order
    of DingTalk's operation records (its tasks when it lists no records)."""
    approver = remark = None
    for op in instance.operation_records:
        if (op.result or "").upper() in _DECISIONS:
            approver = op.user_id
        if op.remark:
            remark = op.remark
    if approver is None:
        decided = [t for t in instance.tasks if (t.result or "").upper() in _DECISIONS]
        if decided:
            approver = max(decided, key=lambda t: _moment(t.finish_time)).user_id
    return Decider(approver=approver, remark=remark)


def _moment(at: datetime | None) -> float:
    return at.timestamp() if at is not None else float("-inf")


def needs_reading(final: Final, needs: frozenset[str]) -> bool:
    """Whether the instance must be read before ``final`` is written back: the write-back
    uses who decided or the last remark, and ``final`` does not carry them (it came from
    an event). Events cannot settle them: a task whose every event was lost, or is held
    by a replica that died, leaves no trace in what syncd recorded."""
    return final.decider is None and bool(needs & DECIDER_FIELDS)


def tasks_from_instance(instance: ProcessInstance) -> list[TaskRecord]:
    records = [
        TaskRecord(
            record_type="task",
            record_key=task.task_id or f"{task.user_id}:{task.activity_id}",
            user_id=task.user_id,
            activity_id=task.activity_id,
            status=task.status,
            result=task.result,
            started_at=task.create_time,
            finished_at=task.finish_time,
            pc_url=task.pc_url or None,
            mobile_url=task.mobile_url or None,
        )
        for task in instance.tasks
    ]
    records += [
        TaskRecord(
            record_type="operation",
            record_key=str(number),
            user_id=op.user_id,
            activity_id=op.activity_id,
            result=op.result,
            operation=op.type,
            remark=op.remark,
            finished_at=op.date,
        )
        for number, op in enumerate(instance.operation_records)
    ]
    return records


def _time(value: Any) -> datetime | None:
    try:
        return parse_time(value)
    except ValueError:
        return None


def final_from_event(payload: Mapping[str, Any]) -> Final | None:
    """A ``bpms_instance_change`` event's outcome: ``finish`` and ``terminate`` are final."""
    kind = payload.get("type")
    finished = _time(payload.get("finishTime"))
    business_id, url = _text(payload, "businessId"), instance_url(payload)
    if kind == "terminate":
        return Final(ApprovalState.CANCELED, "TERMINATED", None, finished, business_id, url=url)
    if kind == "finish" and payload.get("result") in ("agree", "refuse"):
        state = ApprovalState.APPROVED if payload["result"] == "agree" else ApprovalState.REJECTED
        return Final(state, "COMPLETED", str(payload["result"]), finished, business_id, url=url)
    return None


def instance_url(payload: Mapping[str, Any]) -> str | None:
    """The link a ``bpms_instance_change`` event gives to its instance (§19), as it is."""
    url = payload.get("url")
    return url if isinstance(url, str) and url.strip() else None


def needs_confirmation(payload: Mapping[str, Any]) -> bool:
    """A finish event without a usable result: read the instance to be sure."""
    return payload.get("type") == "finish" and payload.get("result") not in ("agree", "refuse")


def task_from_event(payload: Mapping[str, Any]) -> TaskRecord:
    """A ``bpms_task_change`` event as a task record."""
    kind = str(payload.get("type") or "")
    result = payload.get("result")
    status = {"start": "RUNNING", "finish": "COMPLETED", "cancel": "CANCELED"}.get(kind)
    task_id = payload.get("taskId")
    key = (
        str(task_id)
        if task_id not in (None, "")
        else f"{payload.get('staffId')}:{payload.get('createTime')}"
    )
    return TaskRecord(
        record_type="task",
        record_key=key,
        user_id=_text(payload, "staffId"),
        activity_id=_text(payload, "activityId"),
        activity_name=_text(payload, "activityName"),
        status=status,
        result=str(result).upper() if result else None,
        remark=_text(payload, "remark"),
        started_at=_time(payload.get("createTime")),
        finished_at=_time(payload.get("finishTime")),
    )


def _text(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return str(value) if value not in (None, "") else None
