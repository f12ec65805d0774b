"""RankerService against a real Redis: exact counts, rankings, restarts, crashes, streams.

The tests play the gateway and ingest by writing catalog keys and vote-log entries straight
into Redis (pairwise.keys, pairwise.vote_log), in their own Redis database so that rankers
started elsewhere in the session (the `cluster` fixture) never consume these causes.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import pytest
import redis
from conftest import (
    INTERNAL_SECRET,
    eventually,
    ingest_settings,
    internal,
    own_database,
    ranker_settings,
    serve_in_thread,
    served_port,
)

from ingest.server import start as start_ingest
from pairwise import awake_causes, keys, vote_log
from pairwise.ranker_directory import owner_of
from pairwise.v1 import ingest_pb2, ingest_pb2_grpc, ranker_pb2, ranker_pb2_grpc, types_pb2
from ranker import bradley_terry, cause_leases, checkpoint_policy, fit_pool
from ranker.pair_counts import PairCounts
from ranker.server import start

TIMEOUT_S = 30.0


@pytest.fixture
def db_url(redis_url: str) -> Iterator[str]:
    """A Redis URL on this file's own database, emptied before each test."""
    url = own_database(redis_url, "ranker")
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url


@pytest.fixture
def r(db_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(db_url)
    yield client
    client.close()


@dataclass
class Tally:
    wins: int = 0
    losses: int = 0
    ties: int = 0
    skips: int = 0
    appearances: int = 0


@dataclass
class Consultation:
    """A cause written the way the gateway and ingest write it, with the expected tallies
    computed independently of the ranker."""

    r: redis.Redis
    cause_id: str
    proposal_ids: list[str] = field(default_factory=list)
    tallies: dict[str, Tally] = field(default_factory=dict)
    entries_written: int = 0  # votes, in fact: one an entry, except in import_votes
    last_entry_id: str = ""

    def create(self, n_proposals: int, accepted: bool = True) -> Consultation:
        self.r.sadd(keys.CAUSES, self.cause_id)
        self.r.hset(keys.cause(self.cause_id),
                    mapping={"title": "Comment lutter contre les violences ?",
                             "auto_accept": 1, "created_at_ms": int(time.time() * 1000)})
        self.add_proposals(n_proposals, accepted=accepted)
        return self

    def add_proposals(self, n: int, accepted: bool = True) -> list[str]:
        added = []
        with self.r.pipeline(transaction=True) as pipe:
            for _ in range(n):
                index = len(self.proposal_ids)
                proposal_id = f"p{index:04d}"
                record = {"text": f"Proposition {index}", "author_id": "admin",
                          "status": "ACCEPTED" if accepted else "PENDING", "reason": "",
                          "index": index, "created_at_ms": int(time.time() * 1000)}
                pipe.rpush(keys.proposal_ids(self.cause_id), proposal_id)
                pipe.hset(keys.proposal_index(self.cause_id), proposal_id, index)
                pipe.hset(keys.proposals(self.cause_id), proposal_id, json.dumps(record))
                if accepted:
                    pipe.sadd(keys.accepted(self.cause_id), index)
                self.proposal_ids.append(proposal_id)
                self.tallies[proposal_id] = Tally()
                added.append(proposal_id)
            pipe.incr(keys.catalog_version(self.cause_id))
            pipe.execute()
        return added

    def moderate(self, proposal_id: str, accepted: bool) -> None:
        index = self.proposal_ids.index(proposal_id)
        with self.r.pipeline(transaction=True) as pipe:
            if accepted:
                pipe.sadd(keys.accepted(self.cause_id), index)
            else:
                pipe.srem(keys.accepted(self.cause_id), index)
            pipe.incr(keys.catalog_version(self.cause_id))
            pipe.execute()

    def vote(self, votes: list[tuple[str, int, int]]) -> None:
        """Append (kind, a, b) entries to the vote log ("w": a beat b, "t": tie, "s": skip)."""
        with self.r.pipeline(transaction=False) as pipe:
            for kind, a, b in votes:
                n = self.entries_written
                self.entries_written += 1
                entry = vote_log.VoteEntry(kind=kind, a=a, b=b, vote_id=f"v{n}",  # type: ignore[arg-type]
                                           voter_id=f"u{n % 97}")
                pipe.xadd(keys.votes(self.cause_id), entry.fields())
                self._tally(kind, a, b)
            ids = pipe.execute()
        self.mark_awake()
        self.last_entry_id = ids[-1].decode()

    def import_votes(self, votes: list[tuple[str, int, int]]) -> None:
        """Append (kind, a, b) votes ("w" or "t") as an import writes them: entries of
        vote_log.MAX_VOTES_PER_ENTRY votes."""
        size = vote_log.MAX_VOTES_PER_ENTRY
        with self.r.pipeline(transaction=False) as pipe:
            for start in range(0, len(votes), size):
                chunk = votes[start:start + size]
                n = self.entries_written
                pipe.xadd(keys.votes(self.cause_id), vote_log.batch_fields(  # type: ignore[arg-type]
                    "".join(kind for kind, _, _ in chunk), [a for _, a, _ in chunk],
                    [b for _, _, b in chunk], [f"v{n + k}" for k in range(len(chunk))],
                    [f"u{(n + k) % 97}" for k in range(len(chunk))]))
                self.entries_written += len(chunk)
            ids = pipe.execute()
        self.mark_awake()
        self.last_entry_id = ids[-1].decode()
        for kind, a, b in votes:
            self._tally(kind, a, b)

    def _tally(self, kind: str, a: int, b: int) -> None:
        """Count one vote in the expected per-proposal tallies."""
        left, right = self.tallies[self.proposal_ids[a]], self.tallies[self.proposal_ids[b]]
        left.appearances += 1
        right.appearances += 1
        if kind == "w":
            left.wins += 1
            right.losses += 1
        elif kind == "t":
            left.ties += 1
            right.ties += 1
        else:
            left.skips += 1
            right.skips += 1

    def write_raw(self, fields: dict[str, str]) -> None:
        """Append an entry that is not a well-formed vote (it still counts as reflected)."""
        self.last_entry_id = self.r.xadd(keys.votes(self.cause_id), fields).decode()
        self.entries_written += 1
        self.mark_awake()

    def mark_awake(self) -> None:
        """What ingest does after writing votes: the cause's rankers load it to count them."""
        self.r.execute_command(*awake_causes.mark_command([self.cause_id]))

    def random_votes(self, rng: np.random.Generator, n: int, among: int,
                     strength: np.ndarray | None = None) -> None:
        """`n` random votes among the first `among` proposals; with `strength`, the winner
        is drawn by Bradley-Terry; 10% ties and 10% skips."""
        votes = []
        for _ in range(n):
            a, b = rng.choice(among, size=2, replace=False).tolist()
            roll = rng.random()
            if roll < 0.1:
                votes.append(("t", a, b))
            elif roll < 0.2:
                votes.append(("s", a, b))
            else:
                p_a = 0.5 if strength is None else 1 / (1 + np.exp(strength[b] - strength[a]))
                votes.append(("w", a, b) if rng.random() < p_a else ("w", b, a))
        self.vote(votes)


def stub_for(port: int) -> tuple[grpc.Channel, ranker_pb2_grpc.RankerServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return channel, internal(ranker_pb2_grpc.RankerServiceStub(channel))


@pytest.fixture
def serve(db_url: str) -> Iterator[Callable[..., Any]]:
    """Start rankers on `db_url` (settings overrides as keywords); all stopped at the end."""
    stack: list[Any] = []

    def start_ranker(**overrides: Any) -> Ranker:
        context = serve_in_thread(start, ranker_settings(db_url, **overrides))
        running = context.__enter__()
        channel, stub = stub_for(running.port)
        ranker = Ranker(running.port, channel, stub, context)
        stack.append(ranker)
        return ranker

    start_ranker.rankers = stack  # type: ignore[attr-defined]
    yield start_ranker
    for ranker in reversed(stack):
        ranker.stop()


@dataclass
class Ranker:
    port: int
    channel: grpc.Channel
    stub: ranker_pb2_grpc.RankerServiceStub
    context: Any
    stopped: bool = False

    def read(self, cause_id: str, offset: int = 0, limit: int = 10_000) -> types_pb2.Ranking:
        reply = self.stub.ReadRanking(
            ranker_pb2.ReadRankingRequest(cause_id=cause_id, offset=offset, limit=limit),
            timeout=TIMEOUT_S)
        return reply.ranking

    def read_when(self, cause_id: str, done: Callable[[types_pb2.Ranking], bool],
                  what: str) -> types_pb2.Ranking:
        """The ranking once `done` holds; until then a cause on its way to this ranker (owned
        by another, or its lease held by another) is read again."""
        def probe() -> types_pb2.Ranking | None:
            try:
                ranking = self.read(cause_id)
            except grpc.RpcError as exc:
                if exc.code() not in (grpc.StatusCode.FAILED_PRECONDITION,  # type: ignore[attr-defined]
                                      grpc.StatusCode.UNAVAILABLE):
                    raise
                return None
            return ranking if done(ranking) else None

        return eventually(probe, what)

    def counted(self, consultation: Consultation) -> types_pb2.Ranking:
        """The ranking once it reflects every entry written so far."""
        return self.read_when(
            consultation.cause_id,
            lambda k: k.votes_counted == consultation.entries_written,
            f"votes_counted == {consultation.entries_written}")

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.channel.close()
            self.context.__exit__(None, None, None)


def assert_tallies_exact(ranking: types_pb2.Ranking, consultation: Consultation,
                         ranked: list[str] | None = None) -> None:
    ranked = consultation.proposal_ids if ranked is None else ranked
    got = {entry.proposal_id: Tally(entry.wins, entry.losses, entry.ties, entry.skips,
                                    entry.appearances)
           for entry in ranking.entries}
    assert got == {pid: consultation.tallies[pid] for pid in ranked}
    assert ranking.votes_counted == consultation.entries_written
    assert ranking.last_vote_entry_id == consultation.last_entry_id


def checkpointed(r: redis.Redis, consultation: Consultation) -> bool:
    stored = r.hget(keys.checkpoint(consultation.cause_id), "votes_counted")
    return stored is not None and int(stored) == consultation.entries_written


def pending(r: redis.Redis, cause_id: str) -> int:
    return int(r.xpending(keys.votes(cause_id), keys.RANKER_GROUP)["pending"])


def delivered(r: redis.Redis, consultation: Consultation) -> bool:
    """Whether the rankers' group exists and has read every entry written so far."""
    return any(group["name"].decode() == keys.RANKER_GROUP
               and group["last-delivered-id"].decode() == consultation.last_entry_id
               for group in r.xinfo_groups(keys.votes(consultation.cause_id)))


# -- counting and ranking ---------------------------------------------------------------------


def test_counts_and_ranking_reflect_exactly_the_votes_written(serve, r, cause_id):
    ranker = serve()
    rng = np.random.default_rng(7)
    cause = Consultation(r, cause_id).create(6)
    # p0000 is far stronger than the rest; p0005 never appears in a vote.
    strength = np.array([3.0, 0.5, 0.0, -0.5, -1.0])
    cause.random_votes(rng, 400, among=5, strength=strength)
    cause.vote([("w", 0, 1)] * 30)

    ranking = ranker.counted(cause)

    assert_tallies_exact(ranking, cause)
    assert ranking.total_proposals == 6
    assert ranking.entries[0].proposal_id == "p0000"
    assert [entry.rank for entry in ranking.entries] == list(range(1, 7))
    abilities = [entry.ability for entry in ranking.entries]
    assert abilities == sorted(abilities, reverse=True)
    assert sum(abilities) == pytest.approx(0.0, abs=1e-6)
    for entry in ranking.entries:
        assert entry.ci_low < entry.ability < entry.ci_high
        assert entry.std_error > 0
        assert 0.0 <= entry.score <= 100.0
        assert entry.text == f"Proposition {int(entry.proposal_id[1:])}"
    unvoted = next(entry for entry in ranking.entries if entry.proposal_id == "p0005")
    assert unvoted.appearances == 0
    assert ranking.prior_strength > 0
    assert ranking.fitted_at_ms > 0


def test_imported_entries_of_many_votes_count_exactly(serve, r, cause_id):
    """Pages of many votes are applied off the event loop; every vote counts once, before
    and after a restart from their checkpoint."""
    rng = np.random.default_rng(19)
    cause = Consultation(r, cause_id).create(30)
    for _ in range(3):  # written before the ranker starts: it reads them in one page
        pairs = [rng.choice(30, size=2, replace=False).tolist() for _ in range(4_500)]
        cause.import_votes([("t" if rng.random() < 0.1 else "w", a, b) for a, b in pairs])
        cause.vote([("s", 1, 2), ("w", 3, 4)])
    first = serve()
    assert_tallies_exact(first.counted(cause), cause)
    eventually(lambda: checkpointed(r, cause) and pending(r, cause_id) == 0,
               "everything checkpointed and acknowledged")
    first.stop()

    second = serve()

    assert_tallies_exact(second.counted(cause), cause)


def test_a_new_cause_lists_its_accepted_proposals_at_once(serve, r, cause_id):
    ranker = serve()
    cause = Consultation(r, cause_id).create(3)
    cause.add_proposals(1, accepted=False)

    ranking = ranker.read(cause_id)

    assert ranking.votes_counted == 0
    assert ranking.last_vote_entry_id == ""
    assert [entry.proposal_id for entry in ranking.entries] == ["p0000", "p0001", "p0002"]
    assert all(entry.ability == pytest.approx(0.0, abs=1e-9) for entry in ranking.entries)
    assert all(entry.score == pytest.approx(50.0) for entry in ranking.entries)


def test_catalog_changes_show_in_the_next_read_and_rejected_votes_stay_counted(
        serve, r, cause_id):
    ranker = serve()
    cause = Consultation(r, cause_id).create(4)
    cause.vote([("w", 1, 0), ("w", 1, 2), ("t", 1, 3), ("w", 2, 3), ("s", 0, 3)])
    ranker.counted(cause)

    cause.moderate("p0001", accepted=False)
    (new,) = cause.add_proposals(1)
    ranking = ranker.read(cause_id)

    listed = [entry.proposal_id for entry in ranking.entries]
    assert "p0001" not in listed
    assert new in listed
    assert ranking.total_proposals == 4
    assert ranking.votes_counted == cause.entries_written
    assert_tallies_exact(ranking, cause, ranked=["p0000", "p0002", "p0003", new])

    cause.moderate("p0001", accepted=True)
    assert "p0001" in [entry.proposal_id for entry in ranker.read(cause_id).entries]


def test_pages_and_header(serve, r, cause_id):
    ranker = serve()
    cause = Consultation(r, cause_id).create(5)
    cause.vote([("w", 4, 3), ("w", 3, 2), ("w", 2, 1), ("w", 1, 0)] * 10)
    full = ranker.counted(cause)

    page = ranker.read(cause_id, offset=1, limit=2)
    assert [entry.rank for entry in page.entries] == [2, 3]
    assert [entry.proposal_id for entry in page.entries] == \
        [entry.proposal_id for entry in full.entries[1:3]]
    header = ranker.read(cause_id, limit=0)
    assert list(header.entries) == []
    assert (header.total_proposals, header.votes_counted) == (5, cause.entries_written)
    assert list(ranker.read(cause_id, offset=99, limit=5).entries) == []


def test_bad_requests_and_unknown_causes(serve):
    ranker = serve()
    with pytest.raises(grpc.RpcError) as caught:
        ranker.read("no-such-cause")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-cause" in caught.value.details()
    for request, field_name in [({"offset": -1}, "offset"), ({"limit": -5}, "limit"),
                                ({"cause_id": ""}, "cause_id")]:
        with pytest.raises(grpc.RpcError) as caught:
            ranker.stub.ReadRanking(ranker_pb2.ReadRankingRequest(
                **{"cause_id": "c", **request}), timeout=TIMEOUT_S)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith(field_name)


def test_malformed_entries_are_reflected_but_change_no_count(serve, r, cause_id):
    ranker = serve()
    cause = Consultation(r, cause_id).create(3)
    cause.vote([("w", 0, 1)])
    cause.write_raw({"k": "x", "a": "0", "b": "1"})
    cause.write_raw({"k": "w", "a": "zero", "b": "1"})
    cause.write_raw({"k": "w", "a": "2", "b": "2"})
    cause.write_raw({"k": "w", "a": "-1", "b": "2"})
    cause.write_raw({"unrelated": "field"})
    cause.vote([("w", 2, 1), ("t", 0, 2)])

    ranking = ranker.counted(cause)

    assert_tallies_exact(ranking, cause)
    eventually(lambda: checkpointed(r, cause), "checkpoint of every entry")
    assert pending(r, cause_id) == 0


# -- restarts and crashes -----------------------------------------------------------------------


def test_restart_with_the_same_consumer_counts_each_vote_once(serve, r, cause_id):
    rng = np.random.default_rng(11)
    cause = Consultation(r, cause_id).create(8)
    first = serve()
    cause.random_votes(rng, 500, among=8)
    first.counted(cause)
    eventually(lambda: checkpointed(r, cause), "a checkpoint")
    first.stop()

    cause.random_votes(rng, 300, among=8)
    second = serve()

    assert_tallies_exact(second.counted(cause), cause)
    # Acks follow the checkpoint that covers them, in separate short scripts.
    eventually(lambda: checkpointed(r, cause) and pending(r, cause_id) == 0,
               "a checkpoint after restart, and every entry acknowledged")


def test_a_new_consumer_takes_over_what_another_left_pending(serve, r, cause_id):
    rng = np.random.default_rng(12)
    cause = Consultation(r, cause_id).create(6)
    first = serve(name="ranker-old")
    cause.random_votes(rng, 200, among=6)
    first.counted(cause)
    first.stop()
    # A replica named "ranker-lost" read these entries and died before its checkpoint.
    cause.random_votes(rng, 150, among=6)
    delivered = r.xreadgroup(keys.RANKER_GROUP, "ranker-lost", {keys.votes(cause_id): ">"},
                             count=100)
    assert len(delivered[0][1]) == 100
    cause.random_votes(rng, 50, among=6)

    second = serve(name="ranker-new")

    assert_tallies_exact(second.counted(cause), cause)
    eventually(lambda: checkpointed(r, cause) and pending(r, cause_id) == 0,
               "everything acknowledged by the new consumer")
    assert r.hget(keys.checkpoint(cause_id), "consumer").startswith(b"ranker-new-")
    # The consumers that left nothing pending are forgotten by the group.
    consumers = r.xinfo_consumers(keys.votes(cause_id), keys.RANKER_GROUP)
    assert [c["name"] for c in consumers] == [r.hget(keys.checkpoint(cause_id), "consumer")]


def test_entries_redelivered_after_their_checkpoint_are_not_counted_again(serve, r, cause_id):
    """What a crash between storing a checkpoint and acking its entries leaves behind:
    entries the checkpoint covers, delivered again (pending, or new to the group)."""
    rng = np.random.default_rng(16)
    cause = Consultation(r, cause_id).create(5)
    first = serve()
    cause.random_votes(rng, 300, among=5)
    first.counted(cause)
    first.stop()
    assert checkpointed(r, cause) and pending(r, cause_id) == 0
    # The group forgets every delivery; a replica then reads part of the log and dies.
    r.xgroup_setid(keys.votes(cause_id), keys.RANKER_GROUP, "0")
    r.xreadgroup(keys.RANKER_GROUP, "ranker-lost", {keys.votes(cause_id): ">"}, count=120)
    cause.random_votes(rng, 100, among=5)

    second = serve(name="ranker-new")

    assert_tallies_exact(second.counted(cause), cause)
    eventually(lambda: checkpointed(r, cause) and pending(r, cause_id) == 0,
               "the redelivered entries acknowledged")


def test_checkpoints_add_deltas_to_a_base_and_restore_exactly(serve, r, cause_id, monkeypatch):
    """A checkpoint stores the votes since the previous one next to a base snapshot, and
    a new base once they outgrow their share; a ranker started on it counts each vote once."""
    monkeypatch.setattr(checkpoint_policy, "_DELTA_MIN_BYTES", 2_000)  # ~200 votes of deltas
    rng = np.random.default_rng(17)
    cause = Consultation(r, cause_id).create(8)
    first = serve()
    stored_deltas = []
    for _ in range(12):
        cause.random_votes(rng, 60, among=8)
        first.counted(cause)
        eventually(lambda: checkpointed(r, cause), "a checkpoint of every entry")
        stored = r.hgetall(keys.checkpoint(cause_id))
        assert r.llen(keys.checkpoint_deltas(cause_id)) == int(stored[b"deltas"])
        assert r.llen(keys.checkpoint_base(cause_id)) == int(stored[b"base_parts"]) > 0
        stored_deltas.append(int(stored[b"deltas"]))
    first.stop()
    assert max(stored_deltas) >= 2, stored_deltas
    assert any(after < before for before, after in itertools.pairwise(stored_deltas)), \
        f"no new base replaced the deltas: {stored_deltas}"

    cause.random_votes(rng, 100, among=8)
    second = serve()

    assert_tallies_exact(second.counted(cause), cause)
    eventually(lambda: checkpointed(r, cause) and pending(r, cause_id) == 0,
               "everything checkpointed and acknowledged")


def test_a_base_snapshot_left_half_written_changes_nothing(serve, r, cause_id, monkeypatch):
    """A ranker killed while staging a new base leaves the stored checkpoint as it was; its
    next base replaces the leftover, and no vote is lost or counted twice."""
    monkeypatch.setattr(checkpoint_policy, "_DELTA_MIN_BYTES", 500)
    rng = np.random.default_rng(20)
    cause = Consultation(r, cause_id).create(6)
    first = serve()
    cause.random_votes(rng, 200, among=6)
    first.counted(cause)
    eventually(lambda: checkpointed(r, cause), "a checkpoint")
    first.stop()
    saved = r.hgetall(keys.checkpoint(cause_id))
    staging = keys.checkpoint_staging(cause_id)
    r.rpush(staging, "ranker-0:killed-mid-write", b"PWPC half a snapshot")

    cause.random_votes(rng, 50, among=6)
    # The leftover is no checkpoint: a ranker loading now sees the stored one.
    assert r.hgetall(keys.checkpoint(cause_id)) == saved
    second = serve()

    assert_tallies_exact(second.counted(cause), cause)
    cause.random_votes(rng, 150, among=6)  # deltas past 500 bytes: a new base
    assert_tallies_exact(second.counted(cause), cause)
    eventually(lambda: checkpointed(r, cause) and not r.exists(staging),
               "a new base in place of the leftover")
    second.stop()
    assert_tallies_exact(serve().counted(cause), cause)


def children(pid: int) -> list[int]:
    listed = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(child) for child in listed.stdout.split()]


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for its reaper has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_kill_9_between_apply_and_checkpoint_loses_and_doubles_nothing(
        db_url, serve, r, cause_id, tmp_path):
    rng = np.random.default_rng(13)
    cause = Consultation(r, cause_id).create(6)
    cause.random_votes(rng, 300, among=6)
    first = serve()
    first.counted(cause)
    eventually(lambda: checkpointed(r, cause), "the first checkpoint")
    first.stop()
    saved = r.hgetall(keys.checkpoint(cause_id))

    # A ranker process that applies votes but never gets to checkpoint them, then dies.
    cause.random_votes(rng, 200, among=6)
    env = {**os.environ, "REDIS_URL": db_url, "RANKER_PORT": "0",
           "PAIRWISE_INTERNAL_SECRET": INTERNAL_SECRET, "RANKER_FIT_INTERVAL_S": "0.1",
           "RANKER_DISCOVER_INTERVAL_S": "0.1", "RANKER_CHECKPOINT_INTERVAL_S": "3600"}
    with open(tmp_path / "ranker.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "ranker"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        port = served_port(process, tmp_path / "ranker.log")
        channel, stub = stub_for(port)
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT_S)
        Ranker(port, channel, stub, context=None, stopped=True).counted(cause)
        channel.close()
        assert r.hgetall(keys.checkpoint(cause_id)) == saved
        assert pending(r, cause_id) == 200
        workers = children(process.pid)
        assert workers, "the ranker runs its fits in worker processes"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=TIMEOUT_S)
    assert process.returncode == -signal.SIGKILL
    eventually(lambda: not any(running(pid) for pid in workers),
               "the fit workers of the killed ranker to exit")

    cause.random_votes(rng, 100, among=6)
    after = serve()

    assert_tallies_exact(after.counted(cause), cause)
    eventually(lambda: checkpointed(r, cause) and pending(r, cause_id) == 0,
               "everything checkpointed and acknowledged")


