"""Applies one cause's vote log to its pair counts exactly once, and checkpoints them.

The rule (stated with the Redis side in ranker.redis_vote_stream): entries are applied in
id order; the counts, the last applied id and the votes counted are stored together by one
fenced save; an entry is acknowledged only once a stored checkpoint covers it. So after a
crash or a hand-over every entry not reflected in the stored checkpoint is still pending:
the next owner loads the checkpoint, claims every pending entry, applies those after its
last id and acknowledges the others, counting each vote once.

Only the votes ranker.vote_admission admits change the counts; the checkpoint also stores
how many were left out (untrusted, excluded) and the exclusions version that decided. A
checkpoint of another version (the exclusions changed) or stored before votes were left out
is counted again from the log on load, up to its last id: the log is the source of truth,
and the same entries are reflected, so nothing is counted twice or lost. So is a checkpoint
whose segments have no crossed cells beside them (stored before cells were kept).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import redis.exceptions

from pairwise import vote_log
from pairwise.cancellation import raise_if_cancel_requested
from pairwise.exclusions import Exclusions
from pairwise.metrics import CHECKPOINT_BYTES, CHECKPOINT_SECONDS
from ranker.checkpoint_policy import CheckpointPolicy, SaveKind, StoredSize
from ranker.pair_counts import PairCounts, encode_votes
from ranker.segment_counts import SegmentCounts
from ranker.vote_admission import CountedVotes, LeftOut, admit

_T = TypeVar("_T")

logger = logging.getLogger(__name__)

# Pages of more votes than this are decoded and applied in a thread, off the event loop: a
# page of imported entries holds up to read_batch * 1,000 votes, and 70,000 took ~3 ms to
# decode and ~18 ms to apply at 34,000 proposals, a stall of every RPC on the loop.
_INLINE_MAX_VOTES = 2_000
# Votes applied inline wait to be counted in their segments and crossed cells
# (ranker.segment_counts) until a reader counts them, or this many are pending, then are
# counted in a thread: a hundred-vote page touches twenty segments and about a hundred cells,
# each a few numpy calls, which counted page by page cost the loop ~30 ms a page (loaded);
# counted together, the calls of each segment and cell serve many pages.
_SEGMENTS_PENDING_VOTES = 20_000


@dataclass(frozen=True)
class Checkpoint:
    """What Redis last stored for a cause: `counts` reflect exactly the log entries up to
    `last_id` ("" when none), which hold `votes_counted` votes. `token` names the save that
    wrote it ("" when none): the next save must name it (fencing). `base_bytes` and
    `delta_bytes` are the sizes of its base snapshot and of the deltas stored after it;
    without one (none stored yet) `has_base` is False, and the next save must write a base.
    `left_out` says which of the votes the counts leave out; None for a checkpoint stored
    before votes were left out, whose counts hold every valid vote. `segments` are the
    counts per segment of voters (ranker.segment_counts) of the same votes."""

    last_id: str
    votes_counted: int
    counts: PairCounts
    token: str = ""
    has_base: bool = False
    base_bytes: int = 0
    delta_bytes: int = 0
    left_out: LeftOut | None = None
    segments: SegmentCounts = field(default_factory=SegmentCounts)


class CheckpointConflict(RuntimeError):
    """Another consumer saved a checkpoint, or holds entries this one is about to cover.

    Two rankers are consuming the same cause (a shard misconfiguration or a hand-over in
    progress). Nothing was written; the caller must drop its in-memory state and reload.
    """


class ExclusionsChanged(Exception):
    """The cause's exclusions changed since the counts were loaded: they are counted again
    (the consumer reloads)."""


class VoteStream(Protocol):
    """One cause's vote log as its consumer sees it (ranker.redis_vote_stream in production).

    `consumer` is this consumer's name in the group, which also prefixes its save tokens.
    """

    consumer: str

    async def open(self) -> tuple[Checkpoint, Exclusions]:
        """Create the consumer group if it does not exist; the stored checkpoint (or an empty
        one) and the cause's exclusions now."""

    def read_through(self, last_id: str) -> AsyncIterator[list[vote_log.RawEntry]]:
        """Every entry of the log up to `last_id`, in id order, in pages (without the
        consumer group: to count them again)."""

    def claim_pending(self) -> AsyncIterator[list[vote_log.RawEntry]]:
        """Every entry delivered to the group and not acknowledged (any consumer's), taken
        over by this consumer, in id order, in pages (after `open`, which may have claimed
        the first)."""

    async def read_new(self, wait_s: float | None) -> list[vote_log.RawEntry]:
        """The next entries never delivered to the group, in id order, waiting up to `wait_s`
        seconds for some (None: until there are); empty when none came in time."""

    def wake(self) -> None:
        """End a `read_new` that waits now (it returns what it has, maybe nothing)."""

    async def save_base(self, *, previous_token: str, unknown_token: str, token: str,
                        last_id: str, votes_counted: int, left_out: LeftOut,
                        parts: Sequence[bytes | memoryview]) -> None:
        """Store a checkpoint whose counts are the snapshot `parts`; CheckpointConflict
        when the stored one is not `previous_token`'s (nor `unknown_token`'s)."""

    async def save_delta(self, *, previous_token: str, token: str, last_id: str,
                         votes_counted: int, left_out: LeftOut, votes: bytes) -> None:
        """Store a checkpoint adding `votes` to the stored one, which must be
        `previous_token`'s and have a base; CheckpointConflict otherwise."""

    async def ack_through(self, last_id: str, *, about: int) -> int:
        """Acknowledge this consumer's pending entries up to `last_id` (`about` of them, as
        far as the consumer knows); how many."""


