"""The exactly-once rule of a cause's consumer, against an in-memory vote log: every vote is
counted once, in id order, whatever is redelivered, and an entry is acknowledged only once a
stored checkpoint covers it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pairwise import vote_log
from pairwise.vote_log import RawEntry
from ranker.checkpoint_policy import CheckpointPolicy
from ranker.log_consumer import Checkpoint, CheckpointConflict, LogConsumer
from ranker.pair_counts import PairCounts, decode_votes

CODES = {vote_log.WIN: vote_log.WIN_CODE, vote_log.TIE: vote_log.TIE_CODE,
         vote_log.SKIP: vote_log.SKIP_CODE}


def key(entry_id: str) -> tuple[int, int]:
    return vote_log.entry_key(entry_id)


@dataclass
class InMemoryLog:
    """One cause's vote log, consumer group and stored checkpoint, kept in memory in the
    shape Redis keeps them (the unit tests of the consumer logic; the integration tests use
    a real Redis)."""

    log: list[tuple[str, vote_log.VoteEntry]] = field(default_factory=list)
    delivered: int = 0  # entries of `log` delivered to the group
    pending: dict[str, str] = field(default_factory=dict)  # entry id -> consumer
    token: str = ""
    last_id: str = ""
    votes_counted: int = 0
    base: bytes = b""
    deltas: list[bytes] = field(default_factory=list)
    saves: list[str] = field(default_factory=list)  # "base" / "delta", in order
    # (consumer, ids acked, stored last_id when they were acked)
    acks: list[tuple[str, list[str], str]] = field(default_factory=list)
    before_next_save: Callable[[], Awaitable[None]] | None = None
    lose_next_save_reply: bool = False
    lose_acks: bool = False

    def write(self, rng: np.random.Generator, n: int, among: int = 6) -> None:
        for _ in range(n):
            a, b = rng.choice(among, size=2, replace=False).tolist()
            kind = rng.choice([vote_log.WIN, vote_log.TIE, vote_log.SKIP], p=[0.8, 0.1, 0.1])
            entry_id = f"{len(self.log) + 1}-0"
            self.log.append((entry_id, vote_log.VoteEntry(
                kind=str(kind), a=a, b=b, vote_id=entry_id, voter_id="u")))  # type: ignore[arg-type]

    def raw(self, entry_id: str) -> RawEntry:
        entry = dict(self.log)[entry_id]
        return entry_id.encode(), {k.encode(): v.encode() for k, v in entry.fields().items()}

    def expected_counts(self, through: int | None = None) -> PairCounts:
        """The counts of the first `through` entries (all by default), applied here directly."""
        votes = [entry for _, entry in self.log[:through]]
        counts = PairCounts()
        counts.apply(np.array([CODES[vote.kind] for vote in votes], dtype=np.uint8),
                     np.array([vote.a for vote in votes], dtype=np.int64),
                     np.array([vote.b for vote in votes], dtype=np.int64))
        return counts

    def stored_counts(self) -> PairCounts:
        counts = PairCounts.from_bytes(self.base)
        for delta in self.deltas:
            counts.apply(*decode_votes(delta))
        return counts


@dataclass
class FakeStream:
    """`log_consumer.VoteStream` over a `InMemoryLog`, as consumer `consumer`."""

    store: InMemoryLog
    consumer: str
    read_batch: int = 4
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    async def ensure_group(self) -> None:
        pass

    async def load_checkpoint(self) -> Checkpoint:
        r = self.store
        if not r.token:
            return Checkpoint("", 0, PairCounts())
        return Checkpoint(r.last_id, r.votes_counted, r.stored_counts(), r.token,
                          has_base=True, base_bytes=len(r.base),
                          delta_bytes=sum(map(len, r.deltas)))

    async def claim_pending(self) -> AsyncIterator[list[RawEntry]]:
        ids = sorted(self.store.pending, key=key)
        for start in range(0, len(ids), self.read_batch):
            page = ids[start:start + self.read_batch]
            for entry_id in page:
                self.store.pending[entry_id] = self.consumer
            yield [self.store.raw(entry_id) for entry_id in page]

    async def read_new(self, wait_s: float | None) -> list[RawEntry]:
        r = self.store
        page = [entry_id for entry_id, _ in r.log[r.delivered:r.delivered + self.read_batch]]
        if not page:
            self.idle.set()
            if wait_s is not None:
                await asyncio.sleep(wait_s)
                return []
            await asyncio.Event().wait()  # blocks until cancelled
        r.delivered += len(page)
        for entry_id in page:
            r.pending[entry_id] = self.consumer
        return [r.raw(entry_id) for entry_id in page]

    async def _fenced_save(self, previous_token: str, unknown_token: str, token: str,
                           last_id: str, votes_counted: int, kind: str, payload: bytes) -> None:
        r = self.store
        if r.before_next_save is not None:
            hook, r.before_next_save = r.before_next_save, None
            await hook()
        if r.token not in (previous_token, unknown_token or previous_token):
            raise CheckpointConflict(f"checkpoint was saved by someone else ({r.token})")
        if any(holder != self.consumer and key(entry_id) <= key(last_id)
               for entry_id, holder in r.pending.items()):
            raise CheckpointConflict("another consumer holds a pending entry")
        if kind == "base":
            r.base, r.deltas = payload, []
        else:
            if not r.base:
                raise CheckpointConflict("no base snapshot to add a delta to")
            if payload:
                r.deltas.append(payload)
        r.token, r.last_id, r.votes_counted = token, last_id, votes_counted
        r.saves.append(kind)
        if r.lose_next_save_reply:
            r.lose_next_save_reply = False
            raise ConnectionError("connection lost before the reply")

    async def save_base(self, *, previous_token: str, unknown_token: str, token: str,
                        last_id: str, votes_counted: int,
                        parts: Sequence[bytes | memoryview]) -> None:
        snapshot = b"".join(bytes(part) for part in parts)
        await self._fenced_save(previous_token, unknown_token, token, last_id, votes_counted,
                                "base", snapshot)

    async def save_delta(self, *, previous_token: str, token: str, last_id: str,
                         votes_counted: int, votes: bytes) -> None:
        await self._fenced_save(previous_token, "", token, last_id, votes_counted, "delta",
                                votes)

    async def ack_through(self, last_id: str, *, about: int) -> int:
        r = self.store
        if r.lose_acks:
            return 0
        mine = sorted((entry_id for entry_id, holder in r.pending.items()
                       if holder == self.consumer and key(entry_id) <= key(last_id)), key=key)
        for entry_id in mine:
            del r.pending[entry_id]
        r.acks.append((self.consumer, mine, r.last_id))
        return len(mine)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def consumer(store: InMemoryLog, name: str = "ranker-0", *, interval_s: float = 10.0,
             max_unacked: int = 1_000, delta_min_bytes: int = 1 << 20,
             clock: Clock | None = None, read_batch: int = 4) -> tuple[LogConsumer, FakeStream]:
    stream = FakeStream(store, name, read_batch=read_batch)
    policy = CheckpointPolicy(interval_s=interval_s, max_unacked=max_unacked, delta_share=4,
                              delta_min_bytes=delta_min_bytes)
    return LogConsumer("cause", stream, policy, max_proposals=1_000,
                       changed=asyncio.Event(), clock=clock or Clock()), stream


async def applied(ranker: LogConsumer) -> tuple[PairCounts, str, int]:
    async with ranker.held() as now:
        assert now is not None
        return now.counts.copy(), now.last_id, now.votes_counted


async def steps(ranker: LogConsumer, n: int) -> None:
    for _ in range(n):
        await ranker.step()


def assert_acks_follow_checkpoints(store: InMemoryLog) -> None:
    for _, ids, stored_last_id in store.acks:
        assert all(key(entry_id) <= key(stored_last_id) for entry_id in ids)


def test_entries_are_counted_once_and_acknowledged_only_after_a_checkpoint_covers_them():
    async def scenario() -> None:
        rng = np.random.default_rng(1)
        store = InMemoryLog()
        store.write(rng, 10)
        clock = Clock()
        ranker, _ = consumer(store, clock=clock, interval_s=2.0)
        await ranker.load()
        await steps(ranker, 3)  # 4 + 4 + 2 entries, before the interval is up

        counts, last_id, votes_counted = await applied(ranker)
        assert counts == store.expected_counts()
        assert (last_id, votes_counted) == (store.log[-1][0], len(store.log))
        assert store.saves == [] and len(store.pending) == len(store.log)

        clock.now += 2.0
        store.write(rng, 3)
        await ranker.step()
        assert store.saves == ["base"]
        assert store.stored_counts() == store.expected_counts()
        assert (store.last_id, store.votes_counted) == (store.log[-1][0], len(store.log))
        assert store.pending == {}
        assert_acks_follow_checkpoints(store)

    asyncio.run(scenario())


def test_redelivered_entries_at_or_below_the_checkpoint_are_not_counted_again():
    """A consumer that stopped between its checkpoint and the acks leaves covered entries
    pending; the next owner claims them, skips them and acknowledges them."""
    async def scenario() -> None:
        rng = np.random.default_rng(2)
        store = InMemoryLog()
        store.write(rng, 9)
        first, _ = consumer(store, "ranker-a", interval_s=0.0)
        store.lose_acks = True
        await first.load()
        await steps(first, 3)
        assert store.votes_counted == len(store.log) and len(store.pending) == len(store.log)

        store.lose_acks = False
        store.write(rng, 5)  # new entries, never delivered
        second, _ = consumer(store, "ranker-b", interval_s=0.0)
        await second.load()
        await steps(second, 2)

        counts, _, votes_counted = await applied(second)
        assert counts == store.expected_counts()
        assert votes_counted == len(store.log)
        assert store.stored_counts() == store.expected_counts()
        assert store.pending == {}
        assert_acks_follow_checkpoints(store)

    asyncio.run(scenario())


def test_entries_after_the_checkpoint_are_reapplied_by_the_next_owner():
    """A crash after applying entries past the checkpoint loses the in-memory progress; the
    entries are still pending, and the next owner counts each of them once."""
    async def scenario() -> None:
        rng = np.random.default_rng(3)
        store = InMemoryLog()
        store.write(rng, 8)
        clock = Clock()
        first, _ = consumer(store, "ranker-a", clock=clock, interval_s=1.0)
        await first.load()
        clock.now += 1.0
        await first.step()  # entries 1-4, then a checkpoint of them
        await first.step()  # entries 5-8, not saved: the crash drops them
        assert store.last_id == store.log[3][0]

        second, _ = consumer(store, "ranker-b", interval_s=1.0)
        await second.load()

        counts, last_id, votes_counted = await applied(second)
        assert counts == store.expected_counts()
        assert (last_id, votes_counted) == (store.log[-1][0], len(store.log))
        await second.save_final()
        assert store.stored_counts() == store.expected_counts() and store.pending == {}
        assert_acks_follow_checkpoints(store)

    asyncio.run(scenario())


def test_a_checkpoint_conflict_reloads_from_the_stored_checkpoint(caplog):
    """Another consumer saves between this one's load and its save: the save is refused,
    this consumer reloads from the other's checkpoint and counts nothing twice."""
    caplog.set_level(logging.ERROR, logger="ranker.log_consumer")

    async def scenario() -> None:
        rng = np.random.default_rng(4)
        store = InMemoryLog()
        store.write(rng, 4)
        ours, our_stream = consumer(store, "ranker-a", interval_s=0.0)
        theirs, _ = consumer(store, "ranker-b", interval_s=0.0)

        async def other_consumer_saves() -> None:
            store.write(rng, 4)
            await theirs.load()  # takes over our pending entries 1-4
            await theirs.step()  # entries 5-8, saved and acknowledged
        store.before_next_save = other_consumer_saves

        running = asyncio.create_task(ours.run_forever())
        await asyncio.wait_for(our_stream.idle.wait(), 10)
        running.cancel()
        await asyncio.wait({running})

        counts, last_id, votes_counted = await applied(ours)
        assert counts == store.expected_counts()
        assert (last_id, votes_counted) == (store.log[-1][0], len(store.log))
        assert store.stored_counts() == store.expected_counts()
        assert store.votes_counted == len(store.log) and store.pending == {}
        assert_acks_follow_checkpoints(store)

    asyncio.run(scenario())
    assert any(record.msg.startswith("another ranker consumes this cause")
               for record in caplog.records)


