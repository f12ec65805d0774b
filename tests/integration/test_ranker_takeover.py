"""Rankers taking over each other's causes, as separate processes killed with SIGKILL, with
votes flowing through ingest to 300 causes and rankings read through the gateway; and the
same kill on a Redis Cluster (3 masters, the embedded server in cluster mode).

The time from a kill until every cause answers GetRanking again is measured and printed
(`hand-over`), never asserted: on a loaded machine it says more about the machine. So is
where it goes: how long after the kill the killed ranker's registration (and so its leases)
ran out, which no ranker can shorten, and how long its causes then took to load elsewhere:
when the survivors took their leases, had them loaded and first fitted (from the rankers'
logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis
from conftest import (
    ADMIN_TOKEN,
    INTERNAL_SECRET,
    bearer,
    eventually,
    gateway_settings,
    ingest_settings,
    internal,
    own_database,
    serve_in_thread,
    served_port,
)

from gateway.server import start as start_gateway
from ingest.server import start as start_ingest
from pairwise import keys
from pairwise.embedded_redis import EmbeddedCluster
from pairwise.v1 import gateway_pb2, gateway_pb2_grpc, ingest_pb2, ingest_pb2_grpc, types_pb2

N_CAUSES = 300
N_PROPOSALS = 4
KILLS = 2
ADMIN = bearer(ADMIN_TOKEN)


class RankerProcess:
    """`python -m ranker` on `db_url`, named `name` (its id in the directory starts with it)."""

    def __init__(self, db_url: str, name: str, folder: Path) -> None:
        self.name = name
        self.log = folder / f"{name}.log"
        # The rankers' own defaults otherwise (lease, fit and checkpoint intervals): the
        # hand-over measured is the one an operator gets.
        env = {**os.environ, "REDIS_URL": db_url, "RANKER_PORT": "0", "RANKER_NAME": name,
               "PAIRWISE_INTERNAL_SECRET": INTERNAL_SECRET}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "ranker"], env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
        self.port = served_port(self.process, self.log)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def causes_leased(r: redis.Redis, cause_ids: list[str], name: str) -> list[str]:
    """Those of `cause_ids` whose lease the ranker named `name` holds (its lease tokens start
    with its id, which starts with its name)."""
    with r.pipeline(transaction=False) as pipe:
        for cause_id in cause_ids:
            pipe.get(keys.lease(cause_id))
        tokens = pipe.execute()
    return [cause_id for cause_id, token in zip(cause_ids, tokens, strict=True)
            if token and token.decode().startswith(f"{name}-")]


def leases_held(r: redis.Redis, cause_ids: list[str], name: str) -> int:
    """How many of `cause_ids` the ranker named `name` holds the lease of."""
    return len(causes_leased(r, cause_ids, name))


def registration_left_s(r: redis.Redis, name: str) -> float:
    """Seconds until the registration of the ranker named `name` runs out in the directory
    (by Redis' clock, as the directory's scripts judge it), if it is not renewed."""
    now = r.time()
    # A cluster client answers for one node, in a dict by node: the nodes share a host.
    now_s, now_us = next(iter(now.values())) if isinstance(now, dict) else now
    expiries = [score for member, score in r.zrange(keys.RANKERS, 0, -1, withscores=True)
                if member.decode().startswith(f"{name}-")]
    assert len(expiries) == 1, expiries
    return expiries[0] / 1000 - (now_s + now_us / 1e6)


class Steps:
    """When the survivors of a kill took each of the killed ranker's causes over, in seconds
    after the kill, from the rankers' logs: the lease taken (`cause owned`), the cause
    loaded, and its first fit."""

    MESSAGES = {"cause owned": "leased", "cause loaded": "loaded", "fit": "fitted"}

    def __init__(self, folder: Path, cause_ids: list[str], since: float, until: float) -> None:
        wanted = set(cause_ids)
        self.seconds: dict[str, dict[str, float]] = {step: {} for step in self.MESSAGES.values()}
        for log in folder.glob("ranker-*.log"):
            for line in log.read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                step = self.MESSAGES.get(record.get("msg"))
                cause_id = record.get("cause_id")
                if step is None or cause_id not in wanted or not since <= record["ts"] <= until:
                    continue
                seen = self.seconds[step]
                seen[cause_id] = min(seen.get(cause_id, float("inf")), record["ts"] - since)

    def shown(self) -> str:
        parts = []
        for step, seconds in self.seconds.items():
            if seconds:
                parts.append(f"{step} {min(seconds.values()):.2f}-{max(seconds.values()):.2f} s "
                             f"(median {statistics.median(seconds.values()):.2f}, "
                             f"{len(seconds)} causes)")
        return "; ".join(parts) or "none seen"


class VoteFlow:
    """Imports votes through ingest on random causes, in a thread, until stopped; counts the
    votes ingest acknowledged per cause (a failed call is sent again with the same ids until
    it is answered, so each vote is acknowledged once)."""

    def __init__(self, ingest: ingest_pb2_grpc.IngestServiceStub, cause_ids: list[str]) -> None:
        self._ingest = ingest
        self._cause_ids = cause_ids
        self.acknowledged: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> VoteFlow:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=60)
            assert not self._thread.is_alive()

    def _run(self) -> None:
        rng = random.Random(5)
        for batch in itertools.count():
            if self._stop.is_set():
                return
            votes = []
            for k, cause_id in enumerate(rng.sample(self._cause_ids, 30)):
                winner, loser = rng.sample(range(N_PROPOSALS), 2)
                votes.append(types_pb2.ImportedVote(
                    vote_id=f"b{batch}-{k}", cause_id=cause_id, voter_id=f"u{batch % 50}",
                    winner_id=f"p{winner}", loser_id=f"p{loser}"))
            while True:
                try:
                    reply = self._ingest.RecordVotes(
                        ingest_pb2.RecordVotesRequest(votes=votes), timeout=10)
                except grpc.RpcError:
                    time.sleep(0.1)
                    continue
                assert reply.rejected == 0, reply.errors
                break
            self.acknowledged.update(vote.cause_id for vote in votes)
            time.sleep(0.2)  # ~150 votes/s: a vote on each cause every 2 s


def read_ranking(stub: gateway_pb2_grpc.GatewayServiceStub,
                 cause_id: str) -> gateway_pb2.GetRankingResponse | None:
    """The cause's ranking through the gateway, or None when it answers UNAVAILABLE."""
    try:
        return stub.GetRanking(gateway_pb2.GetRankingRequest(cause_id=cause_id, limit=1),
                               metadata=ADMIN, timeout=30)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc  # type: ignore[attr-defined]
        return None


