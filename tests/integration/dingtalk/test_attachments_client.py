"""The attachment client against the simulator, which enforces DingTalk's traps strictly.

The whole chain puts the bytes into the originator's approval space and its value passes
a create; each trap the simulator sets (no space query for that person, a token or a
``Content-Type`` on the signed PUT, a changed signed header, an expired ticket, a reused
upload key, a file in someone else's name) fails as DingTalk would, mapped to the same
errors as every other call; files that DingTalk would refuse are refused before any call.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.dingtalk import endpoints
from syncd.dingtalk.attachments import HttpxAttachmentClient, UploadTicket
from syncd.dingtalk.calls import send
from syncd.dingtalk.models import CreateInstanceRequest
from syncd.dingtalk.models import FormComponentValue as Value
from syncd.dingtalk.pacing import MemoryPacer
from syncd.domain import CallRecord
from syncd.errors import DingTalkError, DingTalkRejected, DingTalkTransient
from syncd.ports.attachments import AttachmentLimits, attachment_value, file_problem
from syncd.simulator import Simulator, World
from syncd.simulator.directory import union_id
from syncd.simulator.world import StorageSettings
from syncd.testing import FakeClock

from .conftest import FakeSleeper, SimEnv

AGENT = 3000001


def union(sim: Simulator, user_id: str) -> str:
    user = sim.world.user(user_id)
    assert user is not None
    return union_id(user)


def attachments(env: SimEnv, agent_id: int | None = AGENT) -> HttpxAttachmentClient:
    return HttpxAttachmentClient(env.http(), agent_id=agent_id, pacer=env.pacer, clock=env.clock)


def expense(originator: str, value: str) -> CreateInstanceRequest:
    return CreateInstanceRequest(
        process_code="PROC-SIM-EXPENSE",
        originator_user_id=originator,
        dept_id=-1,
        form_component_values=[
            Value(name="金额（元）", value="500"),
            Value(name="费用类型", value="差旅"),
            Value(name="发生日期", value="2026-01-02"),
            Value(name="附件", value=value),
        ],
    )


async def test_an_uploaded_file_is_in_the_space_and_passes_a_create(env: SimEnv) -> None:
    client = attachments(env)
    data = "收据".encode() * 100
    first = await client.upload("u1", union(env.sim, "u1"), "收据.pdf", data)
    again = await client.upload("u1", union(env.sim, "u1"), "收据.pdf", data)
    assert again.file_name == "收据(1).pdf"  # AUTO_RENAME: the dentry's name is used
    stored = env.sim.storage.files[first.file_id]
    assert stored.data == data and stored.creator == "u1"
    assert first.item() == stored.attachment()
    assert first.space_id == str(env.sim.storage.approval_space)
    created = await env.client().create_instance(expense("u1", attachment_value([first, again])))
    assert env.sim.workflow.instances[created].files == [first.file_id, again.file_id]
    assert env.sim.calls["oss.put"] == 2 and env.sim.calls["storage.commit"] == 2
    assert client.calls == 8  # (space, ticket, PUT, commit) twice


async def test_another_persons_file_fails_the_create(env: SimEnv) -> None:
    client = attachments(env)
    theirs = await client.upload("u2", union(env.sim, "u2"), "a.pdf", b"%PDF")
    with pytest.raises(DingTalkRejected) as refused:
        await env.client().create_instance(expense("u1", attachment_value([theirs])))
    assert refused.value.code == "formConverterError"


async def test_no_upload_rights_without_the_space_query_for_that_person(env: SimEnv) -> None:
    client = attachments(env)
    space = await client.space_id("u1")
    with pytest.raises(DingTalkRejected) as refused:
        await client.upload_ticket(space, union(env.sim, "u2"), "a.pdf", 4)
    assert (refused.value.code, refused.value.http_status) == ("permissionDenied", 403)
    with pytest.raises(DingTalkRejected) as missing:
        await client.upload_ticket(space + 1, union(env.sim, "u1"), "a.pdf", 4)
    assert (missing.value.code, missing.value.http_status) == ("spaceNotExist", 404)


async def test_without_agent_id_nothing_is_sent(env: SimEnv) -> None:
    client = attachments(env, agent_id=None)
    with pytest.raises(DingTalkRejected, match="agent_id"):
        await client.upload("u1", union(env.sim, "u1"), "a.pdf", b"%PDF")
    assert client.calls == 0


async def _ticket(env: SimEnv, client: HttpxAttachmentClient) -> tuple[int, UploadTicket]:
    space = await client.space_id("u1")
    return space, await client.upload_ticket(space, union(env.sim, "u1"), "a.pdf", 4)


async def test_the_put_carries_exactly_the_signed_headers_and_no_token(env: SimEnv) -> None:
    client = attachments(env)
    _, ticket = await _ticket(env, client)
    http = env.http()
    # The trap: a Content-Type (as most HTTP libraries add) breaks the signature.
    typed = await send(
        http,
        endpoints.UPLOAD,
        url=ticket.url,
        content=b"%PDF",
        headers={**ticket.headers, "Content-Type": "application/pdf"},
    )
    assert typed.status_code == 403 and b"SignatureDoesNotMatch" in typed.content
    changed = UploadTicket(
        ticket.upload_key, ticket.url, {**ticket.headers, "x-oss-date": "x"}, ticket.expires_at
    )
    with pytest.raises(DingTalkRejected) as refused:
        await client.put(changed, b"%PDF")
    assert (refused.value.code, refused.value.http_status) == ("SignatureDoesNotMatch", 403)
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    http.event_hooks["request"].append(record)
    await HttpxAttachmentClient(http, agent_id=AGENT, pacer=env.pacer, clock=env.clock).put(
        ticket, b"%PDF"
    )
    sent = [r for r in seen if r.method == "PUT"]
    assert len(sent) == 1
    assert "x-acs-dingtalk-access-token" not in sent[0].headers
    assert "content-type" not in sent[0].headers
    assert all(sent[0].headers[k] == v for k, v in ticket.headers.items())


async def test_an_upload_key_serves_one_commit(env: SimEnv) -> None:
    client = attachments(env)
    space, ticket = await _ticket(env, client)
    un = union(env.sim, "u1")
    with pytest.raises(DingTalkRejected) as early:
        await client.commit(space, un, ticket.upload_key, "a.pdf", 4)
    assert early.value.code == "dentryStoreError"  # a commit before the PUT
    await client.put(ticket, b"%PDF")
    await client.commit(space, un, ticket.upload_key, "a.pdf", 4)
    with pytest.raises(DingTalkRejected) as reused:
        await client.commit(space, un, ticket.upload_key, "a.pdf", 4)
    assert reused.value.code == "paramError"


async def test_an_expired_ticket_is_asked_for_again(env: SimEnv) -> None:
    client = attachments(env)
    _, ticket = await _ticket(env, client)
    env.clock.advance(901)
    with pytest.raises(DingTalkTransient) as expired:
        await client.put(ticket, b"%PDF")
    assert (expired.value.code, expired.value.http_status) == ("AccessDenied", 403)

    class Expiring(HttpxAttachmentClient):
        async def put(
            self, ticket: UploadTicket, data: bytes, record: list[CallRecord] | None = None
        ) -> None:
            if not getattr(self, "aged", False):
                self.aged = True
                env.clock.advance(901)  # a slow slot: the URL dies
            await super().put(ticket, data, record)

    slow = Expiring(env.http(), agent_id=AGENT, pacer=env.pacer, clock=env.clock)
    record: list[CallRecord] = []
    done = await slow.upload("u1", union(env.sim, "u1"), "late.pdf", b"late", record)
    assert env.sim.storage.files[done.file_id].data == b"late"
    # Each call is recorded on its own, the failed PUT too; only the PUTs are not metered.
    assert [(c.endpoint, c.ok, c.code, c.metered) for c in record] == [
        ("space_info", True, None, True),
        ("upload_info", True, None, True),
        ("upload", False, "AccessDenied", False),
        ("upload_info", True, None, True),
        ("upload", True, None, False),
        ("commit", True, None, True),
    ]
    assert {c.purpose for c in record} == {"attach"}


async def test_a_departed_originator_cannot_upload(env: SimEnv) -> None:
    client = attachments(env)
    user = env.sim.world.user("u1")
    assert user is not None
    user.active = False
    with pytest.raises(DingTalkRejected) as refused:
        await client.space_id("u1")
    assert refused.value.code == "userNotExist"


_NAME_PART = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from('\t*"<>|/ .'),
    max_size=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stem=_NAME_PART,
    ext=st.sampled_from(["pdf", "JPG", "exe", "", "p df", "pdf."]),
    size=st.integers(0, 3).map(lambda d: 64 + d - 2),
    types=st.sampled_from([frozenset(), frozenset({"pdf", "jpg"})]),
)
def test_files_around_the_limits_upload_exactly_when_allowed(
    stem: str, ext: str, size: int, types: frozenset[str]
) -> None:
    """Whatever the name and size, a file :func:`file_problem` lets through is stored with
    exactly its bytes, and one it refuses is refused by DingTalk too (never sent by us)."""
    name = f"{stem}.{ext}" if ext else stem
    world = World.default().model_copy(
        update={"storage": StorageSettings(max_file_size=64, file_types=sorted(types))}
    )
    limits = AttachmentLimits(max_file_size=64, file_types=types)

    async def run() -> None:
        clock = FakeClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
        sim = Simulator(world, clock=clock)
        env = SimEnv(sim, clock, MemoryPacer(clock=clock, sleep=FakeSleeper(clock)))
        try:
            client = attachments(env)
            data = bytes(range(256))[:size] if size <= 256 else b"x" * size
            problem = file_problem(name, size, limits)
            un = union(sim, "u1")
            if problem is None:
                done = await client.upload("u1", un, name, data)
                assert sim.storage.files[done.file_id].data == data
                assert done.file_size == size
            else:
                with pytest.raises(DingTalkError) as refused:  # the simulator agrees
                    await client.upload("u1", un, name, data)
                assert isinstance(refused.value, DingTalkRejected), refused.value
        finally:
            for http in env.opened:
                await http.aclose()
            await sim.aclose()

    asyncio.run(run())


HOLDERS = ["nobody", "this upload", "same person, other size", "another person", "same, older"]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(holder=st.sampled_from(HOLDERS), minutes=st.integers(min_value=0, max_value=90))
def test_a_retry_adopts_only_the_file_its_earlier_attempt_stored(holder: str, minutes: int) -> None:
    """A retry of an upload whose commit answer was lost (``earlier`` given) adopts the file
    under the name only when it is that attempt's own: same person, same size, stored since
    the attempt began (``minutes`` later, as long as a restart takes). Any other file under
    the name is left alone and this one stored beside it, renamed."""
    data = b"%PDF receipt"

    async def run() -> None:
        clock = FakeClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
        sim = Simulator(World.default(), clock=clock)
        env = SimEnv(sim, clock, MemoryPacer(clock=clock, sleep=FakeSleeper(clock)))
        try:
            client = attachments(env)
            me = union(sim, "u1")
            if holder == "same, older":
                await client.upload("u1", me, "收据.pdf", data)
                clock.advance(7 * 60)
            begun = clock.now()
            held = None
            if holder in ("this upload", "same person, other size", "another person"):
                who = "u2" if holder == "another person" else "u1"
                content = data + b"!" if holder == "same person, other size" else data
                held = await client.upload(who, union(sim, who), "收据.pdf", content)
            clock.advance(minutes * 60)
            before = set(sim.storage.files)
            done = await client.upload("u1", me, "收据.pdf", data, earlier=begun)
            assert sim.storage.files[done.file_id].data == data
            if holder == "this upload":
                assert held is not None and done == held
                assert set(sim.storage.files) == before  # nothing stored twice
            elif holder == "nobody":
                assert done.file_name == "收据.pdf"
            else:
                assert done.file_name == "收据(1).pdf"  # stored beside the other file
                assert set(sim.storage.files) == before | {done.file_id}
        finally:
            for http in env.opened:
                await http.aclose()
            await sim.aclose()

    asyncio.run(run())
