"""Group commit: one statement for what concurrent callers each ask of the store.

Submit records each create as its answer comes, ``concurrency`` at a time. A caller hands
its item to :class:`Together`: when no statement of the group is running, the item's
starts at once, alone; items that arrive while one runs wait for it and go together in
the next. Under load many items share one statement (one round trip, one commit); a
create record waits at most for the one before it, which it would have waited for
anyway on the month's usage row that both update. Each caller returns once its own item
is committed, with its own result. If a statement for several items fails, each is run
again alone, so that one item's failure is its own caller's. A caller cancelled while
its item waits does not take the item back: it is still recorded (an instance DingTalk
created is recorded whether or not anyone waits for it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Together(Generic[Item, Result]):
    """Runs items through ``run`` (one statement for a list of items; a result for each,
    in order), at most ``limit`` at once. Items with the same ``key`` (the same approval
    twice) never share a statement."""

    def __init__(
        self,
        run: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        key: Callable[[Item], Hashable],
        *,
        limit: int = 100,
    ) -> None:
        self._run = run
        self._key = key
        self._limit = limit
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._runner: asyncio.Task[None] | None = None
        #: Statements run, and items recorded by them (what the tests check).
        self.statements = 0
        self.items = 0

    async def __call__(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._runner is None:
            self._runner = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        try:
            while self._waiting:
                batch = self._take()
                await self._statement(batch)
        except BaseException:  # cancelled: no caller waits forever
            for _, future in batch + self._waiting:
                if not future.done():
                    future.cancel()
            self._waiting = []
            raise
        finally:
            self._runner = None

    def _take(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        """The waiting items for one statement: at most ``limit``, each key once."""
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        rest: list[tuple[Item, asyncio.Future[Result]]] = []
        keys: set[Hashable] = set()
        for entry in self._waiting:
            key = self._key(entry[0])
            if key in keys or len(batch) >= self._limit:
                rest.append(entry)
            else:
                keys.add(key)
                batch.append(entry)
        self._waiting = rest
        return batch

    async def _statement(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            self.statements += 1
            results = await self._run([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            for entry in batch:  # each alone: a failure stays its caller's
                await self._statement([entry])
            return
        self.items += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
