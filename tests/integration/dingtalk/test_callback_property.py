"""The callback endpoint over the whole input space (Hypothesis), against a real inbox.

Every request is built from a drawn plan: a genuine push (any event type, timestamp
anywhere inside the window, in seconds or milliseconds, either parameter name, the
signature in any case or padded), a replay of one (the signature restyled), a stale one,
a forgery (other token, random signature, other AES key or owner key, signed plaintext
that is no event), a genuine push with its query mutated, a genuine query with any body
(random bytes, not UTF-8, any JSON value, nested far too deep, tampered, over the cap
declared or streamed, a lying or garbage Content-Length), or noise. Whatever comes: never
a 5xx; 200 exactly for the genuine ones; every other one 400/403/413 with one
``callback_rejected`` line and count whose reason is in the closed set, and nothing
stored, neither an event nor a replay claim.
"""

from __future__ import annotations

import asyncio
import json
import logging
import string
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import event as label
from hypothesis import strategies as st
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from syncd.db.inbox import PostgresInbox
from syncd.dingtalk.callback import DEFAULT_MAX_BODY, MAX_QUERY_BYTES, create_callback_app
from syncd.testing import FakeClock

from .pushes import (
    MAX_AGE,
    NOW,
    OTHER_AES_KEY,
    PATH,
    Push,
    RejectedLines,
    Rejections,
    chunks,
    counter,
    endpoint,
    event,
    genuine,
    sign,
)

CAP = DEFAULT_MAX_BODY
NAMES = ("msg_signature", "signature", "timestamp", "timeStamp", "nonce")
KEEP, DROP = "<keep>", "<drop>"
INSIDE = st.floats(-(MAX_AGE - 2), MAX_AGE - 2, allow_nan=False)
NONCES = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=16)
FORMS = st.sampled_from(["as_sent", "upper", "mixed", "padded"])
EVENT_TYPES = st.sampled_from(["bpms_instance_change", "bpms_task_change", "check_url"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def restyle(signature: str, form: str) -> str:
    """The same signature as a sender may spell it."""
    if form == "upper":
        return signature.upper()
    if form == "mixed":
        return "".join(c.upper() if i % 2 else c for i, c in enumerate(signature))
    if form == "padded":
        return f" {signature}\t"
    return signature


def rename(push: Push, param: str) -> Push:
    """The push with its signature or timestamp under the other name DingTalk uses."""
    query = dict(push.query)
    if param == "signature":
        query["signature"] = query.pop("msg_signature")
    elif param == "both":
        query["signature"] = query["msg_signature"]
    elif param == "timeStamp":
        query["timeStamp"] = query.pop("timestamp")
    return Push(query, push.body, push.encrypt)


@dataclass(frozen=True)
class Request:
    """What to send: ``body`` at once or in small chunks, or ``stream`` bytes of ``fill``
    produced a chunk at a time."""

    query: dict[str, str]
    body: bytes = b""
    stream: int = 0
    fill: bytes = b"["
    headers: tuple[tuple[str, str], ...] = ()
    chunked: bool = False

    def content(self) -> Any:
        if self.stream:
            return chunks(self.stream, self.fill, chunk=7919)
        return _pieces(self.body) if self.chunked else self.body


async def _pieces(body: bytes) -> AsyncIterator[bytes]:
    for at in range(0, len(body), 97):
        yield body[at : at + 97]


# --- plans -----------------------------------------------------------------------------------

genuine_plans = st.fixed_dictionaries(
    {
        "kind": st.just("genuine"),
        "event_type": EVENT_TYPES,
        "offset": INSIDE,
        "seconds": st.booleans(),
        "nonce": NONCES,
        "param": st.sampled_from(["msg_signature", "signature", "both", "timeStamp"]),
        "form": FORMS,
        "chunked": st.booleans(),
    }
)
replay_plans = genuine_plans.flatmap(
    lambda g: st.fixed_dictionaries(
        {
            **{k: st.just(v) for k, v in g.items()},
            "kind": st.just("replay"),
            "again_form": FORMS,
            "again_param": st.sampled_from(["msg_signature", "signature"]),
        }
    )
)
stale_plans = st.fixed_dictionaries(
    {
        "kind": st.just("stale"),
        "offset": st.floats(MAX_AGE + 2, 1e8) | st.floats(-1e8, -(MAX_AGE + 2)),
        "seconds": st.booleans(),
    }
)
forged_plans = st.fixed_dictionaries(
    {
        "kind": st.just("forged"),
        "how": st.sampled_from(
            ["token", "random_signature", "aes_key", "owner", "not_json", "no_type", "deep"]
        ),
        "signature": st.text(alphabet="0123456789abcdefABCDEF", min_size=40, max_size=40),
    }
)
query_plans = st.fixed_dictionaries(
    {
        "kind": st.just("query"),
        "changes": st.fixed_dictionaries(
            {name: st.sampled_from([KEEP, DROP]) | st.text(max_size=60) for name in NAMES[::2]}
        ),
        "junk": st.dictionaries(
            st.text(min_size=1, max_size=8).filter(lambda k: k not in NAMES),
            st.text(max_size=20),
            max_size=3,
        ),
        "too_long": st.booleans(),
    }
)
body_plans = st.fixed_dictionaries(
    {
        "kind": st.just("body"),
        "body": st.one_of(
            st.tuples(st.just("bytes"), st.binary(max_size=3000)),
            st.tuples(st.just("not_utf8"), st.binary(max_size=200)),
            st.tuples(st.just("json"), JSON),
            st.tuples(st.just("encrypt"), JSON),
            st.tuples(st.just("deep"), st.integers(1, 4 * CAP)),
            st.tuples(st.just("deep_in_object"), st.integers(1, 4 * CAP)),
            st.tuples(st.just("tampered"), st.integers(0, 10_000)),
            st.tuples(st.just("huge"), st.integers(CAP + 1, 8 * CAP)),
            st.tuples(st.just("empty"), st.none()),
        ),
        "length": st.sampled_from(["true", "none", "lie", "garbage"]),
    }
)
noise_plans = st.fixed_dictionaries(
    {
        "kind": st.just("noise"),
        "query": st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=10), st.text()),
        "body": st.binary(max_size=500),
    }
)
# --- from plan to requests -------------------------------------------------------------------


