"""The client over real loopback HTTP: timeouts after sending a create."""

from __future__ import annotations

import httpx
import pytest

from syncd.dingtalk.client import HttpxApprovalClient, build_http_client
from syncd.errors import DingTalkOutcomeUnknown, DingTalkTransient
from syncd.simulator import serve

from .conftest import APP_KEY, APP_SECRET, LEAVE, SimEnv


@pytest.mark.slow
async def test_read_timeout_after_sending_a_create_is_outcome_unknown(env: SimEnv) -> None:
    async with serve(env.sim) as server:
        http = build_http_client(
            APP_KEY, APP_SECRET, base_url=server.base_url, clock=env.clock, timeout=0.2
        )
        async with http:
            client = HttpxApprovalClient(http, pacer=env.pacer, clock=env.clock)
            await client.get_form_schema("PROC-SIM-LEAVE")  # token first, without latency
            env.sim.faults.update(
                latency={"mean_ms": 600}, endpoints=["workflow.create", "workflow.get"]
            )
            with pytest.raises(DingTalkOutcomeUnknown) as caught:
                await client.create_instance(LEAVE)
            assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
            with pytest.raises(DingTalkTransient) as read:
                await client.get_instance("any")
            assert not isinstance(read.value, DingTalkOutcomeUnknown)
    assert env.sim.calls["workflow.create"] == 1