class Answers:
    """When each cause first answered after an event, and how many reads got no answer in
    time (DEADLINE_EXCEEDED: on a starved machine a read can wait for a core that long)."""

    def __init__(self, seconds: dict[str, float], timed_out: int) -> None:
        self.seconds = seconds
        self.timed_out = timed_out

    def worst(self, cause_ids: list[str] | None = None) -> float:
        return max(self.seconds[c] for c in (cause_ids or self.seconds))

    def median(self, cause_ids: list[str] | None = None) -> float:
        return statistics.median(self.seconds[c] for c in (cause_ids or self.seconds))


def seconds_until_every_cause_answers(gateway_addr: str, cause_ids: list[str],
                                      since: float) -> Answers:
    """Read every cause through the gateway, all at once, until each has answered once; the
    seconds from `since` (time.monotonic) to each cause's first answer."""
    timed_out = 0

    async def first_answer(stub: gateway_pb2_grpc.GatewayServiceStub, cause_id: str) -> float:
        nonlocal timed_out
        request = gateway_pb2.GetRankingRequest(cause_id=cause_id, limit=1)
        while True:
            try:
                await stub.GetRanking(request, metadata=ADMIN, timeout=30)
                return time.monotonic() - since
            except grpc.aio.AioRpcError as exc:
                assert exc.code() in (grpc.StatusCode.UNAVAILABLE,
                                      grpc.StatusCode.DEADLINE_EXCEEDED), exc
                timed_out += exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                assert time.monotonic() - since < 120, f"cause {cause_id} never answered"
            # Coarse enough not to starve the rankers of CPU with reads (300 causes).
            await asyncio.sleep(0.2)

    async def every_cause() -> dict[str, float]:
        async with grpc.aio.insecure_channel(gateway_addr) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            seconds = await asyncio.gather(*(first_answer(stub, c) for c in cause_ids))
            return dict(zip(cause_ids, seconds, strict=True))

    answers = asyncio.run(every_cause())
    return Answers(answers, timed_out)


def counted_differs(stub: gateway_pb2_grpc.GatewayServiceStub, cause_ids: list[str],
                    acknowledged: Counter[str]) -> dict[str, tuple[int, int]]:
    """The causes whose ranking does not count exactly the votes ingest acknowledged for
    them: (counted, acknowledged), counted -1 while a cause answers UNAVAILABLE. Counting
    more than was acknowledged fails the test."""
    differs = {}
    for cause_id in cause_ids:
        ranking = read_ranking(stub, cause_id)
        counted = -1 if ranking is None else ranking.votes_counted
        assert counted <= acknowledged[cause_id], (cause_id, counted)
        if counted != acknowledged[cause_id]:
            differs[cause_id] = (counted, acknowledged[cause_id])
    return differs