def genuine_push(plan: dict[str, Any]) -> Push:
    push = genuine(
        event(plan["event_type"]),
        offset=plan["offset"],
        seconds=plan["seconds"],
        nonce=plan["nonce"],
    )
    push = push.with_signature(restyle(push.query["msg_signature"], plan["form"]))
    return rename(push, plan["param"])


def as_request(push: Push, chunked: bool = False) -> Request:
    return Request(push.query, push.body, chunked=chunked)


def forged(plan: dict[str, Any]) -> Request:
    how = plan["how"]
    message = json.dumps(event())
    push = {
        "token": lambda: sign(message, token="not-the-token"),
        "random_signature": lambda: genuine().with_signature(plan["signature"]),
        "aes_key": lambda: sign(message, aes_key=OTHER_AES_KEY),
        "owner": lambda: sign(message, owner="dingsomeoneelse"),
        "not_json": lambda: sign("success"),
        "no_type": lambda: sign(json.dumps({"eventId": "x", "type": "finish"})),
        "deep": lambda: sign("[" * 40_000),  # under the cap once encrypted
    }[how]()
    return as_request(push)


def mutated(plan: dict[str, Any]) -> Request:
    push = genuine()
    query = dict(push.query)
    for name, change in plan["changes"].items():
        if change == DROP:
            query.pop(name)
        elif change != KEEP:
            query[name] = change
    query |= plan["junk"]
    if plan["too_long"]:
        query["pad"] = "p" * MAX_QUERY_BYTES
    # Still the genuine push if nothing the endpoint reads changed.
    assume(
        plan["too_long"]
        or query.get("msg_signature", "").strip().lower() != push.query["msg_signature"]
        or query.get("timestamp") != push.query["timestamp"]
        or query.get("nonce") != push.query["nonce"]
    )
    return Request(query, push.body)


def with_body(plan: dict[str, Any]) -> Request:
    push = genuine()
    kind, value = plan["body"]
    stream, body, fill = 0, b"", b"["
    if kind == "bytes":
        body = value
    elif kind == "not_utf8":
        body = b'{"encrypt": "\xff\xfe' + value + b'"}'
    elif kind == "json":
        body = json.dumps(value).encode()
    elif kind == "encrypt":
        assume(value != push.encrypt)
        body = json.dumps({"encrypt": value}).encode()
    elif kind in ("deep", "huge"):
        stream, fill = value, b"[" if kind == "deep" else b" "
    elif kind == "deep_in_object":
        body = b'{"encrypt": ' + b"[" * value
    elif kind == "tampered":
        at = value % len(push.encrypt)
        flipped = (
            push.encrypt[:at] + ("A" if push.encrypt[at] != "A" else "B") + push.encrypt[at + 1 :]
        )
        body = json.dumps({"encrypt": flipped}).encode()
    size = stream or len(body)
    headers = {
        "true": (("content-length", str(size)),),
        "none": (),
        "lie": (("content-length", "10"),),
        "garbage": (("content-length", "12abc"),),
    }[plan["length"]]
    return Request(push.query, body, stream, fill, headers)


