"""How an instance moves: node by node, task by task, to COMPLETED or TERMINATED."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from syncd.ports import Clock
from syncd.simulator.events import INSTANCE_CHANGE, TASK_CHANGE, instance_data, task_data
from syncd.simulator.state import Instance, Record, Task

Emit = Callable[[str, dict[str, Any]], None]
NodeStarted = Callable[[Instance], None]


class DecisionError(ValueError):
    """The decision cannot be applied (instance not running, user has no task)."""


class Engine:
    """Applies starts, decisions, revokes and comments, and emits the events they cause."""

    def __init__(
        self,
        clock: Clock,
        emit: Emit,
        node_started: NodeStarted,
        *,
        first_task_id: int = 80_000_000_001,
    ) -> None:
        self._clock = clock
        self._emit = emit
        self._node_started = node_started
        self._task_ids = itertools.count(first_task_id)

    def start(self, instance: Instance) -> None:
        instance.records.append(
            Record(instance.originator, instance.create_time, "START_PROCESS_INSTANCE")
        )
        self._emit(INSTANCE_CHANGE, instance_data(instance, "start"))
        self._start_node(instance, 0)

    def _start_node(self, instance: Instance, index: int) -> None:
        if index >= len(instance.nodes):
            self._finish(instance, "agree")
            return
        instance.current_node = index
        node = instance.nodes[index]
        now = self._clock.now()
        for user_id in dict.fromkeys(node.approvers):
            task = Task(next(self._task_ids), user_id, node.activity_id, index, now)
            instance.tasks.append(task)
            self._emit(TASK_CHANGE, task_data(instance, task, "start"))
        self._node_started(instance)

    def _finish(self, instance: Instance, result: str) -> None:
        now = self._clock.now()
        instance.status, instance.result, instance.finish_time = "COMPLETED", result, now
        if instance.cc:
            instance.records.append(
                Record(instance.originator, now, "PROCESS_CC", show_name="抄送")
            )
        self._emit(INSTANCE_CHANGE, instance_data(instance, "finish"))

    def _cancel_running(self, instance: Instance, status: str = "CANCELED") -> None:
        now = self._clock.now()
        for task in instance.running_tasks():
            task.status, task.finish_time = status, now
            self._emit(TASK_CHANGE, task_data(instance, task, "cancel"))

    def _task_for(self, instance: Instance, user_id: str | None) -> Task:
        if instance.status != "RUNNING":
            raise DecisionError(f"instance {instance.instance_id} is {instance.status}")
        for task in instance.running_tasks():
            if user_id is None or task.user_id == user_id:
                return task
        raise DecisionError(f"{user_id} has no running task on {instance.instance_id}")

    def act(self, instance: Instance, user_id: str | None, agree: bool, remark: str = "") -> Task:
        """One approver agrees or refuses; the node and the instance move on as the sign says."""
        task = self._task_for(instance, user_id)
        now = self._clock.now()
        task.status, task.finish_time = "COMPLETED", now
        task.result = "AGREE" if agree else "REFUSE"
        node = instance.nodes[task.node_index]
        instance.records.append(
            Record(
                task.user_id,
                now,
                "EXECUTE_TASK_NORMAL",
                task.result,
                remark,
                node.activity_id,
                node.name,
            )
        )
        self._emit(TASK_CHANGE, task_data(instance, task, "finish", remark))
        if not agree:
            self._cancel_running(instance)
            self._finish(instance, "refuse")
        elif node.sign != "AND" or not instance.running_tasks():
            self._cancel_running(instance)
            self._start_node(instance, task.node_index + 1)
        return task

    def terminate(self, instance: Instance, user_id: str, remark: str = "") -> None:
        """Revoke a running instance."""
        if instance.status != "RUNNING":
            raise DecisionError(f"instance {instance.instance_id} is {instance.status}")
        now = self._clock.now()
        self._cancel_running(instance)
        instance.status, instance.result, instance.finish_time = "TERMINATED", "", now
        instance.records.append(Record(user_id, now, "TERMINATE_PROCESS_INSTANCE", "NONE", remark))
        self._emit(INSTANCE_CHANGE, instance_data(instance, "terminate"))

    def comment(
        self,
        instance: Instance,
        user_id: str,
        text: str,
        attachments: list[dict[str, str]] | None = None,
        images: list[str] | None = None,
    ) -> None:
        """An ``ADD_REMARK`` record (§18.2), with the files and photos attached to it."""
        record = Record(user_id, self._clock.now(), "ADD_REMARK", "NONE", text, show_name="评论")
        record.attachments = list(attachments or [])
        record.images = list(images or [])
        instance.records.append(record)
