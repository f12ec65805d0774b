"""The causes this ranker replica owns (pairwise.sharding): discovered, or loaded on request."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis

from pairwise import errors, keys
from pairwise.cancellation import raise_if_cancel_requested
from pairwise.redis_scripts import ScriptRunner
from pairwise.sharding import shard_of
from ranker.catalog_reader import CatalogReader
from ranker.cause_ranker import CauseRanker
from ranker.cause_tasks import CauseTasks
from ranker.checkpoint_policy import CheckpointPolicy
from ranker.fit_pool import FitPool
from ranker.fit_scheduler import FitScheduler
from ranker.log_consumer import LogConsumer
from ranker.redis_vote_stream import RedisVoteStream
from ranker.replica_shipping import ReplicaShipper
from ranker.selection_publisher import SelectionPublisher
from ranker.settings import Settings

logger = logging.getLogger(__name__)


class CauseDirectory:
    """Maps cause ids to their live `CauseRanker`, for the causes of this replica's shard.

    Every `discover_interval_s` it reads the set of causes, starts a `CauseRanker` for each
    new one it owns, and passes every owned cause its catalog version (so moderation and new
    proposals are picked up without a vote). `get` also loads an owned cause on demand.
    """

    def __init__(self, client: aioredis.Redis, settings: Settings,
                 fit_pool: FitPool) -> None:
        self._redis = client
        self._scripts = ScriptRunner(client)
        self._settings = settings
        self._fit_pool = fit_pool
        self._causes: dict[str, CauseRanker] = {}
        self._discovery: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start discovering causes in the background."""
        self._discovery = asyncio.get_running_loop().create_task(
            self._discover_forever(), name="discover-causes")

    async def close(self, *, final_checkpoint: bool = True) -> None:
        """Stop discovery and every cause (see `CauseRanker.close`)."""
        if self._discovery is not None:
            self._discovery.cancel()
            await asyncio.gather(self._discovery, return_exceptions=True)
        causes = list(self._causes.values())
        self._causes.clear()
        await asyncio.gather(*(cause.close(final_checkpoint=final_checkpoint)
                               for cause in causes))

    def owns(self, cause_id: str) -> bool:
        return shard_of(cause_id, self._settings.shard_count) == self._settings.shard_index

    async def get(self, cause_id: str) -> CauseRanker:
        """The live ranker of `cause_id`, loading it on first use.

        Raises errors.FailedPrecondition when another shard owns the cause and
        errors.NotFound when no such cause exists.
        """
        cause = self._causes.get(cause_id)
        if cause is not None:
            return cause
        if not self.owns(cause_id):
            owner = shard_of(cause_id, self._settings.shard_count)
            raise errors.FailedPrecondition(
                f"cause {cause_id!r} is ranked by ranker shard {owner} of "
                f"{self._settings.shard_count}; this is shard {self._settings.shard_index}")
        if not await self._redis.exists(keys.cause(cause_id)):
            raise errors.NotFound(f"cause {cause_id!r} not found")
        return self._open(cause_id)

    def _open(self, cause_id: str) -> CauseRanker:
        cause = self._causes.get(cause_id)
        if cause is None:
            cause = self._build(cause_id)
            self._causes[cause_id] = cause
            cause.start()
            logger.info("cause owned", extra={"cause_id": cause_id})
        return cause

    def _build(self, cause_id: str) -> CauseRanker:
        """A cause's parts, wired: its consumer and scheduler share `changed` (the fit's
        input changed) and its replica shipper (told of every vote applied); each published
        ranking goes to pair selection (ranker.selection_publisher)."""
        settings = self._settings
        changed = asyncio.Event()
        tasks = CauseTasks(cause_id)
        replica = ReplicaShipper(cause_id, self._fit_pool)
        stream = RedisVoteStream(self._redis, cause_id, consumer=settings.consumer_name,
                                 read_batch=settings.read_batch,
                                 block_ms=settings.read_block_ms, scripts=self._scripts)
        consumer = LogConsumer(
            cause_id, stream, CheckpointPolicy.standard(settings.checkpoint_interval_s),
            max_proposals=settings.max_proposals,
            changed=changed, observer=replica)
        scheduler = FitScheduler(
            cause_id, consumer, CatalogReader(self._redis, cause_id), self._fit_pool, replica,
            changed=changed, tasks=tasks, fit_interval_s=settings.fit_interval_s,
            read_wait_s=settings.read_wait_s, catalog_wait_s=settings.catalog_wait_s,
            on_published=SelectionPublisher(self._redis, cause_id, self._scripts, tasks).offer)
        return CauseRanker(cause_id, consumer, scheduler, replica, tasks)

    async def discover_once(self) -> None:
        """Open the owned causes not open yet; pass each its catalog version."""
        for raw in await self._redis.smembers(keys.CAUSES):
            cause_id = raw.decode() if isinstance(raw, bytes) else raw
            if cause_id not in self._causes and self.owns(cause_id):
                self._open(cause_id)
        causes = list(self._causes.values())
        if not causes:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for cause in causes:
                pipe.get(keys.catalog_version(cause.cause_id))
            versions = await pipe.execute()
        for cause, version in zip(causes, versions, strict=True):
            cause.note_catalog_version(int(version or 0))

    async def _discover_forever(self) -> None:
        while True:
            try:
                await self.discover_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("cause discovery failed; retrying", extra={"error": repr(exc)})
            raise_if_cancel_requested()
            await asyncio.sleep(self._settings.discover_interval_s)
