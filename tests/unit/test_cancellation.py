"""A loop that runs until cancelled ends even when Python 3.11 loses the cancel: the one that
arrives in the same loop turn as the reply of the call it interrupts."""

from __future__ import annotations

import asyncio
import sys

import pytest

from pairwise.cancellation import raise_if_cancel_requested


async def _reader(replies: list[asyncio.Future[None]], *, guarded: bool) -> str:
    # redis-py awaits each command's write through asyncio.wait_for, as here.
    for reply in replies:
        await asyncio.wait_for(reply, 60)
        if guarded:
            raise_if_cancel_requested()
    return "read every reply"


async def _cancel_as_the_reply_arrives(*, guarded: bool) -> asyncio.Task[str]:
    loop = asyncio.get_running_loop()
    replies: list[asyncio.Future[None]] = [loop.create_future() for _ in range(3)]
    task = asyncio.create_task(_reader(replies, guarded=guarded))
    await asyncio.sleep(0)  # the reader now waits for its first reply
    replies[0].set_result(None)
    task.cancel()  # same loop turn as the reply
    for reply in replies[1:]:
        reply.set_result(None)
    await asyncio.wait({task})
    return task


def test_a_loop_cancelled_as_its_reply_arrives_still_stops() -> None:
    task = asyncio.run(_cancel_as_the_reply_arrives(guarded=True))
    assert task.cancelled()


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for keeps the cancel from 3.12")
def test_without_the_check_python_3_11_loses_that_cancel() -> None:
    task = asyncio.run(_cancel_as_the_reply_arrives(guarded=False))
    assert not task.cancelled() and task.result() == "read every reply"


def test_no_cancel_requested_changes_nothing() -> None:
    async def main() -> str:
        raise_if_cancel_requested()
        return "ran"

    assert asyncio.run(main()) == "ran"
