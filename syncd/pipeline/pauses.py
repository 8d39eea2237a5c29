"""Cluster-wide pauses of DingTalk work, shared by every replica through the database.

The monthly quota running out pauses every call until DingTalk's next month (China
time) or ``syncd resume``; broken credentials pause for a few minutes at a time, so a
rotated secret is picked up without a restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from syncd.domain import next_month_start
from syncd.ports import ControlStore

logger = logging.getLogger(__name__)

PAUSE = "dingtalk_pause"
AUTH_RETRY = timedelta(minutes=5)


@dataclass(frozen=True)
class Pause:
    reason: str
    until: datetime | None


class Pauses:
    def __init__(self, store: ControlStore) -> None:
        self.store = store

    async def active(self, now: datetime) -> Pause | None:
        row = await self.store.get(PAUSE, now)
        return Pause(row["reason"], row["until"]) if row else None

    async def quota_exhausted(self, now: datetime) -> Pause:
        until = next_month_start(now)
        await self.store.set(PAUSE, "quota", until, now)
        logger.error(
            "DingTalk monthly quota exhausted; calls paused",
            extra={"action": "quota_paused", "until": until.isoformat()},
        )
        return Pause("quota", until)

    async def auth_failed(self, now: datetime, message: str) -> Pause:
        until = now + AUTH_RETRY
        await self.store.set(PAUSE, "auth", until, now)
        logger.critical(
            "DingTalk refused the app's credentials; calls paused",
            extra={"action": "auth_paused", "until": until.isoformat(), "error": message},
        )
        return Pause("auth", until)

    async def resume(self) -> None:
        await self.store.clear(PAUSE)
        logger.info("DingTalk calls resumed", extra={"action": "quota_resumed"})