def test_a_ranker_whose_lease_ran_out_never_writes_the_checkpoint(serve, r, cause_id, caplog):
    """What a ranker stalled past its lease leaves: another ranker holds the cause's lease
    while the stalled one still runs. The checkpoint save refuses the stalled ranker (it
    closes the cause), and once the lease is free again every vote counts once."""
    caplog.set_level(logging.INFO, logger="ranker")
    rng = np.random.default_rng(15)
    cause = Consultation(r, cause_id).create(6)
    # Renewed every 2 s: the ranker tries several saves before it notices the lost lease.
    ranker = serve(lease_s=6.0)
    cause.random_votes(rng, 100, among=6)
    ranker.counted(cause)
    eventually(lambda: checkpointed(r, cause), "a checkpoint")
    saved = r.hgetall(keys.checkpoint(cause_id))

    r.set(keys.lease(cause_id), "intruder/1", px=60_000)
    cause.random_votes(rng, 40, among=6)
    eventually(lambda: any("held by intruder/1" in getattr(record, "detail", "")
                           for record in caplog.records), "a save refused by the lease")
    eventually(lambda: logged(caplog, "cause lease lost; cause closed", cause_id),
               "the ranker to close the cause whose lease it lost")
    assert r.hgetall(keys.checkpoint(cause_id)) == saved
    with pytest.raises(grpc.RpcError) as caught:
        ranker.read(cause_id)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "handed over from ranker intruder" in caught.value.details()

    r.delete(keys.lease(cause_id))

    assert_tallies_exact(ranker.counted(cause), cause)
    eventually(lambda: checkpointed(r, cause) and pending(r, cause_id) == 0,
               "everything checkpointed and acknowledged")


