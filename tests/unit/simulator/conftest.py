"""Fixtures: a simulator on a fake clock, reached in-process through httpx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from syncd.simulator import Simulator, World
from syncd.testing import FakeClock

APP_KEY = "dingsimappkey0001"
APP_SECRET = "sim-app-secret-0001"


def expense_form(amount: str = "500", **extra: str) -> list[dict[str, str]]:
    values = {"金额（元）": amount, "费用类型": "差旅", "发生日期": "2026-01-02", **extra}
    return [{"name": k, "value": v} for k, v in values.items()]


def leave_form(days: str = "2") -> list[dict[str, str]]:
    return [
        {"name": "请假类型", "value": "年假"},
        {
            "name": json.dumps(["开始时间", "结束时间"], ensure_ascii=False),
            "value": json.dumps(["2026-01-06", "2026-01-07"]),
        },
        {"name": "天数", "value": days},
    ]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world() -> World:
    return World.default()


@pytest.fixture
def sim(world: World, clock: FakeClock) -> Simulator:
    return Simulator(world, clock=clock)


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.dingtalk.com") as c:
        yield c
    await sim.aclose()


@pytest.fixture
async def token(client: httpx.AsyncClient) -> str:
    r = await client.post(
        "/v1.0/oauth2/accessToken", json={"appKey": APP_KEY, "appSecret": APP_SECRET}
    )
    assert r.status_code == 200
    return str(r.json()["accessToken"])


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return {"x-acs-dingtalk-access-token": token}


class Api:
    """Small helpers for the calls most tests make."""

    expense_form = staticmethod(expense_form)
    leave_form = staticmethod(leave_form)

    def __init__(self, client: httpx.AsyncClient, auth: dict[str, str]) -> None:
        self.client = client
        self.auth = auth

    async def create(self, **overrides: Any) -> httpx.Response:
        body: dict[str, Any] = {
            "processCode": "PROC-SIM-EXPENSE",
            "originatorUserId": "u1",
            "deptId": -1,
            "formComponentValues": expense_form(),
        }
        body.update(overrides)
        return await self.client.post(
            "/v1.0/workflow/processInstances", json=body, headers=self.auth
        )

    async def create_id(self, **overrides: Any) -> str:
        r = await self.create(**overrides)
        assert r.status_code == 200, r.text
        return str(r.json()["instanceId"])

    async def get(self, instance_id: str) -> httpx.Response:
        return await self.client.get(
            "/v1.0/workflow/processInstances",
            params={"processInstanceId": instance_id},
            headers=self.auth,
        )

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.auth)

    @staticmethod
    def error(r: httpx.Response, status: int, code: str) -> None:
        """Assert a new-API error envelope: exactly code, message, requestid."""
        assert r.status_code == status, r.text
        body = r.json()
        assert set(body) == {"code", "message", "requestid"}
        assert body["code"] == code, body


@pytest.fixture
def api(client: httpx.AsyncClient, auth: dict[str, str]) -> Api:
    return Api(client, auth)
