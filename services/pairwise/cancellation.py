"""Cancelling tasks that talk to Redis: a cancel that Python 3.11 can lose, and how loops
that live until cancelled still end.

Python 3.11's `asyncio.wait_for` returns the awaited result instead of raising when a cancel
arrives in the same loop turn as that result (CPython gh-86296, fixed in 3.12 where wait_for
is built on `asyncio.timeout`). redis-py wraps the write of every command in `wait_for` when
a socket timeout is set, so a task cancelled during a Redis call carries on now and then as
if nothing had happened: measured with a reader cancelled at random moments of an
`XREADGROUP BLOCK 200` loop, 36 of 2,500 cancels were lost this way, and each such loop ran
forever. The lost request is still counted by `Task.cancelling()` (nothing called
`uncancel()`), which is how a loop sees it.
"""

from __future__ import annotations

import asyncio


def raise_if_cancel_requested() -> None:
    """Raise CancelledError when the current task was asked to cancel and is still running.

    Loops that run until cancelled call it after each Redis call; it costs nothing when no
    cancel was requested.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
