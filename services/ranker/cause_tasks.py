"""The background tasks of one cause, so closing it can stop every one of them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)


class CauseTasks:
    """Tasks spawned for cause `cause_id`; a failure is logged, a cancellation is not."""

    def __init__(self, cause_id: str) -> None:
        self.cause_id = cause_id
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{name}:{self.cause_id}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    async def cancel_all(self, *, recancel_after_s: float = 1.0) -> None:
        """Cancel every task and wait until all have ended.

        A task still running `recancel_after_s` after its cancel is cancelled again: Python
        3.11 can lose a cancel that races with a Redis reply (pairwise.cancellation), and a
        task that lost it and then waits for something nobody will set any more would
        otherwise hold the close, and the whole ranker's shutdown, for ever.
        """
        pending = set(self._tasks)
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=recancel_after_s)
            if pending:
                logger.warning("cause tasks still running after a cancel; cancelling again",
                               extra={"cause_id": self.cause_id,
                                      "tasks": sorted(t.get_name() for t in pending)})

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task failed", exc_info=task.exception(),
                         extra={"cause_id": self.cause_id, "task": task.get_name()})
