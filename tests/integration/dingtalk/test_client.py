"""HttpxApprovalClient against the in-process simulator: every call, every error class."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

import httpx
import pytest

from syncd.dingtalk.client import HttpxApprovalClient
from syncd.dingtalk.pacing import MemoryPacer
from syncd.errors import (
    DingTalkAuthError,
    DingTalkOutcomeUnknown,
    DingTalkQuotaExhausted,
    DingTalkRejected,
    DingTalkThrottled,
    DingTalkTransient,
)
from syncd.ports import ApprovalClient

from .conftest import APP_SECRET, LEAVE, FakeSleeper, SimEnv


async def test_round_trip_of_every_call(env: SimEnv) -> None:
    client: ApprovalClient = env.client()
    instance_id = await client.create_instance(LEAVE)
    running = await client.get_instance(instance_id)
    assert (running.instance_id, running.status, running.result) == (instance_id, "RUNNING", None)
    assert running.tasks[0].user_id == "manager1"
    await client.add_comment(instance_id, "请尽快", "u1")
    env.sim.approve(instance_id)
    env.sim.approve(instance_id)
    done = await client.get_instance(instance_id)
    assert done.is_approved and done.finish_time is not None
    assert "ADD_REMARK" in [record.type for record in done.operation_records]
    schema = await client.get_form_schema("PROC-SIM-LEAVE")
    assert schema.schema_content.items[0].props.options == ["年假", "事假", "病假"]
    assert env.sim.calls["oauth2.accessToken"] == 1


async def test_terminate_as_system_and_as_originator(env: SimEnv) -> None:
    client = env.client()
    first, second = [await client.create_instance(LEAVE) for _ in range(2)]
    env.clock.advance(16)  # no revoke within 15 s of creation
    await client.terminate_instance(first, remark="superseded")
    await client.terminate_instance(second, operating_user_id="u1")
    for instance_id in (first, second):
        assert (await client.get_instance(instance_id)).status == "TERMINATED"


async def test_list_pages_and_cuts_long_ranges_into_120_day_windows(env: SimEnv) -> None:
    client = env.client()
    created = [await client.create_instance(LEAVE) for _ in range(45)]
    start = env.clock.now() - timedelta(days=119)
    assert sorted(await client.list_instance_ids("PROC-SIM-LEAVE", start)) == sorted(created)
    assert env.sim.calls["workflow.listIds"] == 3  # pages of 20, 20 and 5
    env.clock.advance(200 * 86400)
    ids = await client.list_instance_ids(
        "PROC-SIM-LEAVE", start, start + timedelta(days=300), statuses=["RUNNING"]
    )
    assert sorted(ids) == sorted(created)


async def test_list_filters_by_originator(env: SimEnv) -> None:
    client = env.client()
    await client.create_instance(LEAVE)
    start = env.clock.now() - timedelta(days=1)
    assert await client.list_instance_ids("PROC-SIM-LEAVE", start, user_ids=["u2"]) == []


# --- token handling ----------------------------------------------------------------------


async def test_fifty_concurrent_calls_fetch_one_token(env: SimEnv) -> None:
    client = env.client()
    instance_id = await env.client().create_instance(LEAVE)
    results = await asyncio.gather(*(client.get_instance(instance_id) for _ in range(50)))
    assert {r.status for r in results} == {"RUNNING"}
    assert env.sim.calls["oauth2.accessToken"] == 2  # one per httpx client


async def test_token_refreshed_before_expiry(env: SimEnv) -> None:
    client = env.client()
    instance_id = await client.create_instance(LEAVE)
    env.clock.advance(7200 - 600 + 1)
    await client.get_instance(instance_id)
    assert env.sim.calls["oauth2.accessToken"] == 2
    assert env.sim.calls["workflow.get"] == 1  # no call was refused


async def test_token_expiring_mid_run_is_refreshed_once_and_the_call_resent(env: SimEnv) -> None:
    client = env.client()
    instance_id = await client.create_instance(LEAVE)
    env.sim.tokens.expire_all()
    assert (await client.get_instance(instance_id)).status == "RUNNING"
    assert env.sim.calls["oauth2.accessToken"] == 2
    assert env.sim.calls["workflow.get"] == 2  # refused once, resent once


async def test_wrong_secret_is_an_auth_error_that_says_so(env: SimEnv) -> None:
    client = env.client(secret="not-the-secret")
    with pytest.raises(DingTalkAuthError) as caught:
        await client.create_instance(LEAVE)
    assert caught.value.code == "invalidClientIdOrSecret"
    assert "app key or secret" in str(caught.value)
    assert "not-the-secret" not in str(caught.value) + repr(caught.value)
    assert env.sim.calls["workflow.create"] == 0


def test_secrets_stay_out_of_reprs(env: SimEnv) -> None:
    http = env.http()
    assert APP_SECRET not in repr(http.auth) + repr(vars(http.auth))


# --- errors by what the caller does next -------------------------------------------------


async def test_rejected_keeps_dingtalk_code_and_message(env: SimEnv) -> None:
    client = env.client()
    bad = LEAVE.model_copy(update={"process_code": "PROC-NOPE"})
    with pytest.raises(DingTalkRejected) as caught:
        await client.create_instance(bad)
    assert caught.value.code == "processCodeError" and caught.value.message
    assert caught.value.request_id.startswith("SIM-") and caught.value.http_status == 400
    with pytest.raises(DingTalkRejected) as unknown:
        await client.get_instance("no-such-instance")
    assert unknown.value.code == "processInstanceNotExist"


async def test_throttling_backs_the_pacer_off(env: SimEnv) -> None:
    pacer = MemoryPacer(clock=env.clock, rate=1000, sleep=FakeSleeper(env.clock))
    client = env.client(pacer=pacer)
    env.sim.faults.update(qps_per_api=2)
    instance_id = await client.create_instance(LEAVE)
    await client.get_instance(instance_id)
    await client.get_instance(instance_id)
    with pytest.raises(DingTalkThrottled) as caught:
        await client.get_instance(instance_id)
    assert caught.value.retry_after == 1.0
    before = env.clock.monotonic()
    assert (await client.get_instance(instance_id)).status == "RUNNING"
    assert env.clock.monotonic() - before >= 1.0  # the pacer waited out the penalty


async def test_quota_exhausted(env: SimEnv) -> None:
    client = env.client()
    env.sim.faults.update(monthly_quota=1)
    instance_id = await client.create_instance(LEAVE)
    with pytest.raises(DingTalkQuotaExhausted):
        await client.get_instance(instance_id)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("error_5xx_rate", DingTalkTransient),
        ("reset_rate", DingTalkTransient),
        ("error_429_rate", DingTalkThrottled),
    ],
)
async def test_server_trouble_on_reads_is_transient(
    env: SimEnv, fault: str, expected: type[Exception]
) -> None:
    client = env.client()
    instance_id = await client.create_instance(LEAVE)
    env.sim.faults.update(**{fault: 1.0})
    with pytest.raises(expected) as caught:
        await client.get_instance(instance_id)
    assert not isinstance(caught.value, DingTalkOutcomeUnknown)


@pytest.mark.parametrize(
    ("fault", "applied"),
    [("error_5xx_rate", 0), ("reset_rate", 0), ("create_response_lost_rate", 1)],
)
async def test_create_after_sending_is_outcome_unknown_and_never_retried(
    env: SimEnv, fault: str, applied: int
) -> None:
    client = env.client()
    await client.get_form_schema("PROC-SIM-LEAVE")  # token fetched before the faults
    env.sim.faults.update(**{fault: 1.0, "endpoints": ["workflow.create"]})
    with pytest.raises(DingTalkOutcomeUnknown):
        await client.create_instance(LEAVE)
    assert env.sim.calls["workflow.create"] == 1
    assert len(env.sim.instances()) == applied


async def test_create_throttled_by_dingtalk_is_not_outcome_unknown(env: SimEnv) -> None:
    client = env.client()
    env.sim.faults.update(error_429_rate=1.0, endpoints=["workflow.create"])
    with pytest.raises(DingTalkThrottled):
        await client.create_instance(LEAVE)


async def test_create_whose_token_fetch_fails_was_never_sent(env: SimEnv) -> None:
    client = env.client()
    env.sim.faults.update(error_5xx_rate=1.0, endpoints=["oauth2.accessToken"])
    with pytest.raises(DingTalkTransient) as caught:
        await client.create_instance(LEAVE)
    assert not isinstance(caught.value, DingTalkOutcomeUnknown)
    assert env.sim.calls["workflow.create"] == 0


async def test_create_that_cannot_connect_is_transient(env: SimEnv) -> None:
    refused = httpx.AsyncHTTPTransport(retries=0)
    http = httpx.AsyncClient(base_url="http://127.0.0.1:9", transport=refused, auth=env.http().auth)
    env.opened.append(http)
    with pytest.raises(DingTalkTransient) as caught:
        await HttpxApprovalClient(http, pacer=env.pacer, clock=env.clock).create_instance(LEAVE)
    assert not isinstance(caught.value, DingTalkOutcomeUnknown)


async def test_create_refused_by_local_pacing_is_transient(env: SimEnv) -> None:
    client = env.client()
    await env.pacer.penalize("create", 60.0)
    with pytest.raises(DingTalkThrottled):
        await client.create_instance(LEAVE)
    assert env.sim.calls["workflow.create"] == 0


async def test_request_bodies_are_what_the_contract_says(env: SimEnv) -> None:
    seen: list[httpx.Request] = []
    inner = httpx.ASGITransport(app=env.sim.app)

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return await inner.handle_async_request(request)

    client = env.client(transport=Recording())
    await client.create_instance(LEAVE)
    token_request, create = seen
    assert json.loads(token_request.content) == {
        "appKey": "dingsimappkey0001",
        "appSecret": APP_SECRET,
    }
    assert create.headers["x-acs-dingtalk-access-token"] and "authorization" not in create.headers
    assert json.loads(create.content)["deptId"] == -1


async def _hammer(clients: list[HttpxApprovalClient], instance_id: str, each: int) -> int:
    """Concurrent reads from every client; returns how many DingTalk throttled."""
    calls = [c.get_instance(instance_id) for c in clients for _ in range(each)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    return sum(isinstance(r, DingTalkThrottled) for r in results)


async def test_two_clients_sharing_a_pacer_stay_under_the_limit(env: SimEnv) -> None:
    instance_id = await env.client().create_instance(LEAVE)
    assert await _hammer([env.client(), env.client()], instance_id, 40) == 0
    assert env.sim.calls["workflow.get"] == 80


async def test_logs_carry_an_action_and_never_a_secret(
    env: SimEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = env.client()
    instance_id = await client.create_instance(LEAVE)
    env.sim.tokens.expire_all()
    await client.get_instance(instance_id)
    env.sim.faults.update(qps_per_api=1)
    with pytest.raises(DingTalkThrottled):
        await client.get_instance(instance_id)
    ours = [r for r in caplog.records if r.name.startswith("syncd.dingtalk")]
    actions = {getattr(r, "action", None) for r in ours}
    assert {
        "token_refreshed",
        "token_rejected",
        "dingtalk_throttled",
        "dingtalk_call_failed",
    } <= actions
    assert None not in actions
    tokens = [t.value for t in env.sim.tokens._by_value.values()]
    for record in caplog.records:
        text = record.getMessage() + repr(vars(record))
        assert APP_SECRET not in text and not any(token in text for token in tokens)
