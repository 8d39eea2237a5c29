"""The exception tree of syncd.

Branches are chosen by what the caller must do next, not by where the error came from.
Library exceptions (psycopg, httpx, websockets) are mapped to these at the adapter that
called the library, with ``raise ... from exc``; nothing deeper ever sees them.

::

    SyncdError                          root; the docstring is the default message
    ├── ConfigError                     bad settings or usage → exit code 2 at start
    ├── CaptureError                    a capture trigger cannot be installed → exit code 2
    ├── MigrationError                  a migration failed or the schema is unknown
    ├── StoreError                      the database failed (cause chained) → retry later
    │   └── ClaimLost                   our lease expired; drop the item, write nothing
    └── DingTalkError                   has .code, .message, .request_id, .http_status
        ├── DingTalkTransient           network, 5xx, busy → retry with backoff
        │   ├── DingTalkThrottled       QPS limit → wait .retry_after seconds, then retry
        │   └── DingTalkNotSent         a create too late for its lease was kept back → retry
        ├── DingTalkOutcomeUnknown      a create may have reached DingTalk → reconcile first
        ├── DingTalkQuotaExhausted      monthly quota used up → pause calls, alert
        ├── DingTalkAuthError           bad app key/secret, no permission → stop, alert
        └── DingTalkRejected            the request itself is wrong → park it with the code
"""

from __future__ import annotations


class SyncdError(Exception):
    """syncd failed."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        super().__init__(self.message)


class ConfigError(SyncdError):
    """The configuration is invalid."""


class CaptureError(SyncdError):
    """The capture trigger cannot be installed."""


class MigrationError(SyncdError):
    """A migration failed."""


class StoreError(SyncdError):
    """The database operation failed."""


class ClaimLost(StoreError):
    """The lease on this item expired and another worker owns it now."""


class WriteBackError(StoreError):
    """A business target refused an outcome (no such row, a failed statement or
    procedure): the message names the target and says why."""


class DingTalkError(SyncdError):
    """DingTalk answered with an error."""

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str = "",
        request_id: str = "",
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id
        self.http_status = http_status

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"code={self.code}")
        if self.http_status is not None:
            parts.append(f"http={self.http_status}")
        if self.request_id:
            parts.append(f"requestid={self.request_id}")
        return " ".join(parts)


class DingTalkTransient(DingTalkError):
    """DingTalk is unreachable or failing for now; retry later."""


class DingTalkThrottled(DingTalkTransient):
    """DingTalk throttled the call; wait, then retry."""

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float = 1.0,
        code: str = "",
        request_id: str = "",
        http_status: int | None = None,
    ) -> None:
        super().__init__(message, code=code, request_id=request_id, http_status=http_status)
        self.retry_after = retry_after


class DingTalkNotSent(DingTalkTransient):
    """The create was not sent: its lease would end before DingTalk's answer could."""


class DingTalkOutcomeUnknown(DingTalkError):
    """The create request may have reached DingTalk; reconcile before retrying."""


class DingTalkQuotaExhausted(DingTalkError):
    """The monthly DingTalk call quota is exhausted; calls are paused."""


class DingTalkAuthError(DingTalkError):
    """DingTalk refused the app's credentials or permissions; fix them and restart."""


class DingTalkRejected(DingTalkError):
    """DingTalk rejected the request itself; it will not succeed if retried."""
