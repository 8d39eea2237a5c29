"""HTTP callback push (contract §9): encrypted, signed, retried at +10 s and +30 s.

After the last retry fails the event goes to the app's failed-push list, served by
``GET /call_back/get_call_back_failed_result`` and drained as it is read. Registering a
URL (:meth:`CallbackPusher.register`) first proves it with DingTalk's ``check_url`` push.
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


#: What a refused push most likely means, by the receiver's HTTP status.
_STATUS_HINTS = {
    400: "the receiver could not read the push",
    403: "the receiver refused it: its token, aes_key or owner key differ from this"
    " app's callback_token, callback_aes_key and app_key",
    404: "nothing is served at this path (syncd serves [events.callback] path,"
    " /dingtalk/callback by default, once enabled = true)",
}


def reply_problem(crypto: CallbackCrypto, response: httpx.Response) -> str | None:
    """Why a reply is not the encrypted, signed ``success`` (§9.4); None when it is."""
    if response.status_code != 200:
        hint = _STATUS_HINTS.get(response.status_code)
        return f"HTTP {response.status_code}" + (f": {hint}" if hint else ", not 200")
    try:
        body = response.json()
        fields = [str(body[k]) for k in ("msg_signature", "timeStamp", "nonce", "encrypt")]
    except (ValueError, KeyError, TypeError):
        return "a body that is not JSON with msg_signature, timeStamp, nonce and encrypt"
    try:
        plain = crypto.decrypt_verified(*fields)
    except CallbackCryptoError as exc:
        return (
            f"a reply that does not verify or decrypt ({exc}): the receiver's token,"
            " aes_key or owner key differ from this app's"
        )
    if plain != "success":
        return f"a reply that decrypts to {plain[:40]!r}, not 'success'"
    return None


def reply_ok(crypto: CallbackCrypto, response: httpx.Response) -> bool:
    """Whether the push was answered with an encrypted, signed ``success`` (§9.4)."""
    return reply_problem(crypto, response) is None


def shown(url: str) -> str:
    """A URL for messages: without user info and query, which may hold secrets."""
    try:
        parsed = httpx.URL(url)
        return str(parsed.copy_with(username=None, password=None, query=None, fragment=None))
    except (httpx.InvalidURL, TypeError):
        return "(an invalid URL)"


def _is_http(url: str) -> bool:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


class CallbackCheckError(Exception):
    """A callback URL failed the ``check_url`` verification (§9.5): not registered.

    ``reason`` is ``invalid``, ``unreachable``, ``timeout`` or ``reply``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


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
        """Point the app's pushes at ``url`` (None: stop) without checking it: the world
        file's URL, or a test's receiver. :meth:`register` checks first."""
        self._urls[app_key] = url or None

    async def register(self, app_key: str, url: str | None) -> None:
        """Save the app's callback URL as DingTalk does (§9.1, §9.5): a ``check_url``
        push must be answered with the encrypted ``success``, else
        :class:`CallbackCheckError` and the URL in use stays. None stops HTTP push."""
        app = self._sim.app_for(app_key)
        if app is None:
            raise KeyError(app_key)
        if url:
            await self.check(app, url)
        self.set_url(app_key, url)

    async def check(self, app: App, url: str) -> None:
        """Push an encrypted ``{"EventType":"check_url"}`` to ``url`` (ownerKey = app key)
        and raise :class:`CallbackCheckError` unless it answers ``success`` in time."""
        where = shown(url)
        if not _is_http(url):
            raise CallbackCheckError("invalid", f"{where} is not an http:// or https:// URL")
        crypto = _crypto(app)
        params, encrypted = self._signed(crypto, {"EventType": "check_url"})
        timeout = self._sim.world.callbacks.check_timeout
        try:
            response = await self._http().post(
                url, params=params, json={"encrypt": encrypted}, timeout=timeout
            )
        except httpx.TimeoutException:
            raise CallbackCheckError(
                "timeout", f"{where} did not answer the check_url push within {timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise CallbackCheckError(
                "unreachable", f"cannot reach {where}: {type(exc).__name__}: {exc}"
            ) from None
        problem = reply_problem(crypto, response)
        if problem is not None:
            raise CallbackCheckError("reply", f"{where} answered the check_url push with {problem}")

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

    def _signed(
        self, crypto: CallbackCrypto, message: dict[str, Any]
    ) -> tuple[dict[str, str], str]:
        """The query parameters and ``encrypt`` of a push of ``message`` (§9.2)."""
        body = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        encrypted = crypto.encrypt(body)
        timestamp, nonce = str(ms(self._sim.clock.now())), random_nonce(8)
        signature = crypto.sign(timestamp, nonce, encrypted)
        params = {
            "signature": signature,
            "msg_signature": signature,
            "timestamp": timestamp,
            "nonce": nonce,
        }
        return params, encrypted

    async def _send(self, app: App, url: str, event: Event) -> bool:
        crypto = _crypto(app)
        params, encrypted = self._signed(crypto, http_envelope(event))
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
