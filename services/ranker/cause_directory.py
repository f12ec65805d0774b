"""The causes this ranker serves and holds in memory: those it owns among the live rankers
(pairwise.ranker_directory), each under its lease (ranker.cause_leases); loaded when they
get votes or are read or were loaded at a ranker that left, put to sleep when idle or when
the ranker stops, handed over when another ranker joins."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Coroutine
from typing import Any

import redis.asyncio as aioredis

from pairwise import awake_causes, errors, keys, ranker_directory
from pairwise.cancellation import raise_if_cancel_requested
from pairwise.metrics import CAUSE_EVENTS, GaugeReading
from pairwise.redis_scripts import ScriptRunner
from ranker import cause_leases
from ranker.catalog_reader import CatalogReader
from ranker.cause_leases import LeaseTokens
from ranker.cause_ranker import CauseRanker
from ranker.cause_tasks import CauseTasks
from ranker.checkpoint_policy import CheckpointPolicy
from ranker.fit_pool import FitPool
from ranker.fit_scheduler import FitScheduler
from ranker.log_consumer import LogConsumer
from ranker.ranking import Ranking
from ranker.redis_vote_stream import RedisVoteStream
from ranker.replica_shipping import ReplicaShipper
from ranker.selection_publisher import SelectionPublisher
from ranker.settings import Settings
from ranker.vote_reader import VoteReader
from ranker.voter_detection import VoterDetection

logger = logging.getLogger(__name__)

# Causes loading their checkpoint and claiming their pending entries at once. A load opens
# its cause in one script call that shares its round trip with the others' (and with small
# checkpoints and acks), so loads at once share connections rather than take one each; the
# bound keeps a thousand causes reloading at once (after a Redis restart) from queueing every
# other call behind their claims and replays.
_MAX_LOADING = 32

# A read of a cause another ranker owns reads the directory again at most this often
# (seconds): a burst of reads for the causes of a ranker that just left costs one look.
_LOOK_AGAIN_S = 0.2

# Causes being put to sleep or woken at once (each a few round trips).
_MAX_TRANSITIONS = 16

# Stored causes whose logs the sweep looks at per round trip (two commands each).
_SWEEP_PAGE = 500

# Causes left unsettled (an error, or a lease still held elsewhere) are tried again after
# 50 ms, doubled each time up to 1 s, at most 8 times (~4.5 s: past the lease a dead ranker
# had just taken), then left to discovery's polls: an error strands them for no whole poll
# interval, and a Redis that stays away costs a few calls, not a storm.
_SETTLE_BACKOFF_S = 0.05
_SETTLE_BACKOFF_MAX_S = 1.0
_SETTLE_ATTEMPTS = 8


class CauseDirectory:
    """Maps cause ids to their live `CauseRanker`, for the causes this ranker owns that are
    awake (pairwise.awake_causes states the protocol and why no vote is missed). New votes
    come through one `VoteReader` on `reader_client` (a connection of its own); the renewals
    of the registration and leases go through `renewal_client` (another), everything else
    through `client`.

    The ranker registers in the directory of rankers as `ranker_id` (`join`) and renews its
    registration and every lease it holds each third of `lease_s`. It owns the causes whose
    rendezvous owner it is among the live rankers; it takes a cause's lease before loading
    it, and gives it back once a final checkpoint is saved. When the live rankers change, it
    hands over the loaded causes it no longer owns (final checkpoint, lease released); their
    new owner finds them in the awake set. A lease it finds lost (it stalled past `lease_s`)
    closes the cause at once, without a checkpoint, which the lease would refuse anyway.

    A cause is loaded when it is read (`get`) or when the awake set names it (polled every
    `discover_interval_s`, which also passes each loaded cause its catalog and exclusions
    versions): the set holds the causes loaded at some ranker and those whose logs got votes,
    so the causes of a ranker that died or handed them over are loaded at once by their new
    owner, and asleep causes stay asleep. A cause idle for `idle_unload_s` (no vote applied,
    no read, no follower) is put to sleep: closed with a final checkpoint, then taken out of
    the set, and loaded again at once if its log got votes meanwhile; a ranker that stops
    puts every cause it closes to sleep the same way. At start and every `sweep_interval_s`,
    the logs of all stored causes it owns and does not hold are looked at for votes nobody
    counted, in pages; nothing else is loaded at start.
    """

    def __init__(self, client: aioredis.Redis, reader_client: aioredis.Redis,
                 renewal_client: aioredis.Redis, settings: Settings, fit_pool: FitPool, *,
                 ranker_id: str) -> None:
        self._redis = client
        self._scripts = ScriptRunner(client)
        self._renewal_scripts = ScriptRunner(renewal_client)
        self._settings = settings
        self._fit_pool = fit_pool
        self.ranker_id = ranker_id
        self._lease_tokens = LeaseTokens(ranker_id)
        self._reader = VoteReader(reader_client, consumer=ranker_id,
                                  read_batch=settings.read_batch,
                                  block_ms=settings.read_block_ms)
        self._causes: dict[str, CauseRanker] = {}
        # The lease token of every cause this ranker holds the lease of (loaded, or being
        # loaded, settled or closed), and the live rankers at the last renewal.
        self._leases: dict[str, str] = {}
        self._acquiring: dict[str, asyncio.Future[str]] = {}
        self._lease_attempts: set[asyncio.Task[None]] = set()
        # Causes being settled (a read need not wait for the rest of their page), those
        # waiting to be settled again, and the tasks that wait.
        self._settling: set[str] = set()
        self._retrying: set[str] = set()
        self._settle_retries: set[asyncio.Task[None]] = set()
        # Set when `close` begins: no settle is tried again from then on (a lease taken
        # after the leases are given back would be held by nobody until it expires).
        self._closing = False
        self._live: dict[str, str] = {}
        self._looking: asyncio.Task[None] | None = None
        self._discover_now = asyncio.Event()
        self._looked_at = 0.0
        # Causes being loaded, put to sleep, handed over or settled: reads and discovery
        # wait for these.
        self._transitions: dict[str, asyncio.Task[None]] = {}
        self._loading = asyncio.Semaphore(_MAX_LOADING)
        self._transition_slots = asyncio.Semaphore(_MAX_TRANSITIONS)
        self._background: list[asyncio.Task[None]] = []
        self.loads = 0  # causes loaded since start (for tests and measurements)
        self.unloads = 0  # causes put to sleep since start
        # When the last renewal that succeeded was sent (monotonic): past `lease_s` without
        # one, every lease has run out in Redis whatever this process still believes.
        self._renewed_at = time.monotonic()

    async def join(self, address: str) -> None:
        """Register in the directory of rankers as reachable at `address`, then start
        renewing, reading votes, discovering awake causes and sweeping in the background."""
        self._address = address
        await self._renew()
        logger.info("ranker joined", extra={"ranker_id": self.ranker_id, "address": address,
                                            "rankers": len(self._live)})
        loop = asyncio.get_running_loop()
        self._reader.start()
        self._background = [
            loop.create_task(self._renew_forever(), name="renew-leases"),
            loop.create_task(self._discover_forever(), name="discover-causes"),
            loop.create_task(self._sweep_forever(), name="sweep-causes")]

    async def close(self) -> None:
        """Leave the directory, stop discovery and every cause (see `CauseRanker.close`),
        put them to sleep, then give back the leases and stop the reader. The causes' new
        owners wait for their leases, so nothing is counted twice; they load those with
        votes to count at once, the others on their next vote or read."""
        self._closing = True
        for task in (*self._background, *self._settle_retries):
            task.cancel()
        await asyncio.gather(*self._background, *self._settle_retries, return_exceptions=True)
        try:
            await ranker_directory.leave(self._redis, self.ranker_id)
        except Exception as exc:
            logger.warning("could not leave the directory of rankers; its entry expires",
                           extra={"error": repr(exc)})
        transitions = set(self._transitions.values())
        for task in transitions:
            task.cancel()
        await asyncio.gather(*transitions, return_exceptions=True)
        causes = list(self._causes.values())
        self._causes.clear()
        await asyncio.gather(*(cause.close(final_checkpoint=True) for cause in causes))
        if causes:
            # Asleep, they are not loaded again by whichever ranker owns them next (nor by
            # this one restarted) unless they get votes or are read.
            try:
                await awake_causes.put_all_to_sleep(
                    self._redis, [cause.cause_id for cause in causes])
            except Exception as exc:
                logger.warning("could not put the causes to sleep; their next owner loads "
                               "them", extra={"causes": len(causes), "error": repr(exc)})
        leases, self._leases = self._leases, {}
        await asyncio.gather(*(cause_leases.release(self._scripts, cause_id, token)
                               for cause_id, token in leases.items()),
                             return_exceptions=True)
        await self._reader.close()

    def gauges(self) -> list[GaugeReading]:
        """What /metrics shows of the loaded causes now (pairwise.metrics.PerCauseGauges).

        Called on the metrics server's thread: it reads a copy of the loaded causes (one
        step under the GIL), never the dict the event loop is changing.
        """
        lags = {cause_id: cause.lag() for cause_id, cause in dict(self._causes).items()}
        return [
            ("pairwise_ranker_causes_loaded", "Causes loaded in this ranker now.",
             float(len(lags))),
            ("pairwise_ranker_lag_votes",
             "Votes of a cause read from its log but not in its published ranking yet.",
             {cause_id: float(votes) for cause_id, (votes, _) in lags.items()}),
            ("pairwise_ranker_lag_seconds",
             "How old a cause's published ranking is while votes wait for the next one "
             "(0 when none wait).",
             {cause_id: seconds for cause_id, (_, seconds) in lags.items()}),
        ]

    @property
    def loaded(self) -> list[str]:
        """The ids of the causes held in memory now."""
        return sorted(self._causes)

    def owner_of(self, cause_id: str) -> str | None:
        """The ranker that owns `cause_id` as this one sees the directory."""
        return ranker_directory.owner_of(cause_id, self._live)

    def owns(self, cause_id: str) -> bool:
        return self.owner_of(cause_id) == self.ranker_id

    async def get(self, cause_id: str) -> CauseRanker:
        """The live ranker of `cause_id`, loading it on first use (or after its sleep).

        Raises errors.FailedPrecondition when another ranker owns the cause,
        errors.Unavailable while its previous owner still holds its lease (a hand-over) or
        when it cannot be opened within `read_wait_s`, and errors.NotFound when no such cause
        exists.
        """
        cause = self._causes.get(cause_id)
        if cause is None:
            try:
                async with asyncio.timeout(self._settings.read_wait_s):
                    cause = await self._open_for_read(cause_id)
            except TimeoutError:
                raise errors.Unavailable(
                    f"cause {cause_id!r} is still being loaded or moved; retry") from None
        cause.touch()
        return cause

    async def _open_for_read(self, cause_id: str) -> CauseRanker:
        if not self.owns(cause_id):
            # The gateway may know of a ranker joining or leaving before the next renewal
            # here: look at the directory again rather than send the read elsewhere.
            await self._look_again()
        if not self.owns(cause_id):
            raise errors.FailedPrecondition(
                f"cause {cause_id!r} is served by ranker {self.owner_of(cause_id)}; this "
                f"is ranker {self.ranker_id}")
        # A settle only takes leases and loads: the read shares its lease attempt (or finds
        # the lease taken) and loads the cause itself rather than wait for the whole page.
        while (transition := self._transitions.get(cause_id)) is not None \
                and cause_id not in self._settling:
            await asyncio.wait({transition})
        cause = self._causes.get(cause_id)
        if cause is not None:
            return cause
        held = await self._take_lease(cause_id)
        if held == cause_leases.MISSING:
            raise errors.NotFound(f"cause {cause_id!r} not found")
        if held == cause_leases.ARCHIVED:
            raise errors.FailedPrecondition(
                f"cause {cause_id!r} is ARCHIVED: the gateway serves its final ranking")
        if held != self._leases.get(cause_id):
            raise errors.Unavailable(
                f"cause {cause_id!r} is being handed over from ranker "
                f"{cause_leases.holder(held)}; retry")
        return self._open(cause_id)

    async def _look_again(self) -> None:
        """Read the live rankers now, unless this was done in the last `_LOOK_AGAIN_S`
        (concurrent callers share one read)."""
        loop = asyncio.get_running_loop()
        if self._looking is None or (self._looking.done()
                                     and loop.time() - self._looked_at >= _LOOK_AGAIN_S):
            self._looked_at = loop.time()
            self._looking = loop.create_task(self._read_live(), name="look-again")
        await asyncio.shield(self._looking)

    async def _read_live(self) -> None:
        self._set_live(await ranker_directory.live(self._scripts))

    def _set_live(self, live: dict[str, str]) -> None:
        left = set(self._live) - set(live)
        if set(live) != set(self._live):
            logger.info("live rankers changed", extra={
                "rankers": sorted(live), "joined": sorted(set(live) - set(self._live)),
                "left": sorted(left)})
        self._live = live
        if left:
            self._discover_now.set()

    async def _take_lease(self, cause_id: str) -> str:
        """Take `cause_id`'s lease unless this ranker holds it; the token that holds it now
        (one of `_leases` when taken). Concurrent callers share one attempt."""
        held = (await self._take_leases([cause_id]))[cause_id]
        if isinstance(held, BaseException):
            raise held
        return held

    async def _take_leases(self, cause_ids: list[str]) -> dict[str, str | BaseException]:
        """`_take_lease` for each of `cause_ids`, the attempts sharing round trips; for a
        cause whose attempt failed, its error."""
        attempts: dict[str, asyncio.Future[str]] = {}
        new: dict[str, asyncio.Future[str]] = {}
        loop = asyncio.get_running_loop()
        for cause_id in cause_ids:
            token = self._leases.get(cause_id)
            if token is not None:
                attempts[cause_id] = loop.create_future()
                attempts[cause_id].set_result(token)
                continue
            attempt = self._acquiring.get(cause_id)
            if attempt is None:
                attempt = new[cause_id] = loop.create_future()
                self._acquiring[cause_id] = attempt
                attempt.add_done_callback(functools.partial(_forget, self._acquiring, cause_id))
                # Its error is read even when every caller waiting for it was cancelled.
                attempt.add_done_callback(_outcome)
            attempts[cause_id] = attempt
        if new:
            task = loop.create_task(self._acquire(new), name=f"leases:{len(new)}")
            self._lease_attempts.add(task)
            task.add_done_callback(self._lease_attempts.discard)
        if attempts:
            await asyncio.wait(attempts.values())
        return {cause_id: _outcome(attempt) for cause_id, attempt in attempts.items()}

    async def _acquire(self, attempts: dict[str, asyncio.Future[str]]) -> None:
        """Take the leases of the causes of `attempts`, answering each attempt with the
        token that holds the lease now (its error, or cancelled, if it got none)."""
        tokens = {cause_id: self._lease_tokens.new() for cause_id in attempts}
        try:
            replies = await cause_leases.acquire(self._scripts, list(tokens.items()),
                                                 self._settings.lease_s)
        except asyncio.CancelledError:
            for attempt in attempts.values():
                attempt.cancel()
            raise
        except Exception as exc:
            for attempt in attempts.values():
                attempt.set_exception(exc)
            return
        for (cause_id, token), held in zip(tokens.items(), replies, strict=True):
            if isinstance(held, BaseException):
                attempts[cause_id].set_exception(held)
                continue
            if held == token:
                self._leases[cause_id] = token
            attempts[cause_id].set_result(held)

    def _open(self, cause_id: str) -> CauseRanker:
        """The loaded cause, loading it under the lease this ranker holds."""
        cause = self._causes.get(cause_id)
        if cause is None:
            if self._closing:
                # Loaded now, it would outlive `close` (which has closed the causes it had),
                # counting on a reader and a Redis client about to be closed.
                raise errors.Unavailable(
                    f"ranker {self.ranker_id} is stopping; cause {cause_id!r} goes to the next")
            cause = self._build(cause_id, self._leases[cause_id])
            self._causes[cause_id] = cause
            self.loads += 1
            CAUSE_EVENTS.labels("loaded").inc()
            cause.start()
            logger.info("cause owned", extra={"cause_id": cause_id})
        return cause

    def _build(self, cause_id: str, lease_token: str) -> CauseRanker:
        """A cause's parts, wired: its consumer and scheduler share `changed` (the fit's
        input changed) and its replica shipper (told of every vote applied); each published
        ranking goes to pair selection (ranker.selection_publisher)."""
        settings = self._settings
        changed = asyncio.Event()
        tasks = CauseTasks(cause_id)
        replica = ReplicaShipper(cause_id, self._fit_pool)
        stream = RedisVoteStream(self._redis, cause_id, consumer=self.ranker_id,
                                 lease_token=lease_token, read_batch=settings.read_batch,
                                 reader=self._reader, scripts=self._scripts)
        detection = VoterDetection(
            self._redis, cause_id, self._scripts, tasks, settings.detection,
            max_proposals=settings.max_proposals) if settings.detection else None
        consumer = LogConsumer(
            cause_id, stream, CheckpointPolicy.standard(settings.checkpoint_interval_s),
            max_proposals=settings.max_proposals,
            changed=changed, observer=replica, watcher=detection, loading=self._loading)
        selection = SelectionPublisher(self._redis, cause_id, self._scripts, tasks)

        def published(ranking: Ranking) -> None:
            selection.offer(ranking)
            if detection is not None:
                detection.offer(ranking)

        scheduler = FitScheduler(
            cause_id, consumer, CatalogReader(self._redis, cause_id), self._fit_pool, replica,
            changed=changed, tasks=tasks, fit_interval_s=settings.fit_interval_s,
            read_wait_s=settings.read_wait_s, catalog_wait_s=settings.catalog_wait_s,
            on_published=published)
        return CauseRanker(cause_id, consumer, scheduler, replica, tasks,
                           stop_reading=stream.close)

    # -- sleeping, waking, handing over ------------------------------------------------------

    def _transition(self, cause_id: str, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run `work` on `cause_id` (loaded or not) in a task that reads and discovery wait
        for; at most `_MAX_TRANSITIONS` at once."""
        self._transition_all([cause_id], work, what)

    def _transition_all(self, cause_ids: list[str], work: Coroutine[Any, Any, None],
                        what: str) -> asyncio.Task[None]:
        """`_transition` of one `work` on several causes (each waits for all of it)."""
        async def run() -> None:
            async with self._transition_slots:
                if self._closing:
                    return  # nothing is loaded or unloaded once `close` has begun
                await work

        task = asyncio.get_running_loop().create_task(
            run(), name=f"{what}:{cause_ids[0]}" + (f"+{len(cause_ids) - 1}"
                                                    if len(cause_ids) > 1 else ""))
        for cause_id in cause_ids:
            self._transitions[cause_id] = task
            task.add_done_callback(functools.partial(_forget, self._transitions, cause_id))
        task.add_done_callback(_log_failure)
        # A task cancelled before it had a slot (the ranker stopping) never started `work`:
        # closed here, it is not left for the garbage collector to warn about.
        task.add_done_callback(lambda _: work.close())
        return task

    def _settleable(self, cause_id: str) -> bool:
        """Whether `cause_id` is neither loaded, nor being leased for a read (the read loads
        it), nor in transition here, nor waiting to be settled again (its lease may be held:
        a read that timed out after taking it left it so). A cause loaded without its lease
        (lost, and not closed yet) is not: taking the lease again would leave its old load
        counting under the lost one."""
        return cause_id not in self._causes and cause_id not in self._transitions \
            and cause_id not in self._acquiring and cause_id not in self._retrying

    async def _settle(self, cause_ids: list[str]) -> list[str]:
        """Causes in the awake set that this ranker owns and does not hold: take their
        leases and load them (they stay in the set, as a loaded cause does). Each was loaded
        at a ranker that died or handed it over, or got votes: asleep causes are not in the
        set, so what is loaded here is bounded by what the rankers held. The causes of a
        ranker that left are settled together, their leases in shared round trips; a read
        of one of them shares its attempt. The causes to try again soon: those whose attempt
        failed, or whose lease a ranker no longer live holds (it runs out within `lease_s`);
        one a live ranker holds waits for the next poll (it is handing the cause over)."""
        held = await self._take_leases(cause_ids)
        failed = [outcome for outcome in held.values() if isinstance(outcome, BaseException)]
        if failed:
            logger.warning("could not take the leases of some causes; trying again",
                           extra={"causes": len(failed), "error": repr(failed[0])})
        again = []
        for cause_id, token in held.items():
            if isinstance(token, BaseException):
                again.append(cause_id)
            elif token == self._leases.get(cause_id):
                self._open(cause_id)
            elif token not in (cause_leases.ARCHIVED, cause_leases.MISSING) \
                    and cause_leases.holder(token) not in self._live:
                again.append(cause_id)
        gone = [cause_id for cause_id, token in held.items()
                if token in (cause_leases.ARCHIVED, cause_leases.MISSING)]
        if gone:
            # Nothing left to count, and nothing to load: out of the set for good.
            await self._redis.srem(keys.AWAKE_CAUSES, *gone)
        return again

    def _settle_all(self, cause_ids: list[str], attempt: int = 0) -> None:
        """`_settle` the causes of `cause_ids`, in transitions of up to `_SWEEP_PAGE`; those
        left unsettled are tried again after a bounded backoff (`_settle_later`)."""
        for start in range(0, len(cause_ids), _SWEEP_PAGE):
            page = cause_ids[start:start + _SWEEP_PAGE]
            self._settling.update(page)
            task = self._transition_all(page, self._settle_page(page, attempt), "settle")
            task.add_done_callback(functools.partial(_settled, self._settling, page))

    async def _settle_page(self, cause_ids: list[str], attempt: int) -> None:
        """`_settle` one page, `attempt` the times it was tried before; what it leaves is
        tried again (`_settle_later`) up to `_SETTLE_ATTEMPTS`, then left to the polls."""
        try:
            again = await self._settle(cause_ids)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("could not settle causes; trying again",
                           extra={"causes": len(cause_ids), "error": repr(exc)})
            again = cause_ids
        if not again or self._closing:
            return
        if attempt >= _SETTLE_ATTEMPTS:
            logger.warning("causes left unsettled; the next poll tries again",
                           extra={"causes": len(again)})
            return
        self._retrying.update(again)
        task = asyncio.get_running_loop().create_task(
            self._settle_later(again, attempt + 1), name=f"settle-again:{len(again)}")
        self._settle_retries.add(task)
        task.add_done_callback(self._settle_retries.discard)
        task.add_done_callback(lambda _: self._retrying.difference_update(again))

    async def _settle_later(self, cause_ids: list[str], attempt: int) -> None:
        """Settle `cause_ids` again (those still owned and unsettled) after
        `_SETTLE_BACKOFF_S` doubled per earlier attempt, at most `_SETTLE_BACKOFF_MAX_S`."""
        await asyncio.sleep(min(_SETTLE_BACKOFF_S * 2 ** (attempt - 1), _SETTLE_BACKOFF_MAX_S))
        self._retrying.difference_update(cause_ids)
        if self._closing:
            return
        self._settle_all([cause_id for cause_id in cause_ids
                          if self._settleable(cause_id) and self.owns(cause_id)], attempt)

    async def _unload(self, cause_id: str) -> None:
        """Close an idle cause with a final checkpoint, then put it to sleep (or load it
        again if votes came meanwhile)."""
        cause = self._causes.pop(cause_id)
        await cause.close(final_checkpoint=True)
        self.unloads += 1
        CAUSE_EVENTS.labels("unloaded").inc()
        asleep = await self._sleep_or_load(cause_id)
        logger.info("cause unloaded" if asleep else "cause unloaded; votes came, "
                    "loading it again", extra={"cause_id": cause_id})

    async def _sleep_or_load(self, cause_id: str) -> bool:
        """Take the cause out of the awake set and give back its lease, or load it if its log
        got votes meanwhile, or entries are pending; whether it is asleep."""
        asleep = False
        try:
            asleep = await awake_causes.put_to_sleep(self._redis, cause_id)
            token = self._leases.pop(cause_id, None) if asleep else None
            if token is not None:
                await cause_leases.release(self._scripts, cause_id, token)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("could not put a cause to sleep; loading it again",
                           extra={"cause_id": cause_id, "error": repr(exc)})
        if not asleep and cause_id in self._leases:
            self._open(cause_id)
        return asleep

    async def _hand_over(self, cause_id: str) -> None:
        """Another ranker owns the cause now: close it with a final checkpoint and give back
        its lease. It stays in the awake set, where its new owner finds it."""
        cause = self._causes.pop(cause_id, None)
        if cause is not None:
            await cause.close(final_checkpoint=True)
        token = self._leases.pop(cause_id, None)
        if token is not None:
            await cause_leases.release(self._scripts, cause_id, token)
        CAUSE_EVENTS.labels("handed_over").inc()
        logger.info("cause handed over", extra={"cause_id": cause_id,
                                                "to": self.owner_of(cause_id)})

    async def _drop(self, cause_id: str) -> None:
        """The cause's lease was lost: close it without a checkpoint (the lease would refuse
        it); its next owner claims and counts what it left pending."""
        cause = self._causes.pop(cause_id, None)
        if cause is not None:
            await cause.close(final_checkpoint=False)
        CAUSE_EVENTS.labels("lease_lost").inc()
        logger.warning("cause lease lost; cause closed", extra={"cause_id": cause_id})

    async def _let_go(self, cause_id: str) -> None:
        """The cause was archived: close it (its archive holds the final ranking; the
        gateway releases its checkpoint and log once the lease is free) and give back its
        lease."""
        cause = self._causes.pop(cause_id, None)
        if cause is not None:
            await cause.close(final_checkpoint=False)
        token = self._leases.pop(cause_id, None)
        if token is not None:
            await cause_leases.release(self._scripts, cause_id, token)
        await self._redis.srem(keys.AWAKE_CAUSES, cause_id)
        logger.info("cause archived; let go", extra={"cause_id": cause_id})

    def _unload_idle(self) -> None:
        idle_s = self._settings.idle_unload_s
        for cause_id, cause in list(self._causes.items()):
            if cause_id not in self._transitions and cause.idle_s() >= idle_s:
                self._transition(cause_id, self._unload(cause_id), "unload")

    def _hand_over_moved(self) -> None:
        for cause_id in list(self._leases):
            if cause_id not in self._transitions and cause_id not in self._acquiring \
                    and not self.owns(cause_id):
                self._transition(cause_id, self._hand_over(cause_id), "hand-over")

    # -- the directory and the leases ------------------------------------------------------

    async def _renew(self) -> None:
        """Renew this ranker's leases and its registration; close the causes whose lease was
        lost, and hand over those another ranker owns now.

        Leases first: a killed ranker's leases then run out just before its registration
        does, so the rankers that see it gone find its causes free.
        """
        ttl_s = self._settings.lease_s
        sent_at = time.monotonic()
        held = dict(self._leases)
        if held:
            for cause_id in await cause_leases.renew(self._renewal_scripts,
                                                     list(held.items()), ttl_s):
                if self._leases.get(cause_id) == held[cause_id]:
                    del self._leases[cause_id]
        self._set_live(await ranker_directory.register(self._renewal_scripts, self.ranker_id,
                                                       self._address, ttl_s))
        self._renewed_at = sent_at
        self._drop_unleased()
        self._hand_over_moved()

    def _drop_unleased(self) -> None:
        # A cause loaded without its lease (lost now, or while a transition ran) is closed
        # once no transition runs on it.
        for cause_id in list(self._causes):
            if cause_id not in self._leases and cause_id not in self._transitions:
                self._transition(cause_id, self._drop(cause_id), "drop")

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.lease_s / 3)
            try:
                await self._renew()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("could not renew the ranker's registration and leases; "
                               "retrying", extra={"error": repr(exc)})
                if self._leases and \
                        time.monotonic() - self._renewed_at >= self._settings.lease_s:
                    # Another ranker may hold them now: a process that kept counting would
                    # claim the new owner's pending votes back at every reload.
                    logger.warning("no renewal for the lease time; every lease taken as lost",
                                   extra={"causes": len(self._leases)})
                    self._leases.clear()
                    self._drop_unleased()

    # -- discovery and sweeps ----------------------------------------------------------------

    async def discover_once(self) -> None:
        """Settle the awake causes this ranker owns and does not hold (loading those with
        votes to count), put idle ones to sleep, and pass each loaded cause its catalog and
        exclusions versions."""
        self._settle_all([cause_id for cause_id in await awake_causes.members(self._redis)
                          if self._settleable(cause_id) and self.owns(cause_id)])
        self._unload_idle()
        causes = list(self._causes.values())
        if not causes:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for cause in causes:
                pipe.get(keys.catalog_version(cause.cause_id))
                pipe.get(keys.exclusions_version(cause.cause_id))
                pipe.hget(keys.cause(cause.cause_id), "state")
            replies = await pipe.execute()
        for cause, catalog, excluded, state in zip(
                causes, replies[::3], replies[1::3], replies[2::3], strict=True):
            if state in (b"ARCHIVED", "ARCHIVED"):
                if cause.cause_id not in self._transitions:
                    self._transition(cause.cause_id, self._let_go(cause.cause_id), "archived")
                continue
            cause.note_catalog_version(int(catalog or 0))
            cause.note_exclusions_version(int(excluded or 0))

    async def sweep_once(self) -> int:
        """Load every stored cause this ranker owns and does not hold whose log holds votes
        no checkpoint covers (see pairwise.awake_causes); how many it found."""
        found = 0
        cursor: int = 0
        while True:
            cursor, raw = await self._redis.sscan(keys.CAUSES, cursor, count=_SWEEP_PAGE)
            page = [c.decode() if isinstance(c, bytes) else c for c in raw]
            candidates = [c for c in page if self.owns(c) and self._settleable(c)]
            uncounted = [cause_id for cause_id in
                         await awake_causes.uncounted_among(self._redis, candidates)
                         if self._settleable(cause_id)]
            self._settle_all(uncounted)
            found += len(uncounted)
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
            # Sooner when a ranker left: its causes with votes to count are this one's now.
            self._discover_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._discover_now.wait(),
                                       self._settings.discover_interval_s)

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


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("cause transition failed", exc_info=task.exception(),
                     extra={"task": task.get_name()})


def _outcome(attempt: asyncio.Future[str]) -> str | BaseException:
    """The result of a finished `attempt`, or what it raises."""
    if attempt.cancelled():
        return asyncio.CancelledError()
    return attempt.exception() or attempt.result()


def _settled(settling: set[str], cause_ids: list[str], done: asyncio.Future[Any]) -> None:
    """Take `cause_ids` out of `settling` once their settle is `done`."""
    settling.difference_update(cause_ids)


def _forget(table: dict[str, Any], cause_id: str, done: asyncio.Future[Any]) -> None:
    """Take `cause_id` out of `table` if `done` is still its entry there."""
    if table.get(cause_id) is done:
        del table[cause_id]
