"""HTTP callback push (contract §9): encrypted, signed, retried at +10 s and +30 s.

After the last retry fails the event goes to the app's failed-push list, served by
``GET /call_back/get_call_back_failed_result`` and drained as it is read.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import httpx

from syncd.dingtalk.crypto import CallbackCrypto, CallbackCryptoError, random_nonce
from syncd.simulator.events import Event, failed_item, http_envelope
from syncd.simulator.state import ms
from syncd.simulator.world import App

if TYPE_CHECKING:
    from syncd.simulator.core import Simulator

logger = logging.getLogger(__name__)


def _crypto(app: App) -> CallbackCrypto:
    return CallbackCrypto(app.callback_token, app.callback_aes_key, app.app_key)


def reply_ok(crypto: CallbackCrypto, response: httpx.Response) -> bool:
    """Whether the push was answered with an encrypted, signed ``success`` (§9.4)."""
    if response.status_code != 200:
        return False
    try:
        body = response.json()
        fields = [str(body[k]) for k in ("msg_signature", "timeStamp", "nonce", "encrypt")]
        return crypto.decrypt_verified(*fields) == "success"
    except (ValueError, KeyError, TypeError, CallbackCryptoError):
        return False


class CallbackPusher:
    """Pushes events to each app's callback URL; the HTTP client is injectable."""

    def __init__(self, sim: Simulator, client: httpx.AsyncClient | None = None) -> None:
        self._sim = sim
        self._client = client
        self._own_client = client is None
        self._urls: dict[str, str | None] = {a.app_key: a.callback_url for a in sim.world.apps}
        self.failed: dict[str, list[dict[str, Any]]] = {}

    def url(self, app_key: str) -> str | None:
        return self._urls.get(app_key)

    def set_url(self, app_key: str, url: str | None) -> None:
        self._urls[app_key] = url or None

    def set_client(self, client: httpx.AsyncClient) -> None:
        self._client, self._own_client = client, False

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient()
        return self._client

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def _request(self, app: App, event: Event) -> tuple[CallbackCrypto, dict[str, str], str]:
        crypto = _crypto(app)
        body = json.dumps(http_envelope(event), ensure_ascii=False, separators=(",", ":"))
        encrypted = crypto.encrypt(body)
        timestamp, nonce = str(ms(self._sim.clock.now())), random_nonce(8)
        signature = crypto.sign(timestamp, nonce, encrypted)
        params = {
            "signature": signature,
            "msg_signature": signature,
            "timestamp": timestamp,
            "nonce": nonce,
        }
        return crypto, params, encrypted

    async def _send(self, app: App, url: str, event: Event) -> bool:
        crypto, params, encrypted = self._request(app, event)
        try:
            response = await self._http().post(
                url,
                params=params,
                json={"encrypt": encrypted},
                timeout=self._sim.world.callbacks.timeout,
            )
        except httpx.HTTPError as exc:
            logger.info("callback push failed: %s", exc, extra={"action": "sim_callback_error"})
            return False
        return reply_ok(crypto, response)

    async def push(self, app: App, event: Event, attempt: int = 0) -> None:
        """Push once; on failure schedule the next retry or park the event as failed."""
        url = self.url(app.app_key)
        if url is None:
            return
        ok = await self._send(app, url, event)
        log = self._sim.log
        log.record("pushed", event, "http", app.app_key, attempt=attempt, ok=ok)
        if ok:
            log.record("acknowledged", event, "http", app.app_key, attempt=attempt)
            return
        delays = self._sim.world.callbacks.retry_delays
        if attempt < len(delays):

            async def retry() -> None:
                await self.push(app, event, attempt + 1)

            self._sim.timeline.at(self._sim.scaled(delays[attempt]), "callback retry", retry)
            return
        self.failed.setdefault(app.app_key, []).append(failed_item(event))
        log.record("failed", event, "http", app.app_key, attempt=attempt)

    def take_failed(self, app_key: str, limit: int = 200) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` failed events, removed from the list; and whether more remain."""
        items = self.failed.get(app_key, [])
        taken, rest = items[:limit], items[limit:]
        self.failed[app_key] = rest
        return taken, bool(rest)