def create_causes(stub: gateway_pb2_grpc.GatewayServiceStub, cause_ids: list[str]) -> None:
    for cause_id in cause_ids:
        stub.CreateCause(gateway_pb2.CreateCauseRequest(cause_id=cause_id, title="Q ?"),
                         metadata=ADMIN, timeout=10)
        stub.AddProposals(gateway_pb2.AddProposalsRequest(cause_id=cause_id, proposals=[
            types_pb2.NewProposal(proposal_id=f"p{k}", text=f"Proposition {k}")
            for k in range(N_PROPOSALS)]), metadata=ADMIN, timeout=10)


@pytest.fixture
def db_url(redis_url: str) -> Iterator[str]:
    url = own_database(redis_url, "takeover")
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url


@pytest.mark.slow
def test_a_killed_rankers_causes_are_served_again_and_every_vote_counts_once(
        db_url, tmp_path, capsys):
    """Three rankers, 300 causes, votes flowing: a ranker killed with SIGKILL has its causes
    served by the others, a ranker started afterwards takes some over, and in the end every
    vote ingest acknowledged is counted exactly once."""
    r = redis.Redis.from_url(db_url)
    rankers: list[RankerProcess] = []
    names = (f"ranker-{k}" for k in itertools.count())
    kills: list[Answers] = []  # per kill, the seconds until each cause answered
    moved: list[list[str]] = []  # per kill, the causes the killed ranker held
    ran_out: list[float] = []  # per kill, when its registration and leases ran out (s)
    windows: list[tuple[float, float]] = []  # per kill, its time and the next join's (epoch s)
    joins: list[Answers] = []  # the same once a ranker joined afterwards
    try:
        with serve_in_thread(start_ingest, ingest_settings(db_url)) as ingest, \
                serve_in_thread(start_gateway, gateway_settings(
                    db_url, f"127.0.0.1:{ingest.port}")) as gateway, \
                grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as gateway_channel, \
                grpc.insecure_channel(f"127.0.0.1:{ingest.port}") as ingest_channel, \
                contextlib.ExitStack() as stack:  # closed first: the votes stop first
            stub = gateway_pb2_grpc.GatewayServiceStub(gateway_channel)
            gateway_addr = f"127.0.0.1:{gateway.port}"
            rankers.extend(RankerProcess(db_url, next(names), tmp_path) for _ in range(3))
            cause_ids = [f"takeover-{k:03d}" for k in range(N_CAUSES)]
            create_causes(stub, cause_ids)
            flow = VoteFlow(internal(ingest_pb2_grpc.IngestServiceStub(ingest_channel)), cause_ids)
            stack.callback(flow.stop)
            flow.start()
            seconds_until_every_cause_answers(gateway_addr, cause_ids, time.monotonic())

            for _ in range(KILLS):
                victim = rankers.pop(0)
                eventually(lambda v=victim: leases_held(r, cause_ids, v.name),
                           f"{victim.name} to serve some causes", timeout=60)
                moved.append(causes_leased(r, cause_ids, victim.name))
                victim.kill()
                killed_at, killed_wall = time.monotonic(), time.time()
                # Read once it can renew no more (its entry stays until a renewal sweeps it).
                ran_out.append(registration_left_s(r, victim.name)
                               + time.monotonic() - killed_at)
                kills.append(seconds_until_every_cause_answers(gateway_addr, cause_ids,
                                                               killed_at))
                windows.append((killed_wall, time.time()))
                joined = RankerProcess(db_url, next(names), tmp_path)
                rankers.append(joined)
                joined_at = time.monotonic()
                eventually(lambda j=joined: leases_held(r, cause_ids, j.name),
                           f"the ranker that joined, {joined.name}, to take some causes over",
                           timeout=60)
                joins.append(seconds_until_every_cause_answers(gateway_addr, cause_ids,
                                                               joined_at))

            flow.stop()
            acknowledged = flow.acknowledged
            assert sum(acknowledged.values()) > 0

            eventually(lambda: counted_differs(stub, cause_ids, acknowledged),
                       "every acknowledged vote counted exactly once",
                       until=lambda differs: not differs, timeout=120, interval=0.5)
    finally:
        for ranker in rankers:
            ranker.stop()
        r.close()
    with capsys.disabled():
        for k, (killed, held, left_s, joined, window) in enumerate(
                zip(kills, moved, ran_out, joins, windows, strict=True), 1):
            print(f"\nhand-over: kill {k}: every cause answered again within "
                  f"{killed.worst():.2f} s (median cause {killed.median():.2f} s); the "
                  f"killed ranker's registration and leases ran out {left_s:.2f} s after "
                  f"the kill, and its {len(held)} causes answered within "
                  f"{killed.worst(held):.2f} s (median {killed.median(held):.2f} s), "
                  f"after the survivors {Steps(tmp_path, held, *window).shown()}; "
                  f"after the next ranker joined, every cause within {joined.worst():.2f} s; "
                  f"reads past their 30 s deadline: {killed.timed_out + joined.timed_out}")


