"""The callback endpoint against real crypto and a real inbox (contract §9)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from syncd.db.inbox import PostgresInbox
from syncd.dingtalk.callback import DEFAULT_PATH, CallbackEndpoint, create_callback_app
from syncd.dingtalk.crypto import CallbackCrypto
from syncd.dingtalk.events import InboundEvent
from syncd.errors import StoreError
from syncd.ports import CallbackInbox, SignedPut
from syncd.testing import FakeClock

from .conftest import APP_KEY, LEAVE, SimEnv

TOKEN, AES_KEY, OWNER = (
    "simtoken123",
    "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "dingsimappkey0001",
)
NOW_MS = 1700000600123


def _clock(ms: int = NOW_MS) -> FakeClock:
    return FakeClock(datetime.fromtimestamp(ms / 1000, UTC))


@pytest.fixture
async def http(inbox: PostgresInbox) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(
        CallbackEndpoint(CallbackCrypto(TOKEN, AES_KEY, OWNER), inbox, clock=_clock())
    ) as client:
        yield client


def _client(endpoint: CallbackEndpoint) -> httpx.AsyncClient:
    app = create_callback_app(endpoint)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://syncd")


def _push(
    msg: dict[str, Any],
    *,
    nonce: str = "nonce123",
    timestamp: int = NOW_MS,
    owner: str = OWNER,
    param: str = "msg_signature",
) -> tuple[dict[str, str], dict[str, str]]:
    crypto = CallbackCrypto(TOKEN, AES_KEY, owner)
    encrypt = crypto.encrypt(json.dumps(msg))
    query = {param: crypto.sign(str(timestamp), nonce, encrypt), "timestamp": str(timestamp)}
    return {**query, "nonce": nonce}, {"encrypt": encrypt}


async def _post(
    http: httpx.AsyncClient, query: dict[str, str], body: dict[str, str]
) -> httpx.Response:
    return await http.post(DEFAULT_PATH, params=query, json=body)


def _assert_success_reply(response: httpx.Response, crypto: CallbackCrypto) -> None:
    assert response.status_code == 200, response.text
    reply = response.json()
    assert set(reply) == {"msg_signature", "timeStamp", "nonce", "encrypt"}
    assert crypto.verify(
        reply["msg_signature"], reply["timeStamp"], reply["nonce"], reply["encrypt"]
    )
    assert crypto.decrypt(reply["encrypt"]) == "success"


INSTANCE_FINISH: dict[str, Any] = {
    "EventType": "bpms_instance_change",
    "processInstanceId": "pi-0001",
    "corpId": "dingcorp0001",
    "type": "finish",
    "result": "agree",
    "title": "t",
    "processCode": "PROC-SIM-1",
    "staffId": "u1",
    "createTime": 1700000000000,
    "finishTime": 1700000600000,
}

# --- the four vectors of contract §9.6 -----------------------------------------------------


async def test_vector_1_suite_check_is_answered_and_not_stored(
    inbox_rows: Any,
    pool: AsyncConnectionPool[Any],
) -> None:
    crypto = CallbackCrypto(
        "123456", "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij", "suite4xxxxxxxxxxxxxxx"
    )
    query = {
        "signature": "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0",
        "timestamp": "1445827045067",
        "nonce": "nEXhMP4r",
    }
    encrypt = (
        "1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUB"
        "mfxjZ8Ej23JVYa9VrYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSB"
        "dHlegK+AGGanfwjXuQ9+0pZcy0w9lQ=="
    )
    endpoint = CallbackEndpoint(crypto, PostgresInbox(pool), clock=_clock(1445827045067))
    async with _client(endpoint) as http:
        response = await _post(http, query, {"encrypt": encrypt})
    _assert_success_reply(response, crypto)
    assert await inbox_rows() == []


async def test_vector_2_a_success_reply_is_not_an_event(
    inbox_rows: Any, pool: AsyncConnectionPool[Any]
) -> None:
    crypto = CallbackCrypto(
        "123456", "1234567890123456789012345678901234567890123", "dingsnotzck6pm5veliw"
    )
    query = {
        "msg_signature": "9a95a004dd16f5c307e849b994173f76aa26e5eb",
        "timestamp": "1614767836",
        "nonce": "A7Co0cJLMzIDtMMI",
    }
    encrypt = (
        "YvkvaGe4hQxd3VxRmEty0dVlnCOAqwf56xwTRHDHoOURqhalbmBJQk5FNcRk42Gl5T0YQXZNwpwWSm1xAFJ5ZA=="
    )
    endpoint = CallbackEndpoint(crypto, PostgresInbox(pool), clock=_clock(1614767836000))
    async with _client(endpoint) as http:
        response = await _post(http, query, {"encrypt": encrypt})
    assert response.status_code == 400  # signed and decrypted, but "success" is no event
    assert await inbox_rows() == []


async def test_vector_3_check_url(inbox_rows: Any, pool: AsyncConnectionPool[Any]) -> None:
    crypto = CallbackCrypto(
        "mryue", "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7", "ding6ccabc44d2c8d38b"
    )
    query = {
        "msg_signature": "03044561471240d4a14bb09372dfcfd4fd0e40cb",
        "timestamp": "1608001896814",
        "nonce": "WL4PK6yA",
    }
    encrypt = (
        "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxO"
        "K+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3"
    )
    endpoint = CallbackEndpoint(crypto, PostgresInbox(pool), clock=_clock(1608001896814))
    async with _client(endpoint) as http:
        response = await _post(http, query, {"encrypt": encrypt})
    _assert_success_reply(response, crypto)
    assert await inbox_rows() == []


VECTOR_4 = (
    "Q3stYC6hdFzMh9T8HCvyDNensY5gUbNjsrQp9w/zCnOPFTf4z+yOAoGBwldMWUMCipKvVmMesJermNd7B1WkDNZwE+A9"
    "tM/u+E8S5I28nwmhrB5wyPELHnqWOMuj6ljibhixFGV092QlKf10ACliqoUMhz9vOX/Ej/UFbuQwmEL660v59zuPEHsF"
    "WEP3IcJsnUV5k+kbfI+3VPcVBdLUT1teQl4cad7QYs/phiAvA1zA5o34ai/1FeSFY8e/UN1XlPyOSRnniMhLME7KORsq"
    "ZczwE40pOxh6kRuK3frqa1B9DIqGt+hLQMUDnfAfagSi3B9wJYXQoQe9e1BvNV9p1kSAUoTQLavxLvnx9RvwzSFUil5C"
    "hj4JR7TZGMZyNCMH"
)
VECTOR_4_QUERY = {
    "signature": "34a315dd989d30e06d47a4c44e18f3aeba857896",
    "msg_signature": "34a315dd989d30e06d47a4c44e18f3aeba857896",
    "timestamp": "1700000600123",
    "nonce": "nonce123",
}


async def test_vector_4_event_is_committed_then_answered(
    inbox_rows: Any, http: httpx.AsyncClient, pool: AsyncConnectionPool[Any]
) -> None:
    response = await _post(http, VECTOR_4_QUERY, {"encrypt": VECTOR_4})
    _assert_success_reply(response, CallbackCrypto(TOKEN, AES_KEY, OWNER))
    [row] = await inbox_rows()
    assert row["channel"] == "callback" and row["event_type"] == "bpms_instance_change"
    assert row["instance_id"] == "pi-0001" and row["payload"] == INSTANCE_FINISH
    assert row["dedup_key"].startswith("bpms_instance_change:h:")


# --- forged pushes: rejected, nothing written ------------------------------------------------


def _forgeries() -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    good_query, good_body = _push(INSTANCE_FINISH)
    flipped = (
        good_body["encrypt"][:10]
        + ("A" if good_body["encrypt"][10] != "A" else "B")
        + good_body["encrypt"][11:]
    )
    crypto = CallbackCrypto(TOKEN, AES_KEY, OWNER)
    resigned = {
        **good_query,
        "msg_signature": crypto.sign(good_query["timestamp"], good_query["nonce"], flipped),
    }
    return {
        "bad signature": ({**good_query, "msg_signature": "0" * 40}, good_body),
        "wrong owner key": _push(INSTANCE_FINISH, owner="dingsomeoneelse"),
        "tampered ciphertext": (good_query, {"encrypt": flipped}),
        "tampered and re-signed": (resigned, {"encrypt": flipped}),
        "old timestamp": _push(INSTANCE_FINISH, timestamp=NOW_MS - 301_000),
        "future timestamp": _push(INSTANCE_FINISH, timestamp=NOW_MS + 301_000),
        "missing nonce": ({k: v for k, v in good_query.items() if k != "nonce"}, good_body),
        "not json": (good_query, {"encrypt": ""}),
    }


@pytest.mark.parametrize("case", list(_forgeries()))
async def test_forged_push_is_rejected_and_nothing_written(
    inbox_rows: Any, case: str, http: httpx.AsyncClient, pool: AsyncConnectionPool[Any]
) -> None:
    query, body = _forgeries()[case]
    response = await _post(http, query, body)
    assert response.status_code in {400, 403}
    assert response.content == b""
    assert await inbox_rows() == []


async def test_replay_is_rejected(
    inbox_rows: Any, http: httpx.AsyncClient, pool: AsyncConnectionPool[Any]
) -> None:
    query, body = _push(INSTANCE_FINISH)
    assert (await _post(http, query, body)).status_code == 200
    assert (await _post(http, query, body)).status_code == 403
    assert len(await inbox_rows()) == 1


async def test_signature_param_alone_and_seconds_timestamp(
    inbox_rows: Any, http: httpx.AsyncClient, pool: AsyncConnectionPool[Any]
) -> None:
    query, body = _push(INSTANCE_FINISH, param="signature", timestamp=NOW_MS // 1000)
    response = await _post(http, query, body)
    _assert_success_reply(response, CallbackCrypto(TOKEN, AES_KEY, OWNER))
    assert len(await inbox_rows()) == 1


async def test_duplicated_and_reordered_events_are_stored_once_each(
    inbox_rows: Any, http: httpx.AsyncClient, pool: AsyncConnectionPool[Any]
) -> None:
    task: dict[str, Any] = {
        "EventType": "bpms_task_change",
        "processInstanceId": "pi-0001",
        "type": "finish",
        "result": "agree",
        "taskId": 7,
        "staffId": "u2",
        "finishTime": 1700000590000,
    }
    start = {
        "EventType": "bpms_instance_change",
        "eventId": "e-start",
        "processInstanceId": "pi-0001",
        "type": "start",
    }
    # the instance finish arrives first, the retried task event and start after, each twice
    for n, msg in enumerate([INSTANCE_FINISH, task, start, task, INSTANCE_FINISH, start]):
        response = await _post(http, *_push(msg, nonce=f"n{n}"))
        assert response.status_code == 200
    rows = await inbox_rows()
    assert [r["event_type"] for r in rows] == [
        "bpms_instance_change",
        "bpms_task_change",
        "bpms_instance_change",
    ]
    assert rows[2]["dedup_key"] == "bpms_instance_change:e-start"


class _BrokenInbox:
    async def put_signed(self, signature: str, expires_at: datetime, event: object) -> SignedPut:
        raise StoreError("database down")

    async def forget_signatures(self, now: datetime) -> int:
        raise StoreError("database down")


async def test_storage_failure_answers_503_so_dingtalk_retries() -> None:
    endpoint = CallbackEndpoint(
        CallbackCrypto(TOKEN, AES_KEY, OWNER), _BrokenInbox(), clock=_clock()
    )
    async with _client(endpoint) as http:
        query, body = _push(INSTANCE_FINISH)
        assert (await _post(http, query, body)).status_code == 503
        assert endpoint.accepted == 0


# --- pushed by the simulator ---------------------------------------------------------------


@pytest.fixture
async def pushed_to(env: SimEnv) -> AsyncIterator[Callable[[CallbackInbox], CallbackEndpoint]]:
    """Points the simulator's callback pusher at our endpoint (in-process)."""
    opened: list[httpx.AsyncClient] = []

    def attach(inbox: CallbackInbox) -> CallbackEndpoint:
        endpoint = CallbackEndpoint(CallbackCrypto(TOKEN, AES_KEY, APP_KEY), inbox, clock=env.clock)
        client = _client(endpoint)
        opened.append(client)
        env.sim.callbacks.set_client(client)
        env.sim.callbacks.set_url(APP_KEY, f"http://syncd{DEFAULT_PATH}")
        return endpoint

    yield attach
    for client in opened:
        await client.aclose()


