"""The directory's parts, as the :class:`~syncd.app.App` builds them.

The directory's stores, the full sync and, while the directory is enabled, its schedule,
around the App's contact client (on the old API host, with the app's token auth, paced by
the same pacer as every call and counted by the same metrics; look-ups at submit use it
too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from syncd.db.directory_sync_store import PostgresDirectorySyncStore
from syncd.dingtalk.contacts import HttpxContactClient
from syncd.metrics import Metrics
from syncd.pipeline.directory_schedule import DirectorySchedule
from syncd.pipeline.directory_sync import DirectorySync
from syncd.pipeline.retry import RetryPolicy
from syncd.ports import Clock
from syncd.settings import Settings


@dataclass
class DirectoryParts:
    contacts: HttpxContactClient
    syncs: PostgresDirectorySyncStore
    sync: DirectorySync
    schedule: DirectorySchedule | None

    @classmethod
    def build(
        cls,
        settings: Settings,
        pool: AsyncConnectionPool[Any],
        contacts: HttpxContactClient,
        clock: Clock,
        retry: RetryPolicy,
        *,
        owner: str,
        lease: timedelta,
        metrics: Metrics,
    ) -> DirectoryParts:
        ds = settings.directory
        syncs = PostgresDirectorySyncStore(pool, actor=owner)
        sync = DirectorySync(
            contacts,
            syncs,
            clock,
            retry,
            owner=owner,
            lease=lease,
            page_size=ds.page_size,
            observer=metrics,
        )
        schedule = None
        if settings.directory_enabled:
            schedule = DirectorySchedule(
                sync,
                syncs,
                clock,
                resync_interval=timedelta(seconds=ds.resync_interval),
                forget_after=timedelta(seconds=ds.forget_departed_after),
            )
        return cls(contacts, syncs, sync, schedule)

    async def aclose(self) -> None:
        if self.schedule is not None:
            await self.schedule.stop()