class VoteWatcher(Protocol):
    """Shown every page of entries the consumer applies, with the counts lock held
    (ranker.voter_detection); may be called in a worker thread."""

    def observe(self, entries: list[vote_log.RawEntry]) -> None:
        """The votes of `entries` were applied (those after the applied id)."""


class CountsObserver(Protocol):
    """Told of every change to the counts, with the counts lock held (ranker.replica_shipping
    keeps the fit worker's copy of them from it)."""

    def counts_replaced(self) -> None:
        """The counts were reloaded from the stored checkpoint."""

    def votes_applied(self, votes: CountedVotes, n_pairs: int) -> None:
        """`votes` were applied, leaving `n_pairs` pairs; may be called in a worker thread."""


@dataclass(frozen=True)
class AppliedCounts:
    """The counts of exactly the log entries up to `last_id`, which hold `votes_counted`
    votes, of which `left_out` were not counted, and the `segments`' counts of the same
    votes. Valid while the consumer's counts lock is held (`LogConsumer.held`)."""

    counts: PairCounts
    last_id: str
    votes_counted: int
    left_out: LeftOut = LeftOut()
    segments: SegmentCounts = field(default_factory=SegmentCounts)


class LogConsumer:
    """Consumes one cause's vote log into its counts; `run_forever` until cancelled.

    `changed` is set whenever the counts change (a load or applied votes). `loaded` is set
    once the first load is done, `replayed` while the counts reflect every pending entry
    (cleared during a reload). `loading`, shared by the causes of a process, bounds how many
    load at once (a restart of Redis reloads every cause). While it waits for entries with
    nothing to acknowledge, the consumer runs no code at all.
    """

    def __init__(self, cause_id: str, stream: VoteStream, policy: CheckpointPolicy, *,
                 max_proposals: int, changed: asyncio.Event,
                 observer: CountsObserver | None = None,
                 watcher: VoteWatcher | None = None,
                 loading: asyncio.Semaphore | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cause_id = cause_id
        self._stream = stream
        self._policy = policy
        self._max_proposals = max_proposals
        self._changed = changed
        self._observer = observer
        self._watcher = watcher
        self._loading = loading
        self._clock = clock
        # When entries were last applied (or the consumer loaded): how long the cause idled.
        self.active_at = clock()
        self.loaded = asyncio.Event()
        self.replayed = asyncio.Event()

        # Changed only by this consumer (or a thread it waits for, with the counts lock held)
        # and always together: `counts` reflect exactly the log entries up to `applied_id`,
        # which hold `votes_counted` votes, of which `left_out` were not admitted under
        # `exclusions`; `unacked` delivered entries are not acked yet.
        self._counts = PairCounts()
        self._segments = SegmentCounts()
        self._applied_id = ""
        self._votes_counted = 0
        self._exclusions = Exclusions()
        self._left_out = LeftOut()
        self._unacked = 0
        # Set when discovery saw the exclusions at another version than the counts' own.
        self._exclusions_changed = False
        # Fencing: the token of the checkpoint this consumer loaded or last saved, and of a
        # save whose reply was lost (it may have been applied).
        self._saved_token = ""
        self._unknown_token = ""
        self._stored = StoredSize()
        self._saved_at = clock()
        self._lock = asyncio.Lock()  # this consumer's writes vs. readers of the counts

    @property
    def votes_applied(self) -> int:
        """Votes of the log entries applied to the counts so far."""
        return self._votes_counted

    @asynccontextmanager
    async def held(self) -> AsyncIterator[AppliedCounts | None]:
        """Hold the counts still (no vote is applied meanwhile): the applied counts, or None
        while a reload has not re-applied the pending entries yet."""
        async with self._lock:
            if not self.replayed.is_set():
                yield None
            else:
                yield AppliedCounts(self._counts, self._applied_id, self._votes_counted,
                                    self._left_out, self._segments)

    def note_exclusions_version(self, version: int) -> None:
        """Discovery saw the cause's exclusions at `version`: once loaded, a consumer whose
        counts reflect an older version reloads, counting the log again. (Versions only
        grow: an older one is a discovery read from before this consumer's load.)"""
        if self.loaded.is_set() and version > self._exclusions.version \
                and not self._exclusions_changed:
            self._exclusions_changed = True
            self._stream.wake()

    async def run_forever(self) -> None:
        """Load, then read and apply new entries, saving checkpoints as the policy says.
        On any failure (another consumer's checkpoint, Redis unreachable) reload from the
        stored checkpoint after a growing pause."""
        backoff_s = 0.1
        while True:
            try:
                if self._loading is None:
                    await self.load()
                else:
                    queued = time.perf_counter()
                    async with self._loading:
                        await self.load(queued_s=time.perf_counter() - queued)
                backoff_s = 0.1
                while True:
                    await self.step()
            except ExclusionsChanged:
                logger.info("exclusions changed; counting the vote log again",
                            extra={"cause_id": self.cause_id})
                self.replayed.clear()
                continue
            except CheckpointConflict as exc:
                logger.error("another ranker consumes this cause; reloading from its checkpoint",
                             extra={"cause_id": self.cause_id, "detail": str(exc)})
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                logger.warning("vote log unreachable; reloading from the checkpoint",
                               extra={"cause_id": self.cause_id, "error": str(exc)})
            except Exception:
                logger.exception("vote log consumer failed; reloading from the checkpoint",
                                 extra={"cause_id": self.cause_id})
            self.replayed.clear()
            raise_if_cancel_requested()
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 5.0)

    async def load(self, *, queued_s: float = 0.0) -> None:
        """Restore the stored checkpoint (counted again from the log when it reflects other
        exclusions than the cause's current ones), then re-apply every pending entry of the
        group (any consumer's, claimed to this one) after it, in id order. `queued_s`, the
        seconds the load waited for its turn, is logged with the seconds it took."""
        self.replayed.clear()
        self._exclusions_changed = False
        started = time.perf_counter()
        checkpoint, exclusions = await self._stream.open()
        counts, segments, votes_counted, left_out = \
            checkpoint.counts, checkpoint.segments, checkpoint.votes_counted, checkpoint.left_out
        stored = StoredSize(checkpoint.has_base, checkpoint.base_bytes, checkpoint.delta_bytes)
        recounted = False
        if not checkpoint.last_id:
            left_out = LeftOut(exclusions_version=exclusions.version)  # nothing counted yet
        elif left_out is None or left_out.exclusions_version != exclusions.version \
                or segments.cells_missing:
            # A checkpoint stored before cells were kept has segments and no cells: the
            # log holds the votes' attributes, and counting it again rebuilds them.
            counts, segments, votes_counted, left_out = \
                await self._recount(checkpoint, exclusions)
            # The stored counts are not these: the next save writes a whole base.
            stored, recounted = StoredSize(), True
        async with self._lock:
            self._counts, self._segments = counts, segments
            if self._observer is not None:
                self._observer.counts_replaced()
            # The votes applied from here on are the next checkpoint's delta.
            self._counts.start_journal()
            self._segments.start_journal()
            self._applied_id = checkpoint.last_id
            self._saved_token, self._unknown_token = checkpoint.token, ""
            self._stored = stored
            self._votes_counted = votes_counted
            self._exclusions, self._left_out = exclusions, left_out
            self._unacked = 0
            self._saved_at = self._clock()
        claimed = 0
        async for entries in self._stream.claim_pending():
            claimed += len(entries)
            await self.apply(entries)
            # Mid-replay only once every entry up to the applied one is claimed: while the
            # claimed entries are all at or below the checkpoint, the applied id is above
            # them, and the fence would refuse a save past another consumer's pending entry.
            if entries and self._checkpoint_due() \
                    and _key(entries[-1][0]) >= _key(self._applied_id):
                await self.checkpoint()
        if recounted and self._stored == StoredSize():
            # Store the recount now (every pending entry is this consumer's): a restart
            # before the next save would count the log again.
            await self.checkpoint()
        self.active_at = self._clock()
        logger.info("cause loaded", extra={
            "cause_id": self.cause_id, "checkpoint_id": checkpoint.last_id,
            "checkpoint_votes": checkpoint.votes_counted, "pending_claimed": claimed,
            "votes_counted": self._votes_counted, "recounted": recounted,
            "exclusions_version": exclusions.version,
            "votes_untrusted": self._left_out.untrusted,
            "votes_excluded": self._left_out.excluded,
            "seconds": round(time.perf_counter() - started, 4), "queued_s": round(queued_s, 4)})
        self.replayed.set()
        self.loaded.set()
        self._changed.set()

    async def _recount(self, checkpoint: Checkpoint, exclusions: Exclusions,
                       ) -> tuple[PairCounts, SegmentCounts, int, LeftOut]:
        """The counts, segment counts, votes and left-out votes of the log entries up to the
        checkpoint's last id under `exclusions`, counted from the log itself."""
        started = time.perf_counter()
        counts = PairCounts()
        segments = SegmentCounts()
        votes_counted, left_out, through = 0, LeftOut(0, 0, exclusions.version), ""

        def count(entries: list[vote_log.RawEntry],
                  after_id: str) -> tuple[vote_log.DecodedVotes, CountedVotes]:
            batch, counted = self._decode_and_admit(entries, after_id, exclusions)
            counts.apply(counted.kinds, counted.a, counted.b)
            segments.apply(counted.kinds, counted.a, counted.b, counted.attributes)
            return batch, counted

        async for entries in self._stream.read_through(checkpoint.last_id):
            batch, counted = await asyncio.to_thread(count, entries, through)
            votes_counted += batch.n_votes
            left_out = left_out.plus(counted)
            through = batch.last_id or through
        if votes_counted != checkpoint.votes_counted:
            # Entries deleted from the log by hand: what the log holds now is the truth.
            logger.error("the vote log holds other votes than its checkpoint says", extra={
                "cause_id": self.cause_id, "checkpoint_votes": checkpoint.votes_counted,
                "log_votes": votes_counted, "last_id": checkpoint.last_id})
        logger.info("vote log counted again", extra={
            "cause_id": self.cause_id, "last_id": checkpoint.last_id,
            "votes_counted": votes_counted, "votes_untrusted": left_out.untrusted,
            "votes_excluded": left_out.excluded,
            "exclusions_version": exclusions.version,
            "seconds": round(time.perf_counter() - started, 4)})
        return counts, segments, votes_counted, left_out

    def _decode_and_admit(self, entries: list[vote_log.RawEntry], after_id: str,
                          exclusions: Exclusions,
                          ) -> tuple[vote_log.DecodedVotes, CountedVotes]:
        batch = vote_log.decode_entries(entries, after_id, self._max_proposals,
                                        with_ids=bool(exclusions))
        return batch, admit(batch, exclusions)

    async def step(self) -> None:
        """Read the next new entries, apply them, and save a checkpoint if one is due.
        Raises ExclusionsChanged (nothing read) once discovery saw other exclusions."""
        if self._exclusions_changed:
            raise ExclusionsChanged
        entries = await self._stream.read_new(self._policy.wait_s(
            unacked=self._unacked, age_s=self._clock() - self._saved_at))
        raise_if_cancel_requested()
        if entries:
            self.active_at = self._clock()
            await self.apply(entries)
        if self._checkpoint_due():
            await self.checkpoint()
            raise_if_cancel_requested()

    async def apply(self, entries: list[vote_log.RawEntry]) -> None:
        """Apply the entries after the applied one (earlier ones only await their ack)."""
        async with self._lock:
            if sum(len(fields.get(b"k", b"")) for _, fields in entries if fields) \
                    <= _INLINE_MAX_VOTES:
                batch = self._decode_and_apply(entries)
            else:
                # Finished even if cancelled, so that nothing (a final checkpoint) sees the
                # counts ahead of the applied entry id.
                batch = await _finish_in_thread(functools.partial(self._decode_and_apply,
                                                                  entries))
        for entry_id, problem in batch.malformed:
            logger.error("malformed vote-log entry ignored (counted as reflected)",
                         extra={"cause_id": self.cause_id, "entry_id": entry_id,
                                "problem": problem})
        if batch.last_id:
            self._changed.set()
        if self._segments.pending_votes >= _SEGMENTS_PENDING_VOTES:
            async with self._lock:
                await _finish_in_thread(self._segments.flush)

    def _decode_and_apply(self, entries: list[vote_log.RawEntry]) -> vote_log.DecodedVotes:
        """Decode the entries after the applied one, apply their votes to the counts and
        advance the consumer state with them (with the counts lock held)."""
        batch, counted = self._decode_and_admit(entries, self._applied_id, self._exclusions)
        if self._watcher is not None and batch.last_id:
            self._watcher.observe(entries)
        if len(counted.kinds):
            self._counts.apply(counted.kinds, counted.a, counted.b)
            self._segments.apply(counted.kinds, counted.a, counted.b, counted.attributes)
            if self._observer is not None:
                self._observer.votes_applied(counted, self._counts.n_pairs)
        if batch.last_id:
            self._applied_id = batch.last_id
            self._votes_counted += batch.n_votes
            self._left_out = self._left_out.plus(counted)
        self._unacked += batch.n_entries
        return batch

    def _snapshot_parts(self) -> list[memoryview]:
        """The overall counts' snapshot, then the segments' (none without segments)."""
        return self._counts.snapshot_parts() + self._segments.snapshot_parts()

    def _checkpoint_due(self) -> bool:
        return self._policy.due(unacked=self._unacked, age_s=self._clock() - self._saved_at)

    async def save_final(self) -> None:
        """Save what was applied since the last checkpoint, if anything (at close; call only
        once `run_forever` has ended). A failure is logged: the entries stay pending."""
        if not self._unacked:
            return
        try:
            await self.checkpoint()
        except Exception:
            logger.exception("final checkpoint failed; pending entries will be re-applied",
                             extra={"cause_id": self.cause_id})

    async def checkpoint(self) -> None:
        """Store counts + last applied id, then acknowledge the entries the checkpoint covers.

        Stores the votes applied since the last save as a delta, or a whole new base when
        the policy says so. Raises CheckpointConflict when another consumer saved since this
        one's load or last save (nothing is stored; the caller reloads).
        """
        if not self._applied_id:
            return
        last_id, votes_counted, unacked = self._applied_id, self._votes_counted, self._unacked
        left_out = self._left_out
        started = time.perf_counter()
        # No await since the last apply: the journal holds exactly the votes of the entries
        # after the stored checkpoint, up to last_id.
        votes = self._counts.take_journal()
        # The segments' votes are among these: they follow the overall ones in the delta.
        delta = encode_votes(*votes) + self._segments.encode_journal() if len(votes[0]) \
            else b""
        kind = self._policy.kind(self._stored, delta_bytes=len(delta),
                                 outcome_unknown=bool(self._unknown_token))
        token = f"{self._stream.consumer}:{uuid.uuid4().hex}"
        try:
            if kind is SaveKind.BASE:
                # Views of the live arrays: nothing applies votes until this save returns.
                parts = await asyncio.to_thread(self._snapshot_parts)
                size = sum(len(part) for part in parts)
                await self._stream.save_base(
                    previous_token=self._saved_token, unknown_token=self._unknown_token,
                    token=token, last_id=last_id, votes_counted=votes_counted,
                    left_out=left_out, parts=parts)
            else:
                size = len(delta)
                await self._stream.save_delta(
                    previous_token=self._saved_token, token=token, last_id=last_id,
                    votes_counted=votes_counted, left_out=left_out, votes=delta)
        except CheckpointConflict:
            raise
        except BaseException:
            # Cancelled or disconnected mid-call: the save may have been applied. Only this
            # consumer knows `token`, so accepting it next time cannot hide another writer;
            # the next save writes a whole base, right whether or not this one was applied.
            self._unknown_token = token
            raise
        self._stored = self._stored.after(kind, size)
        self._saved_token, self._unknown_token = token, ""
        # A crash before these acks is harmless: entries up to last_id are skipped (and acked)
        # when they are claimed again.
        acked = await self._stream.ack_through(last_id, about=unacked)
        self._unacked -= unacked
        self._saved_at = self._clock()
        seconds = time.perf_counter() - started
        CHECKPOINT_SECONDS.observe(seconds)
        CHECKPOINT_BYTES.observe(size)
        logger.info("checkpoint saved", extra={
            "cause_id": self.cause_id, "last_id": last_id, "votes_counted": votes_counted,
            "acked": acked, "kind": kind.value, "bytes": size,
            "stored_bytes": self._stored.base_bytes + self._stored.delta_bytes,
            "seconds": round(seconds, 4)})


async def _finish_in_thread(work: Callable[[], _T]) -> _T:
    """`work()` in a thread; when the caller is cancelled meanwhile, the thread runs on
    regardless, and the cancellation is raised once it is done."""
    task = asyncio.ensure_future(asyncio.to_thread(work))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise


def _key(entry_id: bytes | str) -> tuple[int, int]:
    return vote_log.entry_key(entry_id.decode() if isinstance(entry_id, bytes) else entry_id)
