"""The causes this ranker replica owns (pairwise.sharding) and holds in memory: loaded when
they get votes or are read, put to sleep when idle."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis

from pairwise import awake_causes, errors, keys
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
from ranker.vote_reader import VoteReader

logger = logging.getLogger(__name__)

# Causes loading their checkpoint and claiming their pending entries at once: after a Redis
# restart every loaded cause reloads, and hundreds of loads at once starved the pool of
# connections that checkpoints and reads also need (with 4, a thousand causes woken at once
# took up to 14 s to load on a busy machine).
_MAX_LOADING = 8

# Causes being put to sleep or woken at once (each a few round trips).
_MAX_TRANSITIONS = 16

# Stored causes whose logs the sweep looks at per round trip (two commands each).
_SWEEP_PAGE = 500


class CauseDirectory:
    """Maps cause ids to their live `CauseRanker`, for the causes of this replica's shard
    that are awake (pairwise.awake_causes states the protocol and why no vote is missed).
    New votes come through one `VoteReader` on `reader_client` (a connection of its own);
    everything else goes through `client`.

    A cause is loaded when it is read (`get`) or when the awake set names it and its log
    holds votes no checkpoint covers (polled every `discover_interval_s`, which also passes
    each loaded cause its catalog version). A cause idle for `idle_unload_s` (no vote
    applied, no read, no follower) is put to sleep: closed with a final checkpoint, then
    taken out of the set, and loaded again at once if its log got votes meanwhile. At start
    and every `sweep_interval_s`, the logs of all stored causes it owns and does not hold are
    looked at for votes nobody counted, in pages; nothing else is loaded at start.
    """

    def __init__(self, client: aioredis.Redis, reader_client: aioredis.Redis,
                 settings: Settings, fit_pool: FitPool) -> None:
        self._redis = client
        self._scripts = ScriptRunner(client)
        self._settings = settings
        self._fit_pool = fit_pool
        self._reader = VoteReader(reader_client, consumer=settings.consumer_name,
                                  read_batch=settings.read_batch,
                                  block_ms=settings.read_block_ms)
        self._causes: dict[str, CauseRanker] = {}
        # Causes being put to sleep or settled: reads and discovery wait for these.
        self._transitions: dict[str, asyncio.Task[None]] = {}
        self._loading = asyncio.Semaphore(_MAX_LOADING)
        self._transition_slots = asyncio.Semaphore(_MAX_TRANSITIONS)
        self._background: list[asyncio.Task[None]] = []
        self.loads = 0  # causes loaded since start (for tests and measurements)
        self.unloads = 0  # causes put to sleep since start

    def start(self) -> None:
        """Start reading votes, discovering awake causes and sweeping in the background."""
        loop = asyncio.get_running_loop()
        self._reader.start()
        self._background = [
            loop.create_task(self._discover_forever(), name="discover-causes"),
            loop.create_task(self._sweep_forever(), name="sweep-causes")]

    async def close(self, *, final_checkpoint: bool = True) -> None:
        """Stop discovery and every cause (see `CauseRanker.close`), then the reader."""
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        transitions = list(self._transitions.values())
        for task in transitions:
            task.cancel()
        await asyncio.gather(*transitions, return_exceptions=True)
        causes = list(self._causes.values())
        self._causes.clear()
        await asyncio.gather(*(cause.close(final_checkpoint=final_checkpoint)
                               for cause in causes))
        await self._reader.close()

    @property
    def loaded(self) -> list[str]:
        """The ids of the causes held in memory now."""
        return sorted(self._causes)

    def owns(self, cause_id: str) -> bool:
        return shard_of(cause_id, self._settings.shard_count) == self._settings.shard_index

    async def get(self, cause_id: str) -> CauseRanker:
        """The live ranker of `cause_id`, loading it on first use (or after its sleep).

        Raises errors.FailedPrecondition when another shard owns the cause and
        errors.NotFound when no such cause exists.
        """
        cause = self._causes.get(cause_id)
        if cause is None:
            if not self.owns(cause_id):
                owner = shard_of(cause_id, self._settings.shard_count)
                raise errors.FailedPrecondition(
                    f"cause {cause_id!r} is ranked by ranker shard {owner} of "
                    f"{self._settings.shard_count}; this is shard {self._settings.shard_index}")
            while (transition := self._transitions.get(cause_id)) is not None:
                await asyncio.wait({transition})
            cause = self._causes.get(cause_id)
            if cause is None:
                if not await self._redis.exists(keys.cause(cause_id)):
                    raise errors.NotFound(f"cause {cause_id!r} not found")
                cause = self._open(cause_id)
        cause.touch()
        return cause

    def _open(self, cause_id: str) -> CauseRanker:
        cause = self._causes.get(cause_id)
        if cause is None:
            cause = self._build(cause_id)
            self._causes[cause_id] = cause
            self.loads += 1
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
                                 read_batch=settings.read_batch, reader=self._reader,
                                 scripts=self._scripts)
        consumer = LogConsumer(
            cause_id, stream, CheckpointPolicy.standard(settings.checkpoint_interval_s),
            max_proposals=settings.max_proposals,
            changed=changed, observer=replica, loading=self._loading)
        scheduler = FitScheduler(
            cause_id, consumer, CatalogReader(self._redis, cause_id), self._fit_pool, replica,
            changed=changed, tasks=tasks, fit_interval_s=settings.fit_interval_s,
            read_wait_s=settings.read_wait_s, catalog_wait_s=settings.catalog_wait_s,
            on_published=SelectionPublisher(self._redis, cause_id, self._scripts, tasks).offer)
        return CauseRanker(cause_id, consumer, scheduler, replica, tasks,
                           stop_reading=stream.close)

    # -- sleeping and waking ---------------------------------------------------------------

    def _transition(self, cause_id: str, *, unload: bool) -> None:
        """Put `cause_id` to sleep (`unload`: it is loaded) or settle it (it is in the awake
        set but not loaded): in a task that reads and discovery wait for."""
        task = asyncio.get_running_loop().create_task(
            self._sleep(cause_id, unload=unload), name=f"sleep:{cause_id}")
        self._transitions[cause_id] = task
        task.add_done_callback(lambda _: self._transitions.pop(cause_id, None))

    async def _sleep(self, cause_id: str, *, unload: bool) -> None:
        """Close the cause (if loaded) with a final checkpoint, take it out of the awake set,
        and load it again if its log holds votes no checkpoint covers."""
        async with self._transition_slots:
            asleep = False
            try:
                if unload:
                    cause = self._causes.pop(cause_id)
                    await cause.close(final_checkpoint=True)
                    self.unloads += 1
                asleep = await awake_causes.put_to_sleep(self._redis, cause_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("could not put a cause to sleep; loading it again",
                               extra={"cause_id": cause_id, "error": repr(exc)})
            if unload:
                logger.info("cause unloaded" if asleep else "cause unloaded; votes came, "
                            "loading it again", extra={"cause_id": cause_id})
            if not asleep:
                self._open(cause_id)

    def _unload_idle(self) -> None:
        idle_s = self._settings.idle_unload_s
        for cause_id, cause in list(self._causes.items()):
            if cause_id not in self._transitions and cause.idle_s() >= idle_s:
                self._transition(cause_id, unload=True)

    # -- discovery and sweeps ----------------------------------------------------------------

    async def discover_once(self) -> None:
        """Settle the awake causes this replica owns and does not hold (loading those with
        votes to count), put idle ones to sleep, and pass each loaded cause its catalog
        version."""
        for cause_id in await awake_causes.members(self._redis):
            if cause_id not in self._causes and cause_id not in self._transitions \
                    and self.owns(cause_id):
                self._transition(cause_id, unload=False)
        self._unload_idle()
        causes = list(self._causes.values())
        if not causes:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for cause in causes:
                pipe.get(keys.catalog_version(cause.cause_id))
            versions = await pipe.execute()
        for cause, version in zip(causes, versions, strict=True):
            cause.note_catalog_version(int(version or 0))

    async def sweep_once(self) -> int:
        """Load every stored cause this replica owns and does not hold whose log holds votes
        no checkpoint covers (see pairwise.awake_causes); how many it loaded."""
        found = 0
        cursor: int = 0
        while True:
            cursor, raw = await self._redis.sscan(keys.CAUSES, cursor, count=_SWEEP_PAGE)
            page = [c.decode() if isinstance(c, bytes) else c for c in raw]
            candidates = [c for c in page if self.owns(c) and c not in self._causes]
            for cause_id in await awake_causes.uncounted_among(self._redis, candidates):
                if cause_id not in self._causes and cause_id not in self._transitions:
                    self._open(cause_id)
                    found += 1
            raise_if_cancel_requested()
            if not int(cursor):
                return found

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

    async def _sweep_forever(self) -> None:
        while True:
            try:
                found = await self.sweep_once()
                logger.info("stored causes swept", extra={"loaded": found})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("sweep of the stored causes failed",
                               extra={"error": repr(exc)})
            raise_if_cancel_requested()
            await asyncio.sleep(self._settings.sweep_interval_s)
