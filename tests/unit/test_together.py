"""``Together``: callers that overlap share one statement, and each still gets its own
result, or its own failure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from syncd.db.together import Together

#: An item: its number, its key (the approval), and whether its statement fails.
Item = tuple[int, int, bool]


@given(
    items=st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=1, max_size=40),
    wave=st.integers(1, 8),
    yields=st.integers(0, 3),
    limit=st.integers(1, 10),
)
def test_each_caller_gets_its_own_result_and_only_its_own_failure(
    items: list[tuple[int, bool]], wave: int, yields: int, limit: int
) -> None:
    batches: list[list[Item]] = []
    succeeded: list[int] = []

    async def run(batch: Sequence[Item]) -> list[str]:
        batches.append(list(batch))
        for _ in range(yields):  # the statement's round trip: other callers arrive
            await asyncio.sleep(0)
        poisoned = [n for n, _, poison in batch if poison]
        if poisoned:
            raise ValueError(f"item {poisoned[0]} refused")
        succeeded.extend(n for n, _, _ in batch)
        return [f"recorded {n}" for n, _, _ in batch]

    async def scenario() -> list[str | BaseException]:
        together: Together[Item, str] = Together(run, key=lambda item: item[1], limit=limit)
        callers = []
        for n, (key, poison) in enumerate(items):
            callers.append(asyncio.create_task(together((n, key, poison))))
            if n % wave == wave - 1:  # the next callers come a little later
                await asyncio.sleep(0)
        results = await asyncio.gather(*callers, return_exceptions=True)
        assert together.items == len(succeeded) and together.statements == len(batches)
        return results

    results = asyncio.run(scenario())
    for n, ((_, poison), result) in enumerate(zip(items, results, strict=True)):
        if poison:
            assert isinstance(result, ValueError) and str(result) == f"item {n} refused"
        else:
            assert result == f"recorded {n}"
    assert sorted(succeeded) == [n for n, (_, poison) in enumerate(items) if not poison]
    for batch in batches:
        assert 1 <= len(batch) <= limit
        assert len({key for _, key, _ in batch}) == len(batch)  # one approval once


def test_callers_that_overlap_share_a_statement() -> None:
    async def scenario() -> tuple[list[int], int]:
        sizes: list[int] = []
        arrived = asyncio.Event()

        async def run(batch: Sequence[int]) -> list[int]:
            sizes.append(len(batch))
            if len(sizes) == 1:
                await arrived.wait()  # the first statement runs while the others arrive
            return [n * 10 for n in batch]

        together: Together[int, int] = Together(run, key=lambda n: n)
        first = asyncio.create_task(together(0))
        await asyncio.sleep(0)  # the first caller's statement starts
        rest = [asyncio.create_task(together(n)) for n in range(1, 6)]
        await asyncio.sleep(0)
        arrived.set()
        results = await asyncio.gather(first, *rest)
        return sizes, sum(results)

    assert asyncio.run(scenario()) == ([1, 5], 150)


def test_a_cancelled_group_leaves_no_caller_waiting() -> None:
    async def scenario() -> list[bool]:
        started = asyncio.Event()

        async def run(batch: Sequence[int]) -> list[int]:
            started.set()
            await asyncio.Event().wait()  # never answers
            return list(batch)

        together: Together[int, int] = Together(run, key=lambda n: n)
        callers = [asyncio.create_task(together(n)) for n in range(3)]
        await started.wait()
        runner = together._runner
        assert runner is not None
        runner.cancel()
        done = await asyncio.gather(*callers, return_exceptions=True)
        return [isinstance(d, asyncio.CancelledError) for d in done]

    assert asyncio.run(scenario()) == [True, True, True]