def noise(plan: dict[str, Any]) -> Request:
    return Request(plan["query"], plan["body"])


BUILD = {
    "stale": lambda p: as_request(genuine(offset=p["offset"], seconds=p["seconds"])),
    "forged": forged,
    "query": mutated,
    "body": with_body,
    "noise": noise,
}


# --- the property ----------------------------------------------------------------------------


@dataclass
class Harness:
    http: httpx.AsyncClient
    rejections: Rejections
    lines: RejectedLines
    counts: Any

    async def send(self, request: Request) -> httpx.Response:
        response = await self.http.post(
            PATH, params=request.query, content=request.content(), headers=dict(request.headers)
        )
        assert response.status_code < 500, response.status_code
        return response

    async def refused(self, request: Request) -> None:
        """``request`` is refused: a 4xx, one log line and count, nothing stored."""
        before, seen = await self.counts(), len(self.rejections.reasons)
        response = await self.send(request)
        assert response.status_code in (400, 403, 413), response.status_code
        assert response.content == b""
        assert len(self.rejections.reasons) == seen + 1
        assert len(self.lines.lines) == seen + 1
        assert self.lines.lines[-1].reason == self.rejections.reasons[-1]  # type: ignore[attr-defined]
        assert await self.counts() == before

    async def accepted(self, push: Push, event_type: str, chunked: bool) -> None:
        """``push`` is answered with the encrypted success, its event and claim stored."""
        (events, claims), seen = await self.counts(), len(self.rejections.reasons)
        response = await self.send(as_request(push, chunked))
        assert response.status_code == 200, (response.status_code, self.rejections.reasons[seen:])
        assert set(response.json()) == {"msg_signature", "timeStamp", "nonce", "encrypt"}
        stored = 0 if event_type == "check_url" else 1
        assert await self.counts() == (events + stored, claims + 1)


async def run_plan(h: Harness, plan: dict[str, Any]) -> None:
    kind = plan["kind"]
    if kind in ("genuine", "replay"):
        push = genuine_push(plan)
        await h.accepted(push, plan["event_type"], plan["chunked"])
        if kind == "replay":
            signature = push.query.get("msg_signature") or push.query["signature"]
            again = push.with_signature(restyle(signature.strip(), plan["again_form"]))
            await h.refused(as_request(rename(again, plan["again_param"])))
            assert h.rejections.reasons[-1] == "replayed"
        return
    await h.refused(BUILD[kind](plan))


@pytest.fixture
def harness(database: str) -> Iterator[tuple[asyncio.Runner, Harness]]:
    """The endpoint on a real inbox, driven from a loop of its own (Hypothesis is sync)."""
    logger = logging.getLogger("syncd.dingtalk.callback")
    lines = RejectedLines()
    logger.addHandler(lines)
    with asyncio.Runner() as runner:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            database, min_size=1, max_size=2, open=False, kwargs={"row_factory": dict_row}
        )
        runner.run(pool.open(wait=True))
        rejections = Rejections()
        app = create_callback_app(endpoint(PostgresInbox(pool), FakeClock(NOW), rejections))
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://syncd")
        try:
            yield runner, Harness(http, rejections, lines, counter(pool))
        finally:
            runner.run(http.aclose())
            runner.run(pool.close())
            logger.removeHandler(lines)


def _property(max_examples: int) -> Any:
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def _check(harness: tuple[asyncio.Runner, Harness], plan: dict[str, Any]) -> None:
    runner, h = harness
    seen = len(h.rejections.reasons)
    runner.run(run_plan(h, plan))
    label(f"{plan['kind']}: {', '.join(h.rejections.reasons[seen:]) or 'accepted'}")


@_property(150)
@given(plan=genuine_plans | replay_plans)
def test_genuine_pushes_are_accepted_once_in_any_spelling(harness, plan) -> None:
    _check(harness, plan)


@_property(250)
@given(plan=stale_plans | forged_plans | query_plans | noise_plans)
def test_stale_forged_and_malformed_queries_are_refused(harness, plan) -> None:
    _check(harness, plan)


@_property(250)
@given(plan=body_plans)
def test_any_body_under_a_genuine_query_is_refused_without_a_5xx(harness, plan) -> None:
    _check(harness, plan)
