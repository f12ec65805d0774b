"""One owned cause: its vote-log consumer and its fit scheduler, started and closed together.

Two tasks per cause share one event loop: the consumer (ranker.log_consumer) applies log
entries to the counts exactly once and checkpoints them; the scheduler
(ranker.fit_scheduler) refits when they or the catalog change and publishes the ranking
that reads answer with. The parts are built by the caller (ranker.cause_directory).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

from ranker import segment_views
from ranker.cause_tasks import CauseTasks
from ranker.fit_scheduler import FitScheduler, ViewMargins
from ranker.log_consumer import LogConsumer
from ranker.ranking import Ranking
from ranker.replica_shipping import ReplicaShipper
from ranker.segment_counts import Segment


class CauseRanker:
    """The live ranking of one cause. `start()`, then `current()` / `follow()`; `close()`
    stops its tasks and reading (`stop_reading`) and saves a final checkpoint."""

    def __init__(self, cause_id: str, consumer: LogConsumer, scheduler: FitScheduler,
                 replica: ReplicaShipper, tasks: CauseTasks, *,
                 stop_reading: Callable[[], None]) -> None:
        self.cause_id = cause_id
        self._consumer = consumer
        self._scheduler = scheduler
        self._replica = replica
        self._tasks = tasks
        self._stop_reading = stop_reading
        self._read_at = time.monotonic()
        self._followers = 0

    def touch(self) -> None:
        """A read is about to use the cause: it is not idle."""
        self._read_at = time.monotonic()

    def idle_s(self) -> float:
        """Seconds since a vote was applied or the cause was read; 0 while it is followed
        or (re)loading (a load waits its turn behind the others after a restart)."""
        if self._followers or not self._consumer.replayed.is_set():
            return 0.0
        return time.monotonic() - max(self._read_at, self._consumer.active_at)

    def lag(self) -> tuple[int, float]:
        """(votes applied but not in the published ranking yet, seconds since that ranking
        was published while such votes wait; 0 when none do)."""
        waiting = max(0, self._consumer.votes_applied - self._scheduler.votes_published)
        if not waiting:
            return 0, 0.0
        return waiting, time.monotonic() - self._scheduler.published_at

    def start(self) -> None:
        """Start consuming and fitting in the background (returns at once)."""
        self._tasks.spawn(self._consumer.run_forever(), "consume")
        self._tasks.spawn(self._scheduler.run_forever(), "fit")

    async def close(self, *, final_checkpoint: bool = True) -> None:
        """Stop the tasks, end followers, and save what was applied since the last checkpoint.

        With `final_checkpoint=False` the in-memory progress is dropped as a crash would
        drop it; the entries stay pending in Redis and the next owner re-applies them.
        """
        try:
            await self._scheduler.close()
            await self._tasks.cancel_all()
        finally:
            self._stop_reading()
        self._replica.forget()
        if final_checkpoint:
            await self._consumer.save_final()

    async def current(self) -> Ranking:
        """The latest ranking (see `FitScheduler.current`)."""
        self.touch()
        return await self._scheduler.current()

    async def follow(self) -> AsyncIterator[Ranking]:
        """The current ranking, then each new one (see `FitScheduler.follow`); a followed
        cause is never idle."""
        self._followers += 1
        try:
            async for ranking in self._scheduler.follow():
                yield ranking
        finally:
            self._followers -= 1
            self.touch()

    async def current_segment(self, segment: Segment) -> tuple[Ranking, Ranking | None]:
        """The latest overall ranking and `segment`'s (see `FitScheduler.current_segment`)."""
        self.touch()
        return await self._scheduler.current_segment(segment)

    async def follow_segment(self, segment: Segment,
                             ) -> AsyncIterator[tuple[Ranking, Ranking | None]]:
        """`current_segment`, then each new ranking of the segment."""
        self._followers += 1
        try:
            async for rankings in self._scheduler.follow_segment(segment):
                yield rankings
        finally:
            self._followers -= 1
            self.touch()

    async def current_view(self, view: int, key: int, margins: ViewMargins = (),
                           ) -> tuple[Ranking, segment_views.View]:
        """The representative or consensus ranking (see `FitScheduler.current_view`)."""
        self.touch()
        return await self._scheduler.current_view(view, key, margins)

    async def follow_view(self, view: int, key: int, margins: ViewMargins = (),
                          ) -> AsyncIterator[tuple[Ranking, segment_views.View]]:
        """`current_view`, then each new ranking of the view."""
        self._followers += 1
        try:
            async for result in self._scheduler.follow_view(view, key, margins):
                yield result
        finally:
            self._followers -= 1
            self.touch()

    def segment_votes(self) -> dict[Segment, int]:
        """The counted votes of each segment with some, as of the latest fit."""
        return self._scheduler.segment_votes()

    def note_catalog_version(self, version: int) -> None:
        """Discovery saw catalog `version`: re-read the catalog if it changed."""
        self._scheduler.note_catalog_version(version)

    def note_exclusions_version(self, version: int) -> None:
        """Discovery saw the exclusions at `version`: count the log again if they changed."""
        self._consumer.note_exclusions_version(version)
