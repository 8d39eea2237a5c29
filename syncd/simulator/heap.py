"""Keeping the simulator's pauses short as its heap grows.

The simulator keeps every instance it created, so a long run holds millions of objects
that will never be garbage. Python's full collection walks all of them: at 100,000
instances that stops the process for seconds, and a DingTalk that stops for seconds puts
dips into the system under test. :func:`freeze_heap_every` moves what the process holds
into the collector's permanent generation every so many seconds, so that a full
collection walks only what came since. Cycles that die after being frozen are not
collected, which is why only a process that serves nothing but the simulator runs it.
"""

from __future__ import annotations

import asyncio
import gc

#: Seconds between freezes in ``syncd simulator serve`` (``--freeze-heap-every``).
DEFAULT_FREEZE_EVERY = 5.0


async def freeze_heap_every(seconds: float) -> None:
    """Freeze the heap now and every ``seconds`` until cancelled."""
    while True:
        gc.freeze()
        await asyncio.sleep(seconds)
