"""DingTalk for the pipeline's unit tests: the real client on the simulator, in process,
and a scripted client that fails chosen calls of it (or of nothing at all).

:func:`simulated_client` is syncd's own ``HttpxApprovalClient`` talking to the
simulator's ASGI app through httpx: real request building, token auth, error mapping and
DingTalk's behaviour, with no socket and no sleeping (pacing waits move the fake clock).
:class:`ScriptedClient` implements ``ApprovalClient`` for control flow: it hands each
call to the client it wraps, unless a scripted outcome is due for that method.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from syncd.dingtalk.client import HttpxApprovalClient, build_http_client
from syncd.dingtalk.events import make_event
from syncd.dingtalk.models import CreateInstanceRequest, FormSchema, InstanceId, ProcessInstance
from syncd.dingtalk.pacing import MemoryPacer
from syncd.errors import DingTalkError
from syncd.ports import ApprovalClient, InboxWriter
from syncd.simulator import Simulator
from syncd.testing import FakeClock

APP_KEY = "dingsimappkey0001"
APP_SECRET = "sim-app-secret-0001"


@asynccontextmanager
async def simulated_client(sim: Simulator, clock: FakeClock) -> AsyncIterator[HttpxApprovalClient]:
    """syncd's DingTalk client on ``sim`` (which must run on ``clock``), in process."""

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    http = build_http_client(
        APP_KEY,
        APP_SECRET,
        clock=clock,
        transport=httpx.ASGITransport(app=sim.app),
    )
    pacer = MemoryPacer(clock=clock, rate=1000, sleep=sleep)
    try:
        yield HttpxApprovalClient(http, pacer=pacer, clock=clock)
    finally:
        await http.aclose()
        await sim.aclose()


@dataclass(frozen=True)
class Lost:
    """A scripted outcome: the call reaches DingTalk (the wrapped client), then its answer
    is lost and ``error`` is raised instead."""

    error: DingTalkError


@dataclass(frozen=True)
class Meanwhile:
    """A scripted outcome: ``action`` runs (something happens while the call is in
    flight), then the call goes to the wrapped client."""

    action: Callable[[], None]


@dataclass(frozen=True)
class Held:
    """A scripted outcome: the call waits until ``gate`` is set (DingTalk is slow to
    answer), then goes to the wrapped client."""

    gate: asyncio.Event


#: A scripted outcome: the call goes to the wrapped client as if unscripted.
PASS = Meanwhile(lambda: None)

#: What a scripted call does: raise a ``DingTalkError``, be :class:`Lost`, run
#: :class:`Meanwhile`, wait while :class:`Held`, or return a value.
Scripted = DingTalkError | Lost | Meanwhile | Held | Any
_UNSCRIPTED = object()


class ScriptedClient:
    """An ``ApprovalClient`` whose next calls of a method do as scripted: raise an error
    (the call never reached DingTalk), be :class:`Lost`, let something happen
    :class:`Meanwhile`, wait while :class:`Held`, or return a value; calls left
    unscripted go to ``inner`` (without one, they fail the test)."""

    def __init__(self, inner: ApprovalClient | None = None) -> None:
        self.inner = inner
        self._script: defaultdict[str, deque[Scripted]] = defaultdict(deque)
        #: Every call, in order: (method, first argument).
        self.calls: list[tuple[str, Any]] = []

    def script(self, method: str, *outcomes: Scripted) -> None:
        """What the next calls of ``method`` do, in order."""
        self._script[method].extend(outcomes)

    def count(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name == method)

    async def _run(self, method: str, arg: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((method, arg))
        queue = self._script[method]
        scripted = queue.popleft() if queue else _UNSCRIPTED
        if isinstance(scripted, DingTalkError):
            raise scripted
        if isinstance(scripted, Meanwhile):
            scripted.action()
        elif isinstance(scripted, Held):
            await scripted.gate.wait()
        elif scripted is not _UNSCRIPTED and not isinstance(scripted, Lost):
            return scripted
        if self.inner is None:
            raise AssertionError(f"unscripted call {method}({arg!r})")
        result = await getattr(self.inner, method)(arg, *args, **kwargs)
        if isinstance(scripted, Lost):
            raise scripted.error
        return result

    async def create_instance(
        self, request: CreateInstanceRequest, *, send_before: datetime | None = None
    ) -> InstanceId:
        result: InstanceId = await self._run("create_instance", request, send_before=send_before)
        return result

    async def get_instance(self, instance_id: str) -> ProcessInstance:
        result: ProcessInstance = await self._run("get_instance", instance_id)
        return result

    async def list_instance_ids(
        self,
        process_code: str,
        start: datetime,
        end: datetime | None = None,
        *,
        user_ids: Sequence[str] = (),
        statuses: Sequence[str] = (),
    ) -> list[InstanceId]:
        result: list[InstanceId] = await self._run(
            "list_instance_ids", process_code, start, end, user_ids=user_ids, statuses=statuses
        )
        return result

    async def terminate_instance(
        self, instance_id: str, *, operating_user_id: str | None = None, remark: str | None = None
    ) -> None:
        await self._run(
            "terminate_instance", instance_id, operating_user_id=operating_user_id, remark=remark
        )

    async def add_comment(
        self,
        instance_id: str,
        text: str,
        comment_user_id: str,
        attachments: Sequence[Mapping[str, str]] = (),
    ) -> None:
        await self._run("add_comment", instance_id, text, comment_user_id, attachments)

    async def get_form_schema(self, process_code: str) -> FormSchema:
        result: FormSchema = await self._run("get_form_schema", process_code)
        return result


class EventFeed:
    """Carries the events the simulator made into an inbox, as the Stream client would
    (each event once per :meth:`pump`; ``again`` delivers the ones already carried)."""

    def __init__(self, sim: Simulator, inbox: InboxWriter) -> None:
        self.sim = sim
        self.inbox = inbox
        self.carried = 0

    async def pump(self, *, again: bool = False) -> int:
        """Store the events made since the last pump (all of them, with ``again``);
        returns how many were new to the inbox."""
        start = 0 if again else self.carried
        events = self.sim.events[start:]
        self.carried = len(self.sim.events)
        stored = await self.inbox.put_many(
            [make_event("stream", e.event_type, e.data, e.event_id) for e in events]
        )
        return sum(stored)
