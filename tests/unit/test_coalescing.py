"""Coalescer: requests made together share one group call, yet each gets its own answer or
error; a stuck group does not hold later requests back; a caller that gives up does not
disturb the others."""

from __future__ import annotations

import asyncio

import pytest

from pairwise.coalescing import Coalescer


class Recorder:
    """A group runner that doubles numbers, fails negative ones alone, fails the whole group
    on 13, and blocks on 99 until released."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.release = asyncio.Event()
        self.blocked = asyncio.Event()  # a group holding 99 is running

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.groups.append(items)
        await asyncio.sleep(0)
        if 13 in items:
            raise RuntimeError("group failed")
        if 99 in items:
            self.blocked.set()
            await self.release.wait()
        return [ValueError(f"negative {i}") if i < 0 else 2 * i for i in items]


def test_requests_made_together_share_a_group_and_keep_their_own_answers() -> None:
    async def main() -> None:
        runner = Recorder()
        coalescer = Coalescer(runner, max_group=100, max_in_flight=1)
        results = await asyncio.gather(*(coalescer.submit(i) for i in (1, -2, 3)),
                                       return_exceptions=True)
        assert results[0] == 2 and results[2] == 6
        assert isinstance(results[1], ValueError) and str(results[1]) == "negative -2"
        assert runner.groups == [[1, -2, 3]]
        failed = await asyncio.gather(coalescer.submit(13), coalescer.submit(4),
                                      return_exceptions=True)
        assert [str(e) for e in failed] == ["group failed", "group failed"]
    asyncio.run(main())


def test_requests_wait_for_a_free_slot_and_then_go_together() -> None:
    async def main() -> None:
        runner = Recorder()
        coalescer = Coalescer(runner, max_group=2, max_in_flight=1, slow_after_s=60)
        first = asyncio.ensure_future(coalescer.submit(99))
        await runner.blocked.wait()
        later = [asyncio.ensure_future(coalescer.submit(i)) for i in (5, 6, 7)]
        await asyncio.sleep(0)  # one loop turn: each new task queues its item at once
        assert runner.groups == [[99]]  # the slot is taken: the others wait
        runner.release.set()
        assert await first == 198
        assert [await f for f in later] == [10, 12, 14]
        assert runner.groups[1:] == [[5, 6], [7]]  # at most max_group per call
    asyncio.run(main())


def test_a_stuck_group_stops_holding_its_slot_after_slow_after_s() -> None:
    async def main() -> None:
        runner = Recorder()
        coalescer = Coalescer(runner, max_group=10, max_in_flight=1, slow_after_s=0.05)
        stuck = asyncio.ensure_future(coalescer.submit(99))
        await runner.blocked.wait()
        assert await asyncio.wait_for(coalescer.submit(8), timeout=5) == 16
        assert not stuck.done()
        runner.release.set()
        assert await stuck == 198
    asyncio.run(main())


def test_a_caller_that_gives_up_leaves_the_others_answered() -> None:
    async def main() -> None:
        runner = Recorder()
        coalescer = Coalescer(runner, max_group=10, max_in_flight=1, slow_after_s=60)
        blocker = asyncio.ensure_future(coalescer.submit(99))
        await runner.blocked.wait()
        impatient = asyncio.ensure_future(coalescer.submit(1))
        patient = asyncio.ensure_future(coalescer.submit(2))
        await asyncio.sleep(0)  # one loop turn: both have queued their items
        impatient.cancel()
        runner.release.set()
        assert await blocker == 198 and await patient == 4
        with pytest.raises(asyncio.CancelledError):
            await impatient
        assert runner.groups == [[99], [2]]  # a cancelled request is not sent
    asyncio.run(main())
