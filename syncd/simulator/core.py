"""The simulator object: world, clock, state, event push and fault switches in one place."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx

from syncd.clock import SystemClock
from syncd.ports import Clock
from syncd.simulator import rules
from syncd.simulator.callbacks import CallbackPusher
from syncd.simulator.directory import Directory
from syncd.simulator.events import DeliveryLog, Event
from syncd.simulator.faults import Faults, Limiter, fresh_seed
from syncd.simulator.progress import DecisionError, Engine
from syncd.simulator.state import Instance, TokenStore
from syncd.simulator.storage import Storage
from syncd.simulator.stream import StreamGateway
from syncd.simulator.timeline import Timeline
from syncd.simulator.workflow import Workflow
from syncd.simulator.world import App, World

if TYPE_CHECKING:
    from starlette.types import ASGIApp


def _first_task_id(rng: random.Random) -> int:
    """Where this run's task ids start: 12 to 15 digits, so runs that do not share a seed
    do not share task ids (int64 on the wire; kept below 2**53 for JavaScript clients)."""
    return rng.randrange(10**11, 10**15)


class Simulator:
    """A faithful local DingTalk for approvals.

    ``time_scale`` multiplies every simulated delay (rule decisions, callback retries,
    Stream ACK timeouts and pings): 0.01 makes a 10 s retry take 0.1 s. Every id it makes
    comes from one generator seeded with ``world.faults.seed`` (:attr:`seed`): a world
    without a seed gets a fresh one, so a restarted simulator repeats no id of an earlier
    run; the same seed repeats the run's ids.
    """

    def __init__(
        self,
        world: World,
        clock: Clock | None = None,
        time_scale: float = 1.0,
        *,
        callback_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.world = world
        self.clock: Clock = clock or SystemClock()
        self.time_scale = time_scale
        self.seed = fresh_seed() if world.faults.seed is None else world.faults.seed
        self.faults = Faults(world.faults.model_copy(update={"seed": self.seed}), world.limits)
        self.limiter = Limiter(self.clock, self.faults)
        self.rng = random.Random(self.seed)
        self._run = f"{self.rng.getrandbits(32):08X}"
        self.tokens = TokenStore(self.clock, self.rng, lambda: self.faults.limits.token_ttl)
        self.timeline = Timeline(self.clock)
        self.log = DeliveryLog(on_change=self.notify)
        self.events: list[Event] = []
        self.calls: Counter[str] = Counter()
        self.engine = Engine(
            self.clock, self._emit, self._node_started, first_task_id=_first_task_id(self.rng)
        )
        self.storage = Storage(world, self.clock, self.rng)
        self.workflow = Workflow(world, self.clock, self.engine, self.rng, self.storage)
        self.directory = Directory(world, self.clock, self._emit)
        self.stream = StreamGateway(self)
        self.callbacks = CallbackPusher(self, callback_client)
        self._request_ids = itertools.count(1)
        self._event_ids = itertools.count(1)
        self._change = asyncio.Event()
        self._app: ASGIApp | None = None

    # wiring -----------------------------------------------------------------------------

    @property
    def app(self) -> ASGIApp:
        """The ASGI app: new API, old API, admin API and page, Stream websocket."""
        if self._app is None:
            from syncd.simulator.app import build_app

            self._app = build_app(self)
        return self._app

    @property
    def fake_time(self) -> bool:
        return hasattr(self.clock, "advance")

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    def request_id(self) -> str:
        return f"SIM-{self._run}-{next(self._request_ids)}"

    def app_for(self, app_key: str) -> App | None:
        return self.world.app(app_key)

    async def advance(self, seconds: float = 0.0) -> int:
        """Move a FakeClock and run all work that fell due; returns the number of jobs run."""
        return await self.timeline.advance(seconds)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Simulator]:
        """Run timed work in the background (real clock only) and clean up on exit."""
        task = None if self.fake_time else asyncio.create_task(self.timeline.run_forever())
        try:
            yield self
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.stream.close_all()
            await self.callbacks.aclose()

    async def aclose(self) -> None:
        await self.stream.close_all()
        await self.callbacks.aclose()

    # events -----------------------------------------------------------------------------

    def notify(self) -> None:
        """Wake :meth:`wait_for` callers: something was made, delivered or connected."""
        self._change.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; re-checked whenever an event is made or delivered.

        Put a deadline around it: ``async with asyncio.timeout(5): await sim.wait_for(...)``.
        """
        while not predicate():
            self._change.clear()
            await self._change.wait()

    def _emit(self, event_type: str, data: dict[str, Any]) -> None:
        event_id = f"{self.rng.getrandbits(64):016x}{next(self._event_ids):08x}"
        event = Event(event_id, event_type, self.world.corp.corp_id, self.clock.now(), data)
        self.events.append(event)
        self.notify()
        for app in self.world.apps:
            copies = 2 if self.faults.duplicate_event() else 1
            delay = 0.0
            if self.faults.reorder_event():
                delay = self.scaled(self.faults.settings.reorder_delay)
            for _ in range(copies):
                if app.stream:
                    self.timeline.at(delay, "stream", partial(self.stream.deliver, app, event))
                if self.callbacks.url(app.app_key):
                    self.timeline.at(delay, "callback", partial(self.callbacks.push, app, event))

    @property
    def events_pushed(self) -> list[dict[str, Any]]:
        return self.log.pushed

    @property
    def events_acknowledged(self) -> list[dict[str, Any]]:
        return self.log.acknowledged

    @property
    def events_failed(self) -> list[dict[str, Any]]:
        return self.log.failed

    # decisions --------------------------------------------------------------------------

    def _node_started(self, instance: Instance) -> None:
        rule = rules.decide(self.world.rules, instance)
        if rule is None:
            return
        node = instance.current_node

        async def apply() -> None:
            if instance.status != "RUNNING" or instance.current_node != node:
                return
            agree = rule.decision == "agree"
            while instance.status == "RUNNING" and instance.current_node == node:
                self.engine.act(instance, None, agree, rule.remark)
                if not agree:
                    return

        self.timeline.at(self.scaled(rule.delay), f"rule {instance.instance_id}", apply)

    def instance(self, instance_id: str) -> Instance:
        instance = self.workflow.instances.get(instance_id)
        if instance is None:
            raise DecisionError(f"no instance {instance_id}")
        return instance

    def approve(self, instance_id: str, user_id: str | None = None, remark: str = "") -> None:
        """An approver (default: the first with a running task) agrees."""
        self.engine.act(self.instance(instance_id), user_id, True, remark)

    def refuse(self, instance_id: str, user_id: str | None = None, remark: str = "") -> None:
        """An approver (default: the first with a running task) refuses."""
        self.engine.act(self.instance(instance_id), user_id, False, remark)

    def terminate(self, instance_id: str, user_id: str | None = None, remark: str = "") -> None:
        """Revoke a running instance (no 15-second rule: this is the operator's hand)."""
        instance = self.instance(instance_id)
        self.engine.terminate(instance, user_id or instance.originator, remark)

    def start(
        self,
        process_code: str,
        user_id: str,
        form: list[dict[str, str]],
        *,
        dept_id: int | None = None,
        files: dict[str, list[tuple[str, bytes]]] | None = None,
    ) -> Instance:
        """A person starts an instance in DingTalk itself (no app): the same checks as a
        create, the ``start`` event, and the instance in the id listing (contract §20).
        ``files`` attaches files by DDAttachment label, uploaded as that person; ``dept_id``
        defaults to their first department. Raises ApiError as a create would."""
        user = self.world.user(user_id)
        values = [v for v in form if v.get("name") not in (files or {})]
        for label, named in (files or {}).items():
            stored = [self.storage.upload_direct(user_id, n, data) for n, data in named]
            value = [f.attachment() for f in stored]
            values.append({"name": label, "value": json.dumps(value, ensure_ascii=False)})
        body = {
            "processCode": process_code,
            "originatorUserId": user_id,
            "deptId": dept_id if dept_id is not None else (user.dept_ids[0] if user else -1),
            "formComponentValues": values,
        }
        return self.workflow.create("", body)

    def comment(
        self,
        instance_id: str,
        user_id: str,
        text: str,
        files: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """A person comments in DingTalk (an approver, say), attaching files they upload."""
        instance = self.instance(instance_id)
        if not text.strip() or len(text) > 1024:
            raise ValueError("a comment needs a text of 1 to 1,024 characters")
        attached = [self.storage.upload_direct(user_id, n, d).attachment() for n, d in files or []]
        self.engine.comment(instance, user_id, text, attached)

    def instances(
        self, process_code: str | None = None, originator: str | None = None
    ) -> list[Instance]:
        """Instances in creation order, optionally filtered."""
        return [
            i
            for i in self.workflow.instances.values()
            if (process_code is None or i.process_code == process_code)
            and (originator is None or i.originator == originator)
        ]
