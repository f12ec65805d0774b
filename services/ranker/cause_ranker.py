"""One owned cause: consume its vote log, keep its counts, fit and publish its ranking.

Three tasks per cause share one event loop:
- the consumer applies log entries to the in-memory `PairCounts` in id order and, every
  `checkpoint_interval_s`, stores counts + last entry id (one fenced Lua script), then
  XACKs the entries that checkpoint covers;
- the fitter refits at most every `fit_interval_s` when votes or the catalog changed, in a
  worker process (ranker.fit_pool), and publishes an immutable `Ranking`;
- readers (ReadRanking, FollowRanking) only ever look at the published ranking, so a long
  fit never delays them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import numpy as np
import redis.asyncio as aioredis
import redis.exceptions

from pairwise import errors, vote_log
from pairwise.cancellation import raise_if_cancel_requested
from ranker import bradley_terry
from ranker.catalog_reader import CatalogReader
from ranker.fit_pool import FitPool, ReplicaMissing
from ranker.pair_counts import PairCounts, encode_votes
from ranker.ranking import Catalog, FitInput, Ranking, fit_input, ranking_from_fit
from ranker.settings import Settings
from ranker.vote_consumer import CheckpointConflict, VoteStream

logger = logging.getLogger(__name__)

# Save a checkpoint early when this many entries wait for their XACK, whatever the interval:
# it bounds how much a crash makes the next owner re-apply.
_MAX_UNACKED = 100_000
# A checkpoint stores the votes applied since the previous one (a delta) until the deltas
# would outgrow 1/_DELTA_SHARE of the base snapshot (and _DELTA_MIN_BYTES): then it writes a
# new base. Loading replays at most that many votes (~3M, ~1 s, at 34,000 proposals / 5.4M
# pairs, a 110 MB base). A base still costs Redis and the machine ~0.2-1 s of work, during
# which reads wait more often: at 1% rounds of new votes every ~1.6 s, one per ~70 s.
_DELTA_SHARE = 4
_DELTA_MIN_BYTES = 1 << 20
# Pages of more votes than this are decoded and applied in a thread, off the event loop.
_INLINE_MAX_VOTES = 2_000
# The votes kept for the fit worker's replica of the counts (ranker.fit_pool) are dropped, and
# the next fit ships the whole counts instead, once they outnumber 1/_REPLICA_SHARE of the
# pairs (and _REPLICA_MIN_VOTES): e.g. when no large fit ran for a long time.
_REPLICA_SHARE = 4
_REPLICA_MIN_VOTES = 1 << 20


class CauseRanker:
    """The live ranking of one cause. Create, `start()`, then `current()` / `follow()`;
    `close()` stops its tasks and saves a final checkpoint."""

    def __init__(self, cause_id: str, client: aioredis.Redis, settings: Settings,
                 fit_pool: FitPool) -> None:
        self.cause_id = cause_id
        self._settings = settings
        self._log = VoteStream(client, cause_id, consumer=settings.consumer_name,
                               read_batch=settings.read_batch, block_ms=settings.read_block_ms)
        self._catalog_reader = CatalogReader(client, cause_id)
        self._fit_pool = fit_pool

        # Consumer state, changed only by the consumer task (or a thread it waits for, with
        # the counts lock held) and always together: `counts` reflect exactly the log
        # entries up to `applied_id`, which hold `votes_counted` votes; `unacked` delivered
        # entries are not XACKed yet.
        self._counts = PairCounts()
        self._applied_id = ""
        self._votes_counted = 0
        self._unacked = 0
        # Fencing: the token of the checkpoint this consumer loaded or last saved, and of a
        # save whose reply was lost (it may have been applied).
        self._saved_token = ""
        self._unknown_token = ""
        # The stored checkpoint's base snapshot and deltas after it (bytes); without a base
        # this consumer knows of, the next save writes one.
        self._has_base = False
        self._base_bytes = 0
        self._delta_bytes = 0
        self._saved_at = time.monotonic()
        self._counts_lock = asyncio.Lock()  # the consumer's writes vs. a fit copying counts
        # The fit worker's replica of the counts (ranker.fit_pool.fit_replica), at
        # `_replica_epoch`:`_replica_generation` when its last shipment arrived, and the votes
        # applied since that shipment (None: the next fit ships the whole counts).
        self._replica_epoch = ""
        self._replica_generation = 0
        self._replica_votes: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self._replica_size = 0

        self._catalog: Catalog | None = None
        self._catalog_lock = asyncio.Lock()
        self._changed = asyncio.Event()  # votes or catalog changed since the last fit input
        self._replayed = asyncio.Event()  # pending entries re-applied after a (re)load
        self._loaded = asyncio.Event()  # first load done: a ranking can be fitted
        self._fit_lock = asyncio.Lock()
        self._last_fit_started = float("-inf")
        self._ranking: Ranking | None = None
        self._published = asyncio.Condition()
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start consuming and fitting in the background (returns at once)."""
        self._spawn(self._consume_forever(), "consume")
        self._spawn(self._fit_forever(), "fit")

    async def close(self, *, final_checkpoint: bool = True) -> None:
        """Stop the tasks, end followers, and save what was applied since the last checkpoint.

        With `final_checkpoint=False` the in-memory progress is dropped as a crash would
        drop it; the entries stay pending in Redis and the next owner re-applies them.
        """
        self._closed = True
        async with self._published:
            self._published.notify_all()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            # They end at their next await; a lost cancel at their next Redis reply
            # (pairwise.cancellation).
            await asyncio.wait(tasks)
        if self._replica_epoch:
            self._fit_pool.forget(self.cause_id, self._replica_epoch)
        if final_checkpoint and self._unacked:
            try:
                await self._checkpoint()
            except Exception:
                logger.exception("final checkpoint failed; pending entries will be re-applied",
                                 extra={"cause_id": self.cause_id})

    # -- reading -------------------------------------------------------------------------

    async def current(self) -> Ranking:
        """The latest ranking, reflecting the current catalog.

        Checks the catalog version first so a read after AddProposals or moderation sees
        the change: it waits up to `catalog_wait_s` for that refit, then answers with the
        previous ranking. The first read of a cause waits for its first fit. Raises
        errors.Unavailable when the cause cannot load or fit within `read_wait_s`.
        """
        wait_s = self._settings.read_wait_s
        if not self._loaded.is_set():  # wait_for costs a task, even for a set event
            try:
                await asyncio.wait_for(self._loaded.wait(), wait_s)
            except TimeoutError:
                raise errors.Unavailable(
                    f"cause {self.cause_id!r} is still loading its vote log; retry") from None
        version = await self._catalog_reader.version()
        if self._catalog is None or version != self._catalog.version:
            await self.refresh_catalog(version)
        ranking = self._ranking
        if ranking is None or self._catalog is None \
                or ranking.catalog_version != self._catalog.version:
            refit = self._spawn(self._fit(only_if_stale=True), "refit")
            await asyncio.wait({refit}, timeout=wait_s if ranking is None
                               else self._settings.catalog_wait_s)
        if self._ranking is None:
            raise errors.Unavailable(f"cause {self.cause_id!r} has no ranking yet; retry")
        return self._ranking

    async def follow(self) -> AsyncIterator[Ranking]:
        """The current ranking, then each newly published one (the latest, when a slow
        reader missed some), until the caller stops or the cause is closed (Unavailable)."""
        ranking = await self.current()
        while True:
            yield ranking
            ranking = await self._next_ranking(ranking)

    async def _next_ranking(self, sent: Ranking) -> Ranking:
        async with self._published:
            await self._published.wait_for(lambda: self._ranking is not sent or self._closed)
            if self._closed or self._ranking is None:
                raise errors.Unavailable(
                    f"ranker of cause {self.cause_id!r} is shutting down; follow again")
            return self._ranking

    # -- catalog ---------------------------------------------------------------------------

    def note_catalog_version(self, version: int) -> None:
        """Discovery saw `version`: re-read the catalog in the background if it changed."""
        if self._catalog is not None and version != self._catalog.version \
                and not self._catalog_lock.locked():
            self._spawn(self.refresh_catalog(version), "catalog")

    async def refresh_catalog(self, seen_version: int | None = None) -> None:
        """Re-read the catalog unless it is already at `seen_version`."""
        async with self._catalog_lock:
            previous = self._catalog
            if previous is not None and seen_version is not None \
                    and previous.version == seen_version:
                return
            catalog = await self._catalog_reader.read(previous)
            self._catalog = catalog
        if previous is None or catalog.version != previous.version:
            logger.info("catalog read", extra={
                "cause_id": self.cause_id, "catalog_version": catalog.version,
                "proposals": len(catalog.proposal_ids), "accepted": len(catalog.accepted)})
            self._changed.set()

    # -- consuming -------------------------------------------------------------------------

    async def _consume_forever(self) -> None:
        backoff_s = 0.1
        while True:
            try:
                await self._load()
                backoff_s = 0.1
                while True:
                    entries = await self._log.read_new()
                    raise_if_cancel_requested()
                    if entries:
                        await self._apply(entries)
                    if self._checkpoint_due():
                        await self._checkpoint()
                        raise_if_cancel_requested()
            except CheckpointConflict as exc:
                logger.error("another ranker consumes this cause; reloading from its checkpoint",
                             extra={"cause_id": self.cause_id, "detail": str(exc)})
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                logger.warning("vote log unreachable; reloading from the checkpoint",
                               extra={"cause_id": self.cause_id, "error": str(exc)})
            except Exception:
                logger.exception("vote log consumer failed; reloading from the checkpoint",
                                 extra={"cause_id": self.cause_id})
            self._replayed.clear()
            raise_if_cancel_requested()
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 5.0)

    async def _load(self) -> None:
        """Restore the checkpoint, then re-apply every pending entry of the group (any
        consumer's, claimed to this one) after it, in id order."""
        self._replayed.clear()
        await self._log.ensure_group()
        checkpoint = await self._log.load_checkpoint()
        async with self._counts_lock:
            self._counts = checkpoint.counts
            self._replica_votes = None  # the worker's replica is of the replaced counts
            # The votes applied from here on are the next checkpoint's delta.
            self._counts.start_journal()
            self._applied_id = checkpoint.last_id
            self._saved_token, self._unknown_token = checkpoint.token, ""
            self._has_base = checkpoint.has_base
            self._base_bytes, self._delta_bytes = checkpoint.base_bytes, checkpoint.delta_bytes
            self._votes_counted = checkpoint.votes_counted
            self._unacked = 0
            self._saved_at = time.monotonic()
        claimed = 0
        async for entries in self._log.claim_pending():
            claimed += len(entries)
            await self._apply(entries)
            # Safe mid-replay: every entry up to the applied one is claimed by now.
            if self._checkpoint_due():
                await self._checkpoint()
        if self._catalog is None:
            await self.refresh_catalog()
        logger.info("cause loaded", extra={
            "cause_id": self.cause_id, "checkpoint_id": checkpoint.last_id,
            "checkpoint_votes": checkpoint.votes_counted, "pending_claimed": claimed,
            "votes_counted": self._votes_counted})
        self._replayed.set()
        self._loaded.set()
        self._changed.set()

    async def _apply(self, entries: list[vote_log.RawEntry]) -> None:
        async with self._counts_lock:
            # A page of imported entries holds up to read_batch * 1,000 votes: 70,000 took
            # ~3 ms to decode and ~18 ms to apply at 34,000 proposals, a stall of every RPC
            # when done on the event loop.
            if sum(len(fields.get(b"k", b"")) for _, fields in entries if fields) \
                    <= _INLINE_MAX_VOTES:
                batch = self._decode_and_apply(entries)
            else:
                work = asyncio.ensure_future(asyncio.to_thread(self._decode_and_apply, entries))
                try:
                    batch = await asyncio.shield(work)
                except asyncio.CancelledError:
                    # The thread runs on regardless: let it finish, so that nothing (a final
                    # checkpoint) sees the counts ahead of the applied entry id.
                    await asyncio.wait({work})
                    raise
        for entry_id, problem in batch.malformed:
            logger.error("malformed vote-log entry ignored (counted as reflected)",
                         extra={"cause_id": self.cause_id, "entry_id": entry_id,
                                "problem": problem})
        if batch.last_id:
            self._changed.set()

    def _decode_and_apply(self, entries: list[vote_log.RawEntry]) -> vote_log.DecodedVotes:
        """Decode the entries after the applied one, apply their votes to the counts and
        advance the consumer state with them (with the counts lock held)."""
        batch = vote_log.decode_entries(entries, self._applied_id, self._settings.max_proposals)
        if len(batch.kinds):
            self._counts.apply(batch.kinds, batch.a, batch.b)
            replica_votes = self._replica_votes
            if replica_votes is not None:
                replica_votes.append((batch.kinds, batch.a, batch.b))
                self._replica_size += len(batch.kinds)
                if self._replica_size > max(_REPLICA_MIN_VOTES,
                                            self._counts.n_pairs // _REPLICA_SHARE):
                    self._replica_votes = None
        if batch.last_id:
            self._applied_id = batch.last_id
            self._votes_counted += batch.n_votes
        self._unacked += batch.n_entries
        return batch

    def _checkpoint_due(self) -> bool:
        if not self._unacked:
            return False
        age_s = time.monotonic() - self._saved_at
        return (age_s >= self._settings.checkpoint_interval_s
                or self._unacked >= _MAX_UNACKED)

    async def _checkpoint(self) -> None:
        """Store counts + last applied id, then XACK the entries the checkpoint covers.

        Stores the votes applied since the last save as a delta, or a whole new base
        snapshot when the deltas have grown past their share of it, when there is no base
        yet, or after a save whose outcome is unknown (a delta needs to know what it extends).
        """
        if not self._applied_id:
            return
        last_id, votes_counted, unacked = self._applied_id, self._votes_counted, self._unacked
        started = time.perf_counter()
        # No await since the last apply: the journal holds exactly the votes of the entries
        # after the stored checkpoint, up to last_id.
        votes = self._counts.take_journal()
        delta = encode_votes(*votes) if len(votes[0]) else b""
        base = (not self._has_base or bool(self._unknown_token)
                or self._delta_bytes + len(delta)
                > max(self._base_bytes // _DELTA_SHARE, _DELTA_MIN_BYTES))
        token = f"{self._settings.consumer_name}:{uuid.uuid4().hex}"
        try:
            if base:
                # Views of the live arrays: nothing applies votes until this save returns.
                parts = await asyncio.to_thread(self._counts.snapshot_parts)
                size = sum(len(part) for part in parts)
                await self._log.save_base(
                    previous_token=self._saved_token, unknown_token=self._unknown_token,
                    token=token, last_id=last_id, votes_counted=votes_counted, parts=parts)
                self._has_base, self._base_bytes, self._delta_bytes = True, size, 0
            else:
                size = len(delta)
                await self._log.save_delta(
                    previous_token=self._saved_token, token=token, last_id=last_id,
                    votes_counted=votes_counted, votes=delta)
                self._delta_bytes += size
        except CheckpointConflict:
            raise
        except BaseException:
            # Cancelled or disconnected mid-call: the script may have run. Only this
            # consumer knows `token`, so accepting it next time cannot hide another writer;
            # the next save writes a whole base, right whether or not this one was applied.
            self._unknown_token = token
            raise
        self._saved_token, self._unknown_token = token, ""
        # A crash before these acks is harmless: entries up to last_id are skipped (and acked)
        # when they are claimed again.
        acked = await self._log.ack_through(last_id)
        self._unacked -= unacked
        self._saved_at = time.monotonic()
        logger.info("checkpoint saved", extra={
            "cause_id": self.cause_id, "last_id": last_id, "votes_counted": votes_counted,
            "acked": acked, "kind": "base" if base else "delta", "bytes": size,
            "stored_bytes": self._base_bytes + self._delta_bytes,
            "seconds": round(time.perf_counter() - started, 4)})

    # -- fitting ---------------------------------------------------------------------------

    async def _fit_forever(self) -> None:
        while True:
            await self._changed.wait()
            delay_s = self._last_fit_started + self._settings.fit_interval_s - time.monotonic()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            try:
                await self._fit()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("fit failed; keeping the previous ranking",
                                 extra={"cause_id": self.cause_id})

    async def _fit(self, *, only_if_stale: bool = False) -> None:
        """Fit the current counts over the accepted proposals and publish the result.

        With `only_if_stale`, do nothing when the published ranking already reflects the
        current catalog (another fit got there first). Waits until pending entries are
        re-applied, so a ranking never goes back to an older prefix of the log.
        """
        await self._replayed.wait()
        async with self._fit_lock:
            catalog = self._catalog
            if catalog is None:
                return
            if only_if_stale and self._ranking is not None \
                    and self._ranking.catalog_version == catalog.version:
                return
            started = time.perf_counter()
            try:
                try:
                    done = await self._fit_once(catalog)
                except ReplicaMissing:
                    # A new worker pool (after a crash) or a shipment that never arrived.
                    logger.info("the fit worker has no copy of the counts; sending them whole",
                                extra={"cause_id": self.cause_id})
                    done = await self._fit_once(catalog)
            except bradley_terry.FitDidNotConverge as exc:
                logger.error("fit did not converge; keeping the previous ranking", extra={
                    "cause_id": self.cause_id, "n_items": len(catalog.accepted),
                    "error": str(exc)})
                return
            if done is None:
                return  # a reload began: its replay will set _changed again
            inputs, fit, n_pairs = done
            ranking = await asyncio.to_thread(ranking_from_fit, inputs, fit)
            logger.info("fit", extra={
                "cause_id": self.cause_id, "n_items": inputs.n_items, "n_pairs": n_pairs,
                "iterations": ranking.iterations, "votes_counted": ranking.votes_counted,
                "seconds": round(time.perf_counter() - started, 4)})
            async with self._published:
                self._ranking = ranking
                self._published.notify_all()

    async def _fit_once(
        self, catalog: Catalog,
    ) -> tuple[FitInput, bradley_terry.BTFit | None, int] | None:
        """Cut this fit's input out of the counts and fit it: (input, fit, pairs fitted), or
        None when a reload began. Large fits ship the worker only the votes applied since
        the previous one (see ranker.fit_pool); raises ReplicaMissing when it lost them."""
        items = catalog.accepted
        async with self._counts_lock:
            if not self._replayed.is_set():
                return None
            self._changed.clear()
            self._last_fit_started = time.monotonic()
            replica = len(items) > 0 and self._fit_pool.keeps_replicas \
                and not self._fit_pool.runs_inline(len(items), self._counts.n_pairs)
            inputs = await asyncio.to_thread(
                fit_input, self.cause_id, catalog, self._counts, with_pairs=not replica,
                votes_counted=self._votes_counted, last_vote_entry_id=self._applied_id)
            if replica:
                shipment = await self._ship_replica()
        if not inputs.n_items:
            return inputs, None, 0
        # An argsort of the previous ranking (34,000 items: ~2 ms): off the loop.
        previous = self._ranking
        init = None if previous is None else \
            await asyncio.to_thread(previous.abilities_for, inputs.items)
        if not replica:
            fit = await self._fit_pool.fit(
                inputs.n_items, inputs.i, inputs.j, inputs.wins_ij, inputs.wins_ji,
                prior_strength=bradley_terry.PRIOR_STRENGTH, init=init)
            return inputs, fit, inputs.n_pairs
        base_generation, votes, counts_path = shipment
        try:
            fit, n_pairs = await self._fit_pool.fit_replica(
                self.cause_id, self._replica_epoch, base_generation, self._replica_generation,
                votes, counts_path, inputs.items,
                prior_strength=bradley_terry.PRIOR_STRENGTH, init=init)
        except bradley_terry.FitDidNotConverge:
            raise  # raised after the replica took the shipment
        except BaseException:
            self._replica_votes = None  # whether it arrived is unknown: ship them whole
            raise
        return inputs, fit, n_pairs

    async def _ship_replica(self) -> tuple[int | None, bytes, str | None]:
        """The next shipment to the worker's replica, with the counts lock held: (generation
        it extends, votes since then) or (None, b"", a file of the whole counts)."""
        self._replica_generation += 1
        votes = self._replica_votes
        self._replica_votes, self._replica_size = None, 0
        if votes is None:
            self._replica_epoch = uuid.uuid4().hex
            path = await self._fit_pool.write_counts(self._counts)
            self._replica_votes = []
            return None, b"", path
        self._replica_votes = []
        encoded = await asyncio.to_thread(_encode_votes, votes) if votes else b""
        return self._replica_generation - 1, encoded, None

    # -- tasks -----------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{name}:{self.cause_id}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task failed", exc_info=task.exception(),
                         extra={"cause_id": self.cause_id, "task": task.get_name()})


def _encode_votes(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> bytes:
    kinds, a, b = (np.concatenate(column) for column in zip(*parts, strict=True))
    return encode_votes(kinds, a, b)
