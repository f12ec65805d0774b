"""One reader per ranker process: a single blocking XREADGROUP over the vote logs of every
loaded cause whose consumer waits for entries, each page handed to its cause.

A blocking read per cause held a Redis connection per cause, so a ranker ran out of
connections past ~100 active causes; this one holds one, whatever the number of causes.

On a Redis Cluster one command may only name keys of one slot, and every cause has a slot
of its own (pairwise.keys): the read is then one XREADGROUP per slot, sent without blocking
in one pipeline per node (one connection per node, the nodes read at once); when every log
came back empty, the next read waits `_CLUSTER_IDLE_POLL_S` (or until a consumer comes to
wait), where one blocking read would have waited on the server.

What keeps counting exact (ranker.log_consumer states the rule): a page XREADGROUP returned
is in the group's pending list as soon as Redis sent it, so it must reach its consumer or
its consumer must reload. Hence a page is kept in its subscription until the consumer takes
it, even if the consumer stopped waiting meanwhile; a read that failed (its reply may have
been lost) fails every subscription it named, each of whose consumers then reloads from the
checkpoint and claims what is pending; and a subscription is closed only with its cause, whose
next load claims what was delivered after.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.crc import key_slot

from pairwise import keys
from pairwise.cancellation import raise_if_cancel_requested
from pairwise.redis_client import is_cluster_client
from pairwise.vote_log import RawEntry

logger = logging.getLogger(__name__)

# After a read whose pages were all short (the causes are caught up), the next read waits
# this long first. Interactive votes arrive one entry each: read as soon as each arrived,
# they cost about an XREADGROUP apiece (measured: ~3 reads per vote at 1,300 votes/s, ~33 µs
# of Redis CPU per vote, plus the ranker's own per-read work); paced, a read takes every
# entry of the last 20 ms. It adds at most this much to a ranking's staleness. After a full
# page, the next read waits only (and at most this long) for the consumers fed to come back.
_CAUGHT_UP_PAUSE_S = 0.02

# How long a read blocks (ms, at most) while some subscribed consumer is busy (applying a
# page in a thread, saving a checkpoint, loading): the read does not name its log, so it
# must come back soon to include it again.
_BUSY_BLOCK_MS = 20

# After a read failed for a reason that is not one log's (Redis unreachable), before the next.
_ERROR_PAUSE_S = 0.1

# On a Redis Cluster, after a read that found nothing in any log, before the next: what a
# vote may wait to be read when its cause was idle, against one XREADGROUP per loaded cause
# per read when every cause is idle (causes idle longer are unloaded, so not read at all).
_CLUSTER_IDLE_POLL_S = 0.05

_NOGROUP_KEY = re.compile(r"NOGROUP No such key '(.+?)' or consumer group")


class ReadFailed(redis.exceptions.ConnectionError):
    """The shared read that named this cause's log failed; its reply, and pages of it, may
    be lost. The consumer reloads from the checkpoint (as on any Redis failure)."""


class Subscription:
    """One cause's share of the reader: `next_page` is its consumer's XREADGROUP."""

    def __init__(self, reader: VoteReader, stream_key: str) -> None:
        self.stream_key = stream_key
        self._reader = reader
        self._page: list[RawEntry] | None = None
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def wants(self) -> bool:
        """Whether the next read should name this log: its consumer waits and holds nothing."""
        return self._waiter is not None and self._page is None and self._error is None

    async def next_page(self, wait_s: float | None) -> list[RawEntry]:
        """The next entries of this log never delivered to the group, in id order; empty
        when none came within `wait_s` seconds (None: wait until some come).

        Raises ReadFailed (or the read's error) when a read that named this log failed.
        """
        if self._page is None and self._error is None:
            self._waiter = asyncio.get_running_loop().create_future()
            self._reader.wanted()
            try:
                await asyncio.wait({self._waiter}, timeout=wait_s)
            finally:
                self._waiter = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        page, self._page = self._page, None
        return page or []

    def interrupt(self) -> None:
        """End a `next_page` that waits now: it returns the page it holds, maybe none."""
        self._wake()

    def reset(self) -> None:
        """Forget a page not taken yet (the consumer reloads, claiming what is pending)."""
        self._page = None
        self._error = None

    def close(self) -> None:
        """Stop reading this log (its cause is closed; a later load claims what is pending)."""
        self.closed = True
        self._reader.unsubscribe(self)
        self._wake()

    def deliver(self, entries: list[RawEntry]) -> None:
        self._page = entries
        self._wake()

    def fail(self, error: BaseException) -> None:
        self._page = None
        self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class VoteReader:
    """Reads the vote logs of every subscribed cause through the rankers' consumer group, as
    consumer `consumer`, up to `read_batch` entries a log per read, blocking up to
    `block_ms` when there is nothing to read. `start()`, then `subscribe` per cause."""

    def __init__(self, client: aioredis.Redis, *, consumer: str, read_batch: int,
                 block_ms: int) -> None:
        self._redis = client
        self._consumer = consumer
        self._read_batch = read_batch
        self._block_ms = block_ms
        self._subscriptions: dict[str, Subscription] = {}
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._cluster = is_cluster_client(client)
        self.reads = 0  # XREADGROUP calls made, for tests and measurements

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._read_forever(),
                                                            name="read-votes")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def subscribe(self, stream_key: str) -> Subscription:
        """Read `stream_key` (a cause's vote log) for its consumer from now on."""
        if stream_key in self._subscriptions:
            raise RuntimeError(f"{stream_key} is read already")
        subscription = Subscription(self, stream_key)
        self._subscriptions[stream_key] = subscription
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if self._subscriptions.get(subscription.stream_key) is subscription:
            del self._subscriptions[subscription.stream_key]

    def wanted(self) -> None:
        """A consumer waits for entries: the reader, if idle, reads again."""
        self._wanted.set()

    @property
    def subscribed(self) -> int:
        return len(self._subscriptions)

    async def _read_forever(self) -> None:
        while True:
            wanting = [s for s in self._subscriptions.values() if s.wants()]
            if not wanting:
                self._wanted.clear()
                await self._wanted.wait()
                continue
            busy = len(wanting) < len(self._subscriptions)
            try:
                fed, full = await self._read_once(
                    wanting, min(self._block_ms, _BUSY_BLOCK_MS) if busy else self._block_ms)
                raise_if_cancel_requested()
                if fed:
                    await self._pace(fed, full)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug here would stop every cause's counting: log it, fail what was read.
                logger.exception("vote reader failed; reading again")
                self._failed(wanting, RuntimeError("the vote reader failed"))
                await asyncio.sleep(_ERROR_PAUSE_S)

    async def _read_once(self, wanting: list[Subscription],
                         block_ms: int) -> tuple[list[Subscription], bool]:
        """One XREADGROUP over the logs of `wanting`; pages handed out. Returns the
        subscriptions fed and whether any page was full."""
        by_slot: dict[int, list[Subscription]] = {}
        if self._cluster:
            for subscription in wanting:
                by_slot.setdefault(key_slot(subscription.stream_key.encode()),
                                   []).append(subscription)
        try:
            self.reads += 1
            if len(by_slot) > 1:
                reply: Any = await self._read_slots(list(by_slot.values()))
                if not reply:
                    await self._idle_poll()
            else:
                reply = await self._redis.xreadgroup(
                    keys.RANKER_GROUP, self._consumer, {s.stream_key: ">" for s in wanting},
                    count=self._read_batch, block=block_ms)
        except asyncio.CancelledError:
            for subscription in wanting:
                subscription.fail(ReadFailed("the vote reader stopped during a read"))
            raise
        except Exception as exc:
            self._failed(wanting, exc)
            if not isinstance(exc, redis.exceptions.ResponseError):
                await asyncio.sleep(_ERROR_PAUSE_S)
            return [], False
        fed: list[Subscription] = []
        full = False
        for raw_key, entries in reply or ():
            stream_key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            to = self._subscriptions.get(stream_key)
            if to is None:
                continue  # closed meanwhile: pending in the group, claimed by its next load
            to.deliver(list(entries))
            fed.append(to)
            full = full or len(entries) >= self._read_batch
        return fed, full

    async def _read_slots(self, groups: list[list[Subscription]]) -> list[Any]:
        """One XREADGROUP per group (the logs of one cluster slot each), without blocking, in
        one pipeline (the client sends each node its own, at once); the logs' entries as
        XREADGROUP answers them. A read of some group refused (its log's consumer group
        missing) fails that group's subscriptions; a node that failed fails all of them."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.xreadgroup(keys.RANKER_GROUP, self._consumer,
                                {s.stream_key: ">" for s in group}, count=self._read_batch)
            replies = await pipe.execute(raise_on_error=False)
        found: list[Any] = []
        for group, reply in zip(groups, replies, strict=True):
            if isinstance(reply, Exception):
                self._failed(group, reply)
            else:
                found.extend(reply or ())
        return found

    async def _idle_poll(self) -> None:
        """Wait `_CLUSTER_IDLE_POLL_S`, or less if a consumer comes to wait."""
        self._wanted.clear()
        try:
            await asyncio.wait_for(self._wanted.wait(), _CLUSTER_IDLE_POLL_S)
        except TimeoutError:
            pass

    def _failed(self, wanting: list[Subscription], exc: Exception) -> None:
        """A read failed: the log it names (a group missing), or every log it named."""
        match = _NOGROUP_KEY.search(str(exc))
        named = [s for s in wanting if match and s.stream_key == match.group(1)]
        if not named:
            logger.warning("vote log read failed", extra={"error": str(exc),
                                                         "logs": len(wanting)})
        for subscription in named or wanting:
            subscription.fail(exc if isinstance(exc, redis.exceptions.ResponseError)
                              else ReadFailed(f"vote log read failed: {exc}"))

    async def _pace(self, fed: list[Subscription], full: bool) -> None:
        """Before the next read: after short pages, `_CAUGHT_UP_PAUSE_S`; after a full one,
        until every consumer fed waits again (at most as long), so the next read names it."""
        loop = asyncio.get_running_loop()
        if not full:
            await asyncio.sleep(_CAUGHT_UP_PAUSE_S)
            return
        deadline = loop.time() + _CAUGHT_UP_PAUSE_S
        while any(not s.closed and not s.wants() for s in fed):
            left = deadline - loop.time()
            if left <= 0:
                return
            self._wanted.clear()
            try:
                await asyncio.wait_for(self._wanted.wait(), left)
            except TimeoutError:
                return
            raise_if_cancel_requested()