def _http_acks(env: SimEnv) -> list[dict[str, Any]]:
    return [e for e in env.sim.events_acknowledged if e["transport"] == "http"]


async def test_simulator_pushes_duplicated_and_reordered_events_stored_once(
    env: SimEnv, pushed_to: Any, inbox: PostgresInbox, inbox_rows: Any
) -> None:
    endpoint = pushed_to(inbox)
    env.sim.faults.update(event_duplicate_rate=1.0, event_reorder_rate=1.0)
    instance_id = await env.client().create_instance(LEAVE)
    env.sim.approve(instance_id)
    env.sim.refuse(instance_id)
    await env.sim.advance(env.sim.faults.settings.reorder_delay)
    assert len(_http_acks(env)) == 2 * len(env.sim.events) == endpoint.accepted
    rows = await inbox_rows()
    assert {r["dedup_key"] for r in rows} == {
        f"{e.event_type}:{e.event_id}" for e in env.sim.events
    }
    assert {r["channel"] for r in rows} == {"callback"}


class _FailingOnce:
    def __init__(self, inner: CallbackInbox) -> None:
        self.inner, self.failed = inner, False

    async def put_signed(
        self, signature: str, expires_at: datetime, event: InboundEvent | None
    ) -> SignedPut:
        if not self.failed:
            self.failed = True
            raise StoreError("database restarting")
        return await self.inner.put_signed(signature, expires_at, event)

    async def forget_signatures(self, now: datetime) -> int:
        return await self.inner.forget_signatures(now)


async def test_storage_failure_is_retried_by_dingtalk_and_then_stored(
    env: SimEnv, pushed_to: Any, inbox: PostgresInbox, inbox_rows: Any
) -> None:
    pushed_to(_FailingOnce(inbox))
    await env.client().create_instance(LEAVE)
    await env.sim.advance(0)
    assert len(await inbox_rows()) == 1  # the first of two events failed
    await env.sim.advance(env.sim.world.callbacks.retry_delays[0])
    assert len(await inbox_rows()) == 2 and len(_http_acks(env)) == 2
