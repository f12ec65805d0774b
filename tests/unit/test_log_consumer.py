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
from pairwise.exclusions import Exclusions
from pairwise.vote_log import RawEntry
from ranker.checkpoint_policy import CheckpointPolicy
from ranker.log_consumer import Checkpoint, CheckpointConflict, LogConsumer
from ranker.pair_counts import PairCounts, decode_votes
from ranker.vote_admission import LeftOut

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
    left_out: LeftOut | None = None  # None: a checkpoint stored before votes were left out
    exclusions: Exclusions = field(default_factory=Exclusions)
    base: bytes = b""
    deltas: list[bytes] = field(default_factory=list)
    saves: list[str] = field(default_factory=list)  # "base" / "delta", in order
    # (consumer, ids acked, stored last_id when they were acked)
    acks: list[tuple[str, list[str], str]] = field(default_factory=list)
    before_next_save: Callable[[], Awaitable[None]] | None = None
    lose_next_save_reply: bool = False
    lose_acks: bool = False

    def write(self, rng: np.random.Generator, n: int, among: int = 6, *,
              untrusted_share: float = 0.0, voters: int = 1) -> None:
        """`n` random votes, each by one of `voters` voters ("u0", "u1", ...), each flagged
        untrusted with probability `untrusted_share`; vote ids are the entry ids."""
        for _ in range(n):
            a, b = rng.choice(among, size=2, replace=False).tolist()
            kind = rng.choice([vote_log.WIN, vote_log.TIE, vote_log.SKIP], p=[0.8, 0.1, 0.1])
            entry_id = f"{len(self.log) + 1}-0"
            self.log.append((entry_id, vote_log.VoteEntry(
                kind=str(kind), a=a, b=b, vote_id=entry_id,  # type: ignore[arg-type]
                voter_id=f"u{rng.integers(voters)}",
                trusted=bool(rng.random() >= untrusted_share))))

    def counted(self, vote: vote_log.VoteEntry) -> bool:
        """Whether `vote` counts, decided here independently of ranker.vote_admission."""
        return vote.trusted and vote.voter_id not in self.exclusions.voters \
            and vote.vote_id not in self.exclusions.votes

    def raw(self, entry_id: str) -> RawEntry:
        entry = dict(self.log)[entry_id]
        return entry_id.encode(), {k.encode(): v.encode() for k, v in entry.fields().items()}

    def expected_counts(self, through: int | None = None) -> PairCounts:
        """The counts of the votes that count among the first `through` entries (all by
        default), applied here directly."""
        votes = [entry for _, entry in self.log[:through] if self.counted(entry)]
        counts = PairCounts()
        counts.apply(np.array([CODES[vote.kind] for vote in votes], dtype=np.uint8),
                     np.array([vote.a for vote in votes], dtype=np.int64),
                     np.array([vote.b for vote in votes], dtype=np.int64))
        return counts

    def expected_left_out(self) -> LeftOut:
        """Untrusted and excluded votes of the whole log, under the current exclusions."""
        excluded = sum(vote.voter_id in self.exclusions.voters
                       or vote.vote_id in self.exclusions.votes for _, vote in self.log)
        untrusted = sum(not self.counted(vote) for _, vote in self.log) - excluded
        return LeftOut(untrusted, excluded, self.exclusions.version)

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
    woken: int = 0
    recounts: int = 0  # calls of read_through
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    async def open(self) -> tuple[Checkpoint, Exclusions]:
        r = self.store
        if not r.token:
            return Checkpoint("", 0, PairCounts()), r.exclusions
        return Checkpoint(r.last_id, r.votes_counted, r.stored_counts(), r.token,
                          has_base=True, base_bytes=len(r.base),
                          delta_bytes=sum(map(len, r.deltas)), left_out=r.left_out), \
            r.exclusions

    async def read_through(self, last_id: str) -> AsyncIterator[list[RawEntry]]:
        self.recounts += 1
        ids = [entry_id for entry_id, _ in self.store.log if key(entry_id) <= key(last_id)]
        for start in range(0, len(ids), self.read_batch):
            yield [self.store.raw(entry_id) for entry_id in ids[start:start + self.read_batch]]

    def wake(self) -> None:
        self.woken += 1
        self.wakeup.set()

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
            self.wakeup.clear()
            try:
                await asyncio.wait_for(self.wakeup.wait(), wait_s)
            except TimeoutError:
                pass
            return []
        r.delivered += len(page)
        for entry_id in page:
            r.pending[entry_id] = self.consumer
        return [r.raw(entry_id) for entry_id in page]

    async def _fenced_save(self, previous_token: str, unknown_token: str, token: str,
                           last_id: str, votes_counted: int, left_out: LeftOut, kind: str,
                           payload: bytes) -> None:
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
        r.token, r.last_id, r.votes_counted, r.left_out = token, last_id, votes_counted, left_out
        r.saves.append(kind)
        if r.lose_next_save_reply:
            r.lose_next_save_reply = False
            raise ConnectionError("connection lost before the reply")

    async def save_base(self, *, previous_token: str, unknown_token: str, token: str,
                        last_id: str, votes_counted: int, left_out: LeftOut,
                        parts: Sequence[bytes | memoryview]) -> None:
        snapshot = b"".join(bytes(part) for part in parts)
        await self._fenced_save(previous_token, unknown_token, token, last_id, votes_counted,
                                left_out, "base", snapshot)

    async def save_delta(self, *, previous_token: str, token: str, last_id: str,
                         votes_counted: int, left_out: LeftOut, votes: bytes) -> None:
        await self._fenced_save(previous_token, "", token, last_id, votes_counted, left_out,
                                "delta", votes)

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