CLUSTER_CAUSES = 60


@pytest.fixture
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    """Three masters without replicas: a ranker's death, not a master's, is tried here."""
    cluster = EmbeddedCluster(tmp_path_factory.mktemp("takeover-cluster"), masters=3,
                              replicas=0).start()
    yield cluster
    cluster.stop()


@pytest.mark.slow
def test_on_a_redis_cluster_a_killed_rankers_causes_are_served_again_and_every_vote_counts_once(
        redis_cluster, tmp_path, capsys):
    """Three rankers on a Redis Cluster, causes on every master, votes flowing: a ranker
    killed with SIGKILL has its causes served by the others, and every vote ingest
    acknowledged is counted exactly once."""
    url = redis_cluster.url
    r = redis.RedisCluster(host="127.0.0.1", port=redis_cluster.nodes[0].port)
    rankers: list[RankerProcess] = []
    try:
        with serve_in_thread(start_ingest, ingest_settings(url)) as ingest, \
                serve_in_thread(start_gateway, gateway_settings(
                    url, f"127.0.0.1:{ingest.port}")) as gateway, \
                grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as gateway_channel, \
                grpc.insecure_channel(f"127.0.0.1:{ingest.port}") as ingest_channel, \
                contextlib.ExitStack() as stack:  # closed first: the votes stop first
            stub = gateway_pb2_grpc.GatewayServiceStub(gateway_channel)
            gateway_addr = f"127.0.0.1:{gateway.port}"
            rankers.extend(RankerProcess(url, f"ranker-{k}", tmp_path) for k in range(3))
            cause_ids = [f"cluster-takeover-{k:03d}" for k in range(CLUSTER_CAUSES)]
            masters = {r.get_node_from_key(keys.votes(cause_id)).name for cause_id in cause_ids}
            assert len(masters) == 3, masters
            create_causes(stub, cause_ids)
            flow = VoteFlow(internal(ingest_pb2_grpc.IngestServiceStub(ingest_channel)), cause_ids)
            stack.callback(flow.stop)
            flow.start()
            seconds_until_every_cause_answers(gateway_addr, cause_ids, time.monotonic())

            victim = rankers.pop(0)
            eventually(lambda: leases_held(r, cause_ids, victim.name),
                       f"{victim.name} to serve some causes", timeout=60)
            held = causes_leased(r, cause_ids, victim.name)
            victim.kill()
            killed_at, killed_wall = time.monotonic(), time.time()
            left_s = registration_left_s(r, victim.name) + time.monotonic() - killed_at
            killed = seconds_until_every_cause_answers(gateway_addr, cause_ids, killed_at)
            window = (killed_wall, time.time())
            # Votes kept flowing meanwhile: some acknowledged after the kill, to the causes
            # on their way to another ranker.
            before = sum(flow.acknowledged.values())
            eventually(lambda: sum(flow.acknowledged.values()) > before,
                       "votes acknowledged after every cause answered again")
            flow.stop()
            acknowledged = flow.acknowledged
            eventually(lambda: counted_differs(stub, cause_ids, acknowledged),
                       "every acknowledged vote counted exactly once",
                       until=lambda differs: not differs, timeout=120, interval=0.5)
    finally:
        for ranker in rankers:
            ranker.stop()
        r.close()
    with capsys.disabled():
        print(f"\nhand-over on a Redis Cluster: every cause answered again within "
              f"{killed.worst():.2f} s (median cause {killed.median():.2f} s); the killed "
              f"ranker's registration and leases ran out {left_s:.2f} s after the kill, and "
              f"its {len(held)} causes answered within {killed.worst(held):.2f} s (median "
              f"{killed.median(held):.2f} s), after the survivors "
              f"{Steps(tmp_path, held, *window).shown()}; reads past their 30 s deadline: "
              f"{killed.timed_out}; votes acknowledged {sum(acknowledged.values())}")