def test_a_ranker_that_cannot_renew_for_the_lease_time_lets_its_causes_go(
        serve, r, cause_id, caplog, monkeypatch):
    """A ranker whose renewals keep failing (its renewal connection lost while the others
    work) takes its leases as run out once `lease_s` has passed without a renewal and closes
    its causes, instead of counting on while another ranker may own them; renewals back, it
    serves them again and every vote counts once."""
    caplog.set_level(logging.INFO, logger="ranker")
    rng = np.random.default_rng(17)
    cause = Consultation(r, cause_id).create(6)
    ranker = serve(lease_s=3.0)
    cause.random_votes(rng, 60, among=6)
    ranker.counted(cause)

    async def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise redis.exceptions.ConnectionError("renewal connection lost")

    monkeypatch.setattr(cause_leases, "renew", unreachable)
    eventually(lambda: logged(caplog, "no renewal for the lease time; every lease taken as lost"),
               "the ranker to give its leases up")
    eventually(lambda: logged(caplog, "cause lease lost; cause closed", cause_id),
               "the cause closed")
    monkeypatch.undo()

    cause.random_votes(rng, 30, among=6)
    assert_tallies_exact(ranker.counted(cause), cause)


def test_rankers_share_the_causes_and_hand_them_over_as_they_join_and_leave(serve, r, cause_id):
    """Causes are spread over the live rankers; a ranker that joins takes over some of them
    (and only it gains any), one that leaves hands its own over, and every vote counts once
    throughout. A ranker asked for a cause another one serves answers FAILED_PRECONDITION."""
    rng = np.random.default_rng(21)
    causes = [Consultation(r, f"{cause_id}-{k:02d}").create(4) for k in range(24)]
    rankers = [serve(name="ranker-a"), serve(name="ranker-b")]

    def served_by() -> dict[str, list[Ranker]]:
        """For each cause, the rankers that answer with every vote written counted."""
        served: dict[str, list[Ranker]] = {}
        for cause in causes:
            served[cause.cause_id] = []
            for ranker in rankers:
                if ranker.stopped:
                    continue
                try:
                    ranking = ranker.read(cause.cause_id)
                except grpc.RpcError as exc:
                    assert exc.code() in (grpc.StatusCode.FAILED_PRECONDITION,  # type: ignore[attr-defined]
                                          grpc.StatusCode.UNAVAILABLE), exc
                    continue
                if ranking.votes_counted == cause.entries_written:
                    served[cause.cause_id].append(ranker)
        return served

    def owner_ports() -> dict[str, int]:
        """The port of each cause's owner among the rankers the directory lists live."""
        seconds, micros = r.time()
        live = [ranker_id.decode() for ranker_id in r.zrangebyscore(
            keys.RANKERS, f"({seconds * 1000 + micros // 1000}", "+inf")]
        addresses = {k.decode(): v.decode() for k, v in r.hgetall(keys.RANKER_ADDRESSES).items()}
        return {cause.cause_id: int(addresses[str(owner_of(cause.cause_id, live))]
                                    .rpartition(":")[2]) for cause in causes}

    def vote_and_count(what: str) -> dict[str, Ranker]:
        """Vote on every cause; then, once each cause is served by exactly one ranker, its
        owner in the directory, who serves it."""
        for cause in causes:
            cause.random_votes(rng, 10, among=4)
        def settled(served: dict[str, list[Ranker]]) -> bool:
            owners = owner_ports()
            return all(len(by) == 1 and by[0].port == owners[cause]
                       for cause, by in served.items())

        served = eventually(served_by, what, until=settled, timeout=60)
        return {cause: by[0] for cause, by in served.items()}

    before = vote_and_count("every cause counted by exactly one of two rankers")

    rankers.append(serve(name="ranker-c"))
    after_join = vote_and_count("every cause counted by exactly one of three rankers")
    moved = [cause for cause in after_join if after_join[cause] is not before[cause]]
    assert moved and all(after_join[cause] is rankers[2] for cause in moved)

    rankers[0].stop()
    after_leave = vote_and_count("every cause counted by one of the two rankers left")
    assert rankers[0] not in after_leave.values()
    for cause in causes:
        assert_tallies_exact(after_leave[cause.cause_id].read(cause.cause_id), cause)