# -- votes left out: untrusted and excluded ---------------------------------------------------


async def left_out(ranker: LogConsumer) -> LeftOut:
    async with ranker.held() as now:
        assert now is not None
        return now.left_out


def test_untrusted_votes_change_no_count_and_their_tally_survives_a_crash():
    """Untrusted votes are reflected (votes_counted) but not counted; how many there were is
    stored with each checkpoint, so the next owner goes on from exactly that tally."""
    async def scenario() -> None:
        rng = np.random.default_rng(11)
        store = InMemoryLog()
        store.write(rng, 30, untrusted_share=0.3, voters=5)
        clock = Clock()
        first, _ = consumer(store, "ranker-a", clock=clock, interval_s=1.0)
        await first.load()
        await steps(first, 8)  # every entry
        clock.now += 1.0
        await first.step()  # nothing new; the checkpoint of all 30 is due
        assert store.left_out == store.expected_left_out()
        assert store.left_out.untrusted > 0
        store.write(rng, 12, untrusted_share=0.3, voters=5)
        await steps(first, 3)  # applied, not saved: the crash drops them

        second, stream = consumer(store, "ranker-b")
        await second.load()
        counts, _, votes_counted = await applied(second)
        assert counts == store.expected_counts() != every_vote_counted(store)
        assert votes_counted == len(store.log)
        assert await left_out(second) == store.expected_left_out()
        assert stream.recounts == 0  # the checkpoint's tally was taken as it is
        await second.save_final()
        assert store.left_out == store.expected_left_out()
        assert store.stored_counts() == store.expected_counts()

    asyncio.run(scenario())


def test_a_checkpoint_stored_before_votes_were_left_out_is_counted_again_from_the_log():
    """A checkpoint without a left-out tally counted every vote: the next load counts the
    entries it covers again from the log, re-applies the pending ones after it, and stores
    the result at once, so no vote is lost or counted twice, and the next load is plain."""
    async def scenario() -> None:
        rng = np.random.default_rng(12)
        store = InMemoryLog()
        store.write(rng, 20, untrusted_share=0.4, voters=3)
        # What a ranker before trust flags left: every vote of entries 1-12 counted, entries
        # 1-20 delivered to it and pending.
        old = every_vote_counted(store, through=12)
        store.base, store.token = old.to_bytes(), "old-ranker:1"
        store.last_id, store.votes_counted, store.left_out = store.log[11][0], 12, None
        store.delivered = 20
        store.pending = {entry_id: "old-ranker" for entry_id, _ in store.log}

        ranker, stream = consumer(store, "ranker-new")
        await ranker.load()
        counts, last_id, votes_counted = await applied(ranker)
        assert stream.recounts == 1
        assert counts == store.expected_counts()
        assert (last_id, votes_counted) == (store.log[-1][0], len(store.log))
        assert await left_out(ranker) == store.expected_left_out()
        assert store.saves == ["base"] and store.pending == {}
        assert store.left_out == store.expected_left_out()
        assert store.stored_counts() == store.expected_counts()

        again, stream = consumer(store, "ranker-next")
        await again.load()
        assert stream.recounts == 0
        assert (await applied(again))[0] == store.expected_counts()

    asyncio.run(scenario())


def test_changed_exclusions_are_counted_again_and_reinstating_restores_the_counts():
    async def scenario() -> None:
        rng = np.random.default_rng(13)
        store = InMemoryLog()
        store.write(rng, 40, untrusted_share=0.2, voters=4)
        ranker, stream = consumer(store, interval_s=0.0)
        running = asyncio.create_task(ranker.run_forever())
        await asyncio.wait_for(stream.idle.wait(), 10)
        before = store.expected_counts()
        assert (await applied(ranker))[0] == before

        async def reflects(version: int) -> None:
            for _ in range(500):
                now = await left_out(ranker) if ranker.replayed.is_set() else None
                if now is not None and now.exclusions_version == version:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"exclusions version {version} never applied")

        store.exclusions = Exclusions(1, frozenset({"u1"}), frozenset({store.log[0][0]}))
        ranker.note_exclusions_version(1)
        await reflects(1)
        counts, _, votes_counted = await applied(ranker)
        assert counts == store.expected_counts() != before
        assert votes_counted == len(store.log)
        assert await left_out(ranker) == store.expected_left_out()
        assert store.expected_left_out().excluded > 0
        assert store.left_out == store.expected_left_out()  # stored at once
        assert stream.woken == 1

        ranker.note_exclusions_version(1)  # the same version again: nothing to do
        ranker.note_exclusions_version(0)  # a discovery read from before the change
        assert stream.woken == 1

        store.exclusions = Exclusions(2)
        ranker.note_exclusions_version(2)
        await reflects(2)
        assert (await applied(ranker))[0] == before
        assert await left_out(ranker) == store.expected_left_out()
        running.cancel()
        await asyncio.wait({running})
        assert store.stored_counts() == before and store.pending == {}
        assert_acks_follow_checkpoints(store)

    asyncio.run(scenario())


def every_vote_counted(store: InMemoryLog, through: int | None = None) -> PairCounts:
    """The counts of a ranker that left no vote out, of the first `through` entries."""
    votes = [entry for _, entry in store.log[:through]]
    counts = PairCounts()
    counts.apply(np.array([CODES[vote.kind] for vote in votes], dtype=np.uint8),
                 np.array([vote.a for vote in votes], dtype=np.int64),
                 np.array([vote.b for vote in votes], dtype=np.int64))
    return counts
