"""Closing a cause ends every one of its tasks, even one that lost its cancel."""

from __future__ import annotations

import asyncio

from ranker.cause_tasks import CauseTasks


async def _loses_its_first_cancel(never_set: asyncio.Event, stages: list[str]) -> None:
    # As a task does whose cancel Python 3.11's wait_for swallowed (pairwise.cancellation):
    # it carries on, then waits for an event that nobody sets once the cause is closing.
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        stages.append("cancel lost")
    await never_set.wait()


def test_a_task_that_lost_its_cancel_is_cancelled_again_and_the_close_ends() -> None:
    async def main() -> list[str]:
        tasks, stages = CauseTasks("c"), []
        task = tasks.spawn(_loses_its_first_cancel(asyncio.Event(), stages), "stuck")
        other = tasks.spawn(asyncio.sleep(3600), "plain")
        await asyncio.sleep(0)  # both are now waiting
        await asyncio.wait_for(tasks.cancel_all(recancel_after_s=0.01), timeout=30)
        assert task.cancelled() and other.cancelled()
        return stages

    assert asyncio.run(main()) == ["cancel lost"]