def test_a_checkpoint_is_saved_early_when_too_many_entries_wait_for_their_ack():
    async def scenario() -> None:
        rng = np.random.default_rng(5)
        store = InMemoryLog()
        store.write(rng, 12)
        ranker, _ = consumer(store, interval_s=60.0, max_unacked=8)
        await ranker.load()
        await ranker.step()
        assert store.saves == []  # 4 waiting
        await ranker.step()
        assert store.saves == ["base"]  # 8 waiting: saved
        assert store.last_id == store.log[7][0] and len(store.pending) == 0
        await ranker.step()
        assert store.saves == ["base"] and len(store.pending) == 4

    asyncio.run(scenario())


def test_deltas_follow_a_base_until_they_outgrow_their_share():
    async def scenario() -> None:
        rng = np.random.default_rng(6)
        store = InMemoryLog()
        store.write(rng, 4)
        # A delta of 4 votes is 12 + 9 * 4 = 48 bytes: two fit under 100, a third does not.
        ranker, _ = consumer(store, interval_s=0.0, delta_min_bytes=100)
        await ranker.load()
        await ranker.step()
        for _ in range(3):
            store.write(rng, 4)
            await ranker.step()
        assert store.saves == ["base", "delta", "delta", "base"]
        assert store.stored_counts() == store.expected_counts()
        assert store.votes_counted == len(store.log)

    asyncio.run(scenario())


def test_after_a_save_whose_reply_was_lost_the_next_save_is_a_base():
    """The lost save may or may not have been stored: a delta could extend the wrong state,
    a base is right either way, and the fence accepts it over the consumer's own save."""
    async def scenario() -> None:
        rng = np.random.default_rng(7)
        store = InMemoryLog()
        store.write(rng, 4)
        ranker, _ = consumer(store, interval_s=0.0)
        await ranker.load()
        await ranker.step()
        store.write(rng, 4)
        store.lose_next_save_reply = True
        try:
            await ranker.step()
        except ConnectionError:
            pass
        else:
            raise AssertionError("the lost reply did not reach the consumer")
        assert store.saves == ["base", "delta"] and len(store.pending) == 4  # not acked

        store.write(rng, 4)
        await ranker.step()
        assert store.saves == ["base", "delta", "base"]
        assert store.stored_counts() == store.expected_counts()
        assert store.pending == {}
        assert_acks_follow_checkpoints(store)

    asyncio.run(scenario())
