"""One owned cause: its vote-log consumer and its fit scheduler, started and closed together.

Two tasks per cause share one event loop: the consumer (ranker.log_consumer) applies log
entries to the counts exactly once and checkpoints them; the scheduler
(ranker.fit_scheduler) refits when they or the catalog change and publishes the ranking
that reads answer with. The parts are built by the caller (ranker.cause_directory).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ranker.cause_tasks import CauseTasks
from ranker.fit_scheduler import FitScheduler
from ranker.log_consumer import LogConsumer
from ranker.ranking import Ranking
from ranker.replica_shipping import ReplicaShipper


class CauseRanker:
    """The live ranking of one cause. `start()`, then `current()` / `follow()`; `close()`
    stops its tasks and saves a final checkpoint."""

    def __init__(self, cause_id: str, consumer: LogConsumer, scheduler: FitScheduler,
                 replica: ReplicaShipper, tasks: CauseTasks) -> None:
        self.cause_id = cause_id
        self._consumer = consumer
        self._scheduler = scheduler
        self._replica = replica
        self._tasks = tasks

    def start(self) -> None:
        """Start consuming and fitting in the background (returns at once)."""
        self._tasks.spawn(self._consumer.run_forever(), "consume")
        self._tasks.spawn(self._scheduler.run_forever(), "fit")

    async def close(self, *, final_checkpoint: bool = True) -> None:
        """Stop the tasks, end followers, and save what was applied since the last checkpoint.

        With `final_checkpoint=False` the in-memory progress is dropped as a crash would
        drop it; the entries stay pending in Redis and the next owner re-applies them.
        """
        await self._scheduler.close()
        await self._tasks.cancel_all()
        self._replica.forget()
        if final_checkpoint:
            await self._consumer.save_final()

    async def current(self) -> Ranking:
        """The latest ranking (see `FitScheduler.current`)."""
        return await self._scheduler.current()

    def follow(self) -> AsyncIterator[Ranking]:
        """The current ranking, then each new one (see `FitScheduler.follow`)."""
        return self._scheduler.follow()

    def note_catalog_version(self, version: int) -> None:
        """Discovery saw catalog `version`: re-read the catalog if it changed."""
        self._scheduler.note_catalog_version(version)
