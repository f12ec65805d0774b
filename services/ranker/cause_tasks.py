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

    async def cancel_all(self) -> None:
        """Cancel every task and wait until all have ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            # They end at their next await; a lost cancel at their next Redis reply
            # (pairwise.cancellation).
            await asyncio.wait(tasks)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task failed", exc_info=task.exception(),
                         extra={"cause_id": self.cause_id, "task": task.get_name()})
