"""Crash faults: kill -9 the ranker, and separately the ingest service, while a client imports
votes with retries; after recovery every distinct accepted vote is counted exactly once."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from conftest import eventually, served_port

from pairwise import health_probe
from pairwise.embedded_redis import EmbeddedCluster, EmbeddedRedis
from pairwise.v1 import gateway_pb2, gateway_pb2_grpc, types_pb2

ADMIN = (("authorization", "Bearer fault-admin"),)
N_PROPOSALS = 60
N_VOTES = 24_000
BATCH = 400
PACE_S = 0.1
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


@dataclass
class Service:
    """One service as a real OS process. It first binds a port of its choice (port 0, read
    back from its log); restarts bind that same port, where its clients look for it."""

    module: str
    env: dict[str, str]
    log: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**self.env, f"{self.module.upper()}_PORT": str(self.port)}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", self.module], env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
        self.pids.append(self.process.pid)
        if not self.port:
            self.port = served_port(self.process, self.log)
        process = self.process

        def serving() -> bool:
            assert process.poll() is None, f"{self.module} exited with {process.returncode}"
            return health_probe.check(self.addr, timeout_s=1) == health_probe.SERVING

        eventually(serving, f"{self.module} serving on {self.addr}")

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(params=["redis", "redis-cluster"])
def processes(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, Service]]:
    """The services on one embedded Redis, or on an embedded Redis Cluster (3 masters, a
    replica each; ingest waits for a replica to receive each vote)."""
    redis_server: EmbeddedRedis | EmbeddedCluster
    on_cluster: dict[str, str] = {}
    if request.param == "redis-cluster":
        redis_server = EmbeddedCluster(tmp_path / "redis").start()
        on_cluster = {"INGEST_WAIT_REPLICAS": "1"}
    else:
        redis_server = EmbeddedRedis(tmp_path / "redis", unix_socket=True).start()
    env = {**os.environ, **on_cluster, "REDIS_URL": redis_server.url,
           "PAIRWISE_TOKEN_SECRET": "f" * 32,
           "PAIRWISE_INTERNAL_SECRET": "i" * 32,
           "PAIRWISE_ADMIN_TOKEN": "fault-admin", "PAIRWISE_PLATFORM_TOKEN": "fault-platform",
           "RANKER_FIT_INTERVAL_S": "0.2", "RANKER_CHECKPOINT_INTERVAL_S": "0.3",
           "RANKER_DISCOVER_INTERVAL_S": "0.1", "INTERNAL_TIMEOUT_S": "3"}
    services = {name: Service(name, env, tmp_path / f"{name}.log")
                for name in ("ingest", "ranker")}
    try:
        for service in services.values():
            service.start()
        # The gateway learns where ingest listens once it does (the ranker, from the
        # directory of rankers).
        services["gateway"] = Service("gateway", {
            **env, "INGEST_ADDR": services["ingest"].addr}, tmp_path / "gateway.log")
        services["gateway"].start()
        yield services
    finally:
        for service in services.values():
            service.stop()
        redis_server.stop()


def make_votes(cause_id: str, rng: random.Random) -> list[types_pb2.ImportedVote]:
    votes = []
    for n in range(N_VOTES):
        a, b = rng.sample(range(N_PROPOSALS), 2)
        votes.append(types_pb2.ImportedVote(vote_id=f"v{n}", cause_id=cause_id,
                                            voter_id=f"voter{n % 997}", winner_id=f"p{a}",
                                            loser_id=f"p{b}", tie=rng.random() < 0.1))
    return votes


@dataclass
class Progress:
    """How far the importing client got, and where it waits for the fault injector."""

    acknowledged: int = 0
    # Batch count -> event the client waits for after acknowledging that many batches.
    hold: dict[int, threading.Event] = field(default_factory=dict)


def import_with_retries(stub: gateway_pb2_grpc.GatewayServiceStub,
                        votes: list[types_pb2.ImportedVote], errors: list[str],
                        progress: Progress) -> int:
    """Send every batch until it is acknowledged, as a careful client would; returns retries."""
    retries = 0
    for start in range(0, len(votes), BATCH):
        request = gateway_pb2.ImportVotesRequest(votes=votes[start:start + BATCH])
        for _ in range(200):
            try:
                reply = stub.ImportVotes(iter([request]), metadata=ADMIN, timeout=5)
            except grpc.RpcError as exc:
                if exc.code() not in RETRYABLE:
                    errors.append(f"{exc.code()}: {exc.details()}")
                    return retries
                retries += 1
                time.sleep(0.1)   # the client's back-off before a retry
                continue
            if reply.rejected:
                errors.append(f"rejected {reply.rejected}: {list(reply.errors)[:3]}")
            break
        else:
            errors.append(f"batch at {start} never acknowledged")
        progress.acknowledged += 1
        gate = progress.hold.get(progress.acknowledged)
        if gate is not None and not gate.wait(timeout=120):
            errors.append(f"held after batch {progress.acknowledged} and never released")
            return retries
        # Paced like a migration job, not a flood.
        time.sleep(PACE_S)
    return retries


def expected_counts(votes: list[types_pb2.ImportedVote]) -> dict[str, tuple[int, int, int]]:
    wins: collections.Counter[str] = collections.Counter()
    losses: collections.Counter[str] = collections.Counter()
    ties: collections.Counter[str] = collections.Counter()
    for vote in votes:
        if vote.tie:
            ties[vote.winner_id] += 1
            ties[vote.loser_id] += 1
        else:
            wins[vote.winner_id] += 1
            losses[vote.loser_id] += 1
    return {f"p{k}": (wins[f"p{k}"], losses[f"p{k}"], ties[f"p{k}"]) for k in range(N_PROPOSALS)}


def run_with_crashes(services: dict[str, Service], victim: str) -> None:
    cause_id = f"fault-{victim}"
    rng = random.Random(7)
    with grpc.insecure_channel(services["gateway"].addr) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        stub.CreateCause(gateway_pb2.CreateCauseRequest(cause_id=cause_id, title="faults"),
                         metadata=ADMIN, timeout=10)
        stub.AddProposals(gateway_pb2.AddProposalsRequest(
            cause_id=cause_id,
            proposals=[types_pb2.NewProposal(proposal_id=f"p{k}", text=f"proposal {k}")
                       for k in range(N_PROPOSALS)]), metadata=ADMIN, timeout=10)
        votes = make_votes(cause_id, rng)
        # Each crash follows a random acknowledged batch, while the next one is on its way.
        # The client waits at the next crash point until the previous crash's restart is
        # done, so that every crash lands in the middle of the import however fast it runs.
        n_batches = -(-N_VOTES // BATCH)
        crash_after = sorted(rng.sample(range(3, n_batches - 3), 4))
        progress = Progress(hold={at: threading.Event() for at in crash_after[1:]})
        errors: list[str] = []
        retries: list[int] = []
        client = threading.Thread(
            target=lambda: retries.append(import_with_retries(stub, votes, errors, progress)))
        client.start()
        try:
            for k, at in enumerate(crash_after):
                eventually(lambda at=at: progress.acknowledged >= at or not client.is_alive(),
                           f"batch {at} acknowledged", timeout=120, interval=0.01)
                assert client.is_alive(), f"the import stopped early: {errors}"
                services[victim].kill9()
                services[victim].start()
                if k + 1 < len(crash_after):
                    progress.hold[crash_after[k + 1]].set()
        finally:
            for gate in progress.hold.values():
                gate.set()
            client.join(timeout=240)
        assert not client.is_alive(), "import did not finish in time"
        assert not errors, errors
        if victim == "ingest":
            # A crash cut the import: the client had to retry. (Not every crash needs to:
            # the gateway reconnects within a second, and a restart may be done before the
            # next batch leaves.)
            assert retries[0] >= 1, retries

        def cause_stats() -> gateway_pb2.GetCauseStatsResponse | None:
            # The killed ranker's restart may still be on its way: "no ranker is live".
            try:
                return stub.GetCauseStats(gateway_pb2.GetCauseStatsRequest(cause_id=cause_id),
                                          metadata=ADMIN, timeout=5)
            except grpc.RpcError as exc:
                if exc.code() in RETRYABLE:
                    return None
                raise

        stats = eventually(cause_stats, "every vote counted",
                           until=lambda s: s is not None and s.votes_counted == N_VOTES,
                           timeout=60)
        assert stats.votes_accepted == N_VOTES, (stats.votes_accepted, retries)
        ranking = stub.GetRanking(gateway_pb2.GetRankingRequest(cause_id=cause_id, limit=1000),
                                  metadata=ADMIN, timeout=5)
        assert ranking.votes_counted == N_VOTES
        seen = {e.proposal_id: (e.wins, e.losses, e.ties) for e in ranking.entries}
        assert seen == expected_counts(votes)


@pytest.mark.slow
def test_kill9_ranker_during_import_counts_every_vote_once(processes: dict[str, Service]) -> None:
    run_with_crashes(processes, "ranker")


@pytest.mark.slow
def test_kill9_ingest_during_import_counts_every_vote_once(processes: dict[str, Service]) -> None:
    run_with_crashes(processes, "ingest")