def register_ranker(r: redis.Redis, ranker_id: str, ttl_s: float) -> None:
    """Register `ranker_id` in the directory of rankers for `ttl_s` seconds by Redis' clock,
    as a ranker's renewal does (pairwise.ranker_directory)."""
    seconds, micros = r.time()
    r.zadd(keys.RANKERS, {ranker_id: seconds * 1000 + micros // 1000 + int(ttl_s * 1000)})
    r.hset(keys.RANKER_ADDRESSES, ranker_id, "127.0.0.1:9")


def test_a_dead_rankers_causes_are_taken_over_though_the_first_attempt_fails(
        serve, r, cause_id, monkeypatch):
    """A ranker dies holding causes with votes to count (its registration is left to run
    out); the survivor's first attempt at their leases fails (Redis answered an error). It
    tries again at once rather than at its next look at the awake causes (an hour away
    here): every vote is counted without a read."""
    rng = np.random.default_rng(23)
    causes = [Consultation(r, f"{cause_id}-{k:02d}").create(4) for k in range(16)]
    for cause in causes:
        cause.random_votes(rng, 20, among=4)
    dead = "ranker-dead-host-1-000000"
    register_ranker(r, dead, ttl_s=30.0)
    survivor = serve(name="ranker-survivor", discover_interval_s=3600.0)
    survivor_id = eventually(
        lambda: next((member.decode() for member in r.zrange(keys.RANKERS, 0, -1)
                      if member.decode().startswith("ranker-survivor-")), None),
        "the survivor registered")
    orphans = [cause for cause in causes
               if owner_of(cause.cause_id, [dead, survivor_id]) == dead]
    assert orphans
    ours = [cause for cause in causes if cause not in orphans]
    # The dead ranker is kept registered until the survivor counted its own causes.
    eventually(lambda: register_ranker(r, dead, ttl_s=3.0) or all(
        checkpointed(r, cause) for cause in ours), "the survivor's own causes counted")
    assert not any(checkpointed(r, cause) for cause in orphans)

    real_acquire = cause_leases.acquire
    failed: list[int] = []

    async def fails_once(scripts: Any, leases: Any, ttl_s: float) -> Any:
        if not failed:
            failed.append(len(leases))
            raise redis.exceptions.ConnectionError("vote store away for a moment")
        return await real_acquire(scripts, leases, ttl_s)

    monkeypatch.setattr(cause_leases, "acquire", fails_once)
    eventually(lambda: all(checkpointed(r, cause) for cause in orphans),
               "the dead ranker's causes counted", timeout=60)
    assert failed == [len(orphans)]
    for cause in orphans:
        assert_tallies_exact(survivor.read(cause.cause_id), cause)


def test_causes_handed_over_to_a_ranker_that_joins_are_loaded_there_without_a_read(
        serve, r, cause_id):
    """Causes loaded at a ranker are loaded by the ranker that takes them over (here one
    that joins) before anyone reads them, though they have nothing left to count: a first
    read then does not wait for a load."""
    rng = np.random.default_rng(24)
    causes = [Consultation(r, f"{cause_id}-{k:02d}").create(4) for k in range(16)]
    for cause in causes:
        cause.random_votes(rng, 10, among=4)
    serve(name="ranker-first")
    eventually(lambda: all(checkpointed(r, cause) and pending(r, cause.cause_id) == 0
                           for cause in causes), "every cause counted")
    serve(name="ranker-joined")

    def leased_by_joined() -> list[str]:
        tokens = [r.get(keys.lease(cause.cause_id)) for cause in causes]
        return [cause.cause_id for cause, token in zip(causes, tokens, strict=True)
                if token is not None and token.decode().startswith("ranker-joined-")]

    moved = eventually(leased_by_joined, "the ranker that joined to hold some causes")
    # Loaded, they stay awake and leased (put to sleep, they would leave the set and their
    # leases would be given back).
    eventually(lambda: all(awake(r, cause_id) for cause_id in moved)
               and set(moved) <= set(leased_by_joined()),
               "the causes it took over loaded")
    assert all(awake(r, cause.cause_id) for cause in causes)


# -- many causes, idle causes ------------------------------------------------------------------


def ranker_connections(r: redis.Redis, name: str) -> int:
    """The Redis connections open now under the client name of ranker `name` (its id: the
    name made unique)."""
    return sum(1 for client in r.client_list() if client.get("name", "").startswith(f"{name}-"))


def sample_connections(r: redis.Redis, name: str, stop: threading.Event,
                       seen: list[int]) -> None:
    while not stop.is_set():
        seen.append(ranker_connections(r, name))
        time.sleep(0.05)


def awake(r: redis.Redis, cause_id: str) -> bool:
    return bool(r.sismember(keys.AWAKE_CAUSES, cause_id))


def logged(caplog: pytest.LogCaptureFixture, msg: str, cause_id: str | None = None) -> int:
    return sum(1 for record in caplog.records if record.msg == msg
               and (cause_id is None or getattr(record, "cause_id", None) == cause_id))


def test_hundreds_of_causes_voted_at_once_are_counted_exactly_over_a_few_connections(
        db_url, serve, r, cause_id, caplog):
    """Votes for 300 causes arrive at once, through ingest: every one is counted once (the
    checkpoints say so, without a read), while the ranker holds at most its pool of Redis
    connections and never finds Redis out of them."""
    caplog.set_level(logging.WARNING, logger="ranker")
    n_causes, n_rounds, per_round = 300, 4, 6
    rng = np.random.default_rng(31)
    causes = [Consultation(r, f"{cause_id}-{k:03d}").create(4) for k in range(n_causes)]
    serve(checkpoint_interval_s=1.0, name="ranker-many")
    stop = threading.Event()
    seen: list[int] = []
    sampler = threading.Thread(target=sample_connections, args=(r, "ranker-many", stop, seen))
    sampler.start()
    try:
        with serve_in_thread(start_ingest, ingest_settings(db_url)) as ingest, \
                grpc.insecure_channel(f"127.0.0.1:{ingest.port}") as channel:
            stub = internal(ingest_pb2_grpc.IngestServiceStub(channel))
            written = dict.fromkeys((cause.cause_id for cause in causes), 0)
            plans = []
            for thread_index in range(4):
                batches = []
                for round_index in range(n_rounds):
                    votes = []
                    for cause in causes[thread_index::4]:
                        for k in range(per_round):
                            a, b = rng.choice(4, size=2, replace=False).tolist()
                            votes.append(types_pb2.ImportedVote(
                                vote_id=f"r{round_index}-{k}", cause_id=cause.cause_id,
                                voter_id=f"u{k}", winner_id=cause.proposal_ids[a],
                                loser_id=cause.proposal_ids[b], tie=bool(k % 5 == 0)))
                            cause._tally("t" if k % 5 == 0 else "w", a, b)
                            written[cause.cause_id] += 1
                    batches.append(votes)
                plans.append(batches)

            def send(batches: list[list[Any]]) -> None:
                for votes in batches:
                    reply = stub.RecordVotes(ingest_pb2.RecordVotesRequest(votes=votes),
                                             timeout=TIMEOUT_S)
                    assert reply.accepted == len(votes)

            senders = [threading.Thread(target=send, args=(batches,)) for batches in plans]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join(timeout=TIMEOUT_S)

            def uncounted() -> list[str]:
                with r.pipeline(transaction=False) as pipe:
                    for cause in causes:
                        pipe.hget(keys.checkpoint(cause.cause_id), "votes_counted")
                    stored = pipe.execute()
                return [cause.cause_id for cause, votes in zip(causes, stored, strict=True)
                        if votes is None or int(votes) != written[cause.cause_id]]

            eventually(uncounted, "every cause's votes in its checkpoint", until=lambda u: not u,
                       timeout=120)
    finally:
        stop.set()
        sampler.join()
    assert max(seen) <= ranker_settings(db_url).redis_max_connections, max(seen)
    assert not any(pending(r, cause.cause_id) for cause in causes)
    assert logged(caplog, "vote log unreachable; reloading from the checkpoint") == 0
    ranker = serve.rankers[0]
    for cause in causes[::60]:
        ranking = ranker.read_when(cause.cause_id,
                                   lambda k, c=cause: k.votes_counted == written[c.cause_id],
                                   "the ranking of every vote")
        got = {e.proposal_id: Tally(e.wins, e.losses, e.ties, e.skips, e.appearances)
               for e in ranking.entries}
        assert got == cause.tallies


def test_an_idle_cause_is_unloaded_and_a_vote_or_a_read_loads_it_again(serve, r, cause_id,
                                                                        caplog):
    caplog.set_level(logging.INFO, logger="ranker.cause_directory")
    rng = np.random.default_rng(32)
    voted = Consultation(r, f"{cause_id}-voted").create(5)
    read = Consultation(r, f"{cause_id}-read").create(5)
    ranker = serve(idle_unload_s=0.5)
    for cause in (voted, read):
        cause.random_votes(rng, 80, among=5)
        eventually(lambda c=cause: checkpointed(r, c), "the votes counted without a read")
        eventually(lambda c=cause: logged(caplog, "cause unloaded", c.cause_id),
                   "the idle cause unloaded")
        assert not awake(r, cause.cause_id)

    # A vote on the sleeping cause loads it; the vote is counted without a read.
    voted.random_votes(rng, 40, among=5)
    eventually(lambda: checkpointed(r, voted), "the new votes counted")
    assert_tallies_exact(ranker.counted(voted), voted)
    # A read of the sleeping cause loads it from its checkpoint.
    assert_tallies_exact(ranker.read(read.cause_id), read)
    for cause in (voted, read):  # idle again for 0.5 s, a cause may sleep and load again
        assert logged(caplog, "cause owned", cause.cause_id) >= 2
    eventually(lambda: logged(caplog, "cause unloaded", voted.cause_id)
               == logged(caplog, "cause owned", voted.cause_id),
               "the cause unloaded again once idle")
    assert pending(r, voted.cause_id) == 0


def test_a_restarted_ranker_loads_no_stored_cause_until_one_is_asked_for(serve, r, cause_id,
                                                                          caplog):
    caplog.set_level(logging.INFO, logger="ranker.cause_directory")
    rng = np.random.default_rng(33)
    causes = [Consultation(r, f"{cause_id}-{k:03d}").create(4) for k in range(120)]
    for cause in causes:
        cause.random_votes(rng, 10, among=4)
    first = serve()
    eventually(lambda: all(checkpointed(r, cause) for cause in causes), "every cause counted",
               timeout=60)
    first.stop()
    # Put to sleep as the ranker stopped: awake, its next owner would load them at once.
    assert r.scard(keys.AWAKE_CAUSES) == 0
    caplog.clear()

    second = serve()
    eventually(lambda: logged(caplog, "stored causes swept"), "the start's sweep")
    assert logged(caplog, "cause owned") == 0

    assert_tallies_exact(second.read(causes[7].cause_id), causes[7])
    assert logged(caplog, "cause owned") == 1


def test_votes_whose_awake_mark_was_lost_are_counted_by_the_sweep(serve, r, cause_id):
    """An ingest killed between writing votes and marking their cause (the client got no OK):
    the periodic sweep finds the votes nobody counted."""
    rng = np.random.default_rng(34)
    cause = Consultation(r, cause_id).create(4)
    cause.random_votes(rng, 30, among=4)
    serve(sweep_interval_s=0.5, idle_unload_s=0.3)
    eventually(lambda: checkpointed(r, cause) and not awake(r, cause_id),
               "the cause counted, then asleep")

    cause.mark_awake = lambda: None  # type: ignore[method-assign]
    cause.random_votes(rng, 20, among=4)
    assert not awake(r, cause_id)

    eventually(lambda: checkpointed(r, cause), "the unmarked votes counted")


def test_a_log_that_loses_its_group_mid_read_stops_no_cause_from_counting(serve, r, cause_id):
    """The shared read fails for every cause it names when one log's group is gone: each
    reloads from its checkpoint, the group is created again, and every vote counts once."""
    rng = np.random.default_rng(35)
    broken = Consultation(r, f"{cause_id}-broken").create(5)
    healthy = Consultation(r, f"{cause_id}-healthy").create(5)
    ranker = serve()
    for cause in (broken, healthy):
        cause.random_votes(rng, 50, among=5)
        ranker.counted(cause)
    r.xgroup_destroy(keys.votes(broken.cause_id), keys.RANKER_GROUP)
    for _ in range(5):
        for cause in (broken, healthy):
            cause.random_votes(rng, 20, among=5)

    for cause in (broken, healthy):
        assert_tallies_exact(ranker.counted(cause), cause)
        eventually(lambda c=cause: checkpointed(r, c) and pending(r, c.cause_id) == 0,
                   "everything checkpointed and acknowledged")


# -- following ------------------------------------------------------------------------------------


def test_follow_sends_the_current_ranking_then_each_new_fit(serve, r, cause_id):
    ranker = serve()
    cause = Consultation(r, cause_id).create(4)
    cause.vote([("w", 0, 1)])
    ranker.counted(cause)

    stream = ranker.stub.FollowRanking(
        ranker_pb2.FollowRankingRequest(cause_id=cause_id, limit=2), timeout=TIMEOUT_S)
    try:
        first = next(stream).ranking
        assert first.votes_counted == 1
        assert len(first.entries) == 2 and first.total_proposals == 4
        cause.vote([("w", 3, 2)] * 20)
        latest = first
        while latest.votes_counted < cause.entries_written:
            latest = next(stream).ranking
        assert latest.votes_counted == cause.entries_written
        assert latest.entries[0].proposal_id == "p0003"
    finally:
        stream.cancel()


# -- fitting never blocks reads ----------------------------------------------------------------


@pytest.mark.slow
def test_reads_are_answered_while_a_large_fit_runs(serve, r, cause_id, caplog):
    caplog.set_level(logging.INFO, logger="ranker.fit_scheduler")
    n_proposals, n_votes = 2_000, 200_000
    rng = np.random.default_rng(14)
    cause = Consultation(r, cause_id).create(n_proposals)
    ranker = serve(fit_interval_s=0.0)
    a = rng.integers(0, n_proposals, size=n_votes)
    b = (a + rng.integers(1, n_proposals, size=n_votes)) % n_proposals
    for start_at in range(0, n_votes, 20_000):
        part = range(start_at, start_at + 20_000)
        cause.vote([("w", int(a[k]), int(b[k])) for k in part])

    answered: list[tuple[float, float, int]] = []
    stop = threading.Event()

    def read_continuously() -> None:
        while not stop.is_set():
            sent = time.time()
            try:
                ranking = ranker.read(cause_id, limit=10)
            except grpc.RpcError as error:
                # Only the very first fit may not be ready yet (a cold fit worker).
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                continue
            answered.append((sent, time.time(), ranking.votes_counted))

    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:
        eventually(lambda: answered and answered[-1][2] == n_votes, "all votes counted")
    finally:
        stop.set()
        reader.join(timeout=TIMEOUT_S)
    fits = [(record.created - record.seconds, record.created)
            for record in caplog.records
            if record.msg == "fit" and getattr(record, "cause_id", "") == cause_id
            and record.n_items == n_proposals and record.n_pairs > 10_000]
    assert fits, "no large fit ran"
    during_a_fit = [read for read in answered
                    if any(begin < read[0] and read[1] < end for begin, end in fits)]
    assert during_a_fit, f"no read answered during any of {len(fits)} large fits"


# -- the fit worker's copy of the counts -------------------------------------------------------


def abilities_of(votes: list[tuple[str, int, int]], n_proposals: int) -> dict[str, float]:
    """The Bradley-Terry abilities of `votes`, fitted here from scratch."""
    codes = {"w": vote_log.WIN_CODE, "t": vote_log.TIE_CODE, "s": vote_log.SKIP_CODE}
    counts = PairCounts(n_proposals)
    counts.apply(np.array([codes[kind] for kind, _, _ in votes], dtype=np.uint8),
                 np.array([a for _, a, _ in votes]), np.array([b for _, _, b in votes]))
    fit = bradley_terry.fit(n_proposals, *counts.subset(np.arange(n_proposals)),
                            prior_strength=bradley_terry.PRIOR_STRENGTH)
    return {f"p{k:04d}": float(ability) for k, ability in enumerate(fit.abilities)}


def test_worker_fits_from_its_copy_of_the_counts_stay_exact_after_it_dies(
        serve, r, cause_id, monkeypatch, caplog):
    """Large fits run in the worker process on its own copies of the causes' counts, sent
    only the new votes each time. After the worker is killed (and after a restart) each copy
    is rebuilt whole, and every ranking still matches a fit of exactly the votes it counts."""
    caplog.set_level(logging.INFO, logger="ranker.fit_scheduler")
    monkeypatch.setattr(fit_pool, "INLINE_MAX_ITEMS", 0)  # every fit goes to the worker
    rng = np.random.default_rng(23)
    n_proposals = 12
    strength = np.linspace(2.0, -2.0, n_proposals)
    causes = [Consultation(r, f"{cause_id}-{name}").create(n_proposals) for name in "ab"]
    written: dict[str, list[tuple[str, int, int]]] = {cause.cause_id: [] for cause in causes}
    ranker = serve(fit_interval_s=0.0)

    def vote_round(cause: Consultation, n: int) -> None:
        votes: list[tuple[str, int, int]] = []
        for _ in range(n):
            a, b = rng.choice(n_proposals, size=2, replace=False).tolist()
            won = rng.random() < 1 / (1 + np.exp(strength[b] - strength[a]))
            votes.append(("t", a, b) if rng.random() < 0.1 else ("w", a, b) if won
                         else ("w", b, a))
        cause.vote(votes)
        written[cause.cause_id].extend(votes)

    def assert_exact(ranker: Ranker, cause: Consultation) -> None:
        ranking = ranker.counted(cause)
        assert_tallies_exact(ranking, cause)
        expected = abilities_of(written[cause.cause_id], n_proposals)
        got = {entry.proposal_id: entry.ability for entry in ranking.entries}
        assert got == pytest.approx(expected, abs=1e-4)

    for _ in range(3):
        for cause in causes:
            vote_round(cause, 150)
            assert_exact(ranker, cause)

    for worker in multiprocessing.active_children():
        if "SpawnProcess" in worker.name:  # the fit pool's worker
            os.kill(worker.pid, signal.SIGKILL)
    # The first cause's next fit finds the worker dead (it fails; a new one starts); the
    # second cause learns only from the new worker that its copy is gone.
    for _ in range(3):
        for cause in causes:
            vote_round(cause, 150)
            assert_exact(ranker, cause)
    assert any(record.msg.startswith("the fit worker has no copy")
               and getattr(record, "cause_id", "") == causes[1].cause_id
               for record in caplog.records)

    ranker.stop()
    restarted = serve(fit_interval_s=0.0)
    for cause in causes:
        vote_round(cause, 100)
        assert_exact(restarted, cause)
