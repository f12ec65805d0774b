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

from pairwise import health_probe
from pairwise.embedded_redis import EmbeddedRedis, free_port
from pairwise.v1 import gateway_pb2, gateway_pb2_grpc, types_pb2

ADMIN = (("authorization", "Bearer fault-admin"),)
N_PROPOSALS = 60
N_VOTES = 24_000
BATCH = 400
PACE_S = 0.1
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


@dataclass
class Service:
    """One service as a real OS process, restartable with the same settings."""

    module: str
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", self.module], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT)
        self.pids.append(self.process.pid)
        wait_serving(f"127.0.0.1:{self.port}", self.process)

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


def wait_serving(addr: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while health_probe.check(addr, timeout_s=1) != health_probe.SERVING:
        assert process.poll() is None, f"process for {addr} exited with {process.returncode}"
        if time.monotonic() > deadline:
            raise TimeoutError(f"{addr} not serving after {timeout} s")
        time.sleep(0.05)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[dict[str, Service]]:
    redis_server = EmbeddedRedis(tmp_path / "redis").start()
    ports = {name: free_port() for name in ("ingest", "ranker", "gateway")}
    env = {**os.environ, "REDIS_URL": redis_server.url, "PAIRWISE_TOKEN_SECRET": "fault-secret",
           "PAIRWISE_ADMIN_TOKEN": "fault-admin", "PAIRWISE_PLATFORM_TOKEN": "fault-platform",
           "INGEST_PORT": str(ports["ingest"]), "RANKER_PORT": str(ports["ranker"]),
           "GATEWAY_PORT": str(ports["gateway"]),
           "INGEST_ADDR": f"127.0.0.1:{ports['ingest']}",
           "RANKER_ADDRS": f"127.0.0.1:{ports['ranker']}",
           "RANKER_FIT_INTERVAL_S": "0.2", "RANKER_CHECKPOINT_INTERVAL_S": "0.3",
           "RANKER_DISCOVER_INTERVAL_S": "0.1", "INTERNAL_TIMEOUT_S": "3"}
    services = {name: Service(name, port, env, tmp_path / f"{name}.log")
                for name, port in ports.items()}
    try:
        for name in ("ingest", "ranker", "gateway"):
            services[name].start()
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


def import_with_retries(stub: gateway_pb2_grpc.GatewayServiceStub,
                        votes: list[types_pb2.ImportedVote], errors: list[str]) -> int:
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
                time.sleep(0.1)
                continue
            if reply.rejected:
                errors.append(f"rejected {reply.rejected}: {list(reply.errors)[:3]}")
            break
        else:
            errors.append(f"batch at {start} never acknowledged")
        # Paced like a migration job, so that the crashes land in the middle of the import.
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
    gateway = f"127.0.0.1:{services['gateway'].port}"
    cause_id = f"fault-{victim}"
    rng = random.Random(7)
    with grpc.insecure_channel(gateway) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        stub.CreateCause(gateway_pb2.CreateCauseRequest(cause_id=cause_id, title="faults"),
                         metadata=ADMIN, timeout=10)
        stub.AddProposals(gateway_pb2.AddProposalsRequest(
            cause_id=cause_id,
            proposals=[types_pb2.NewProposal(proposal_id=f"p{k}", text=f"proposal {k}")
                       for k in range(N_PROPOSALS)]), metadata=ADMIN, timeout=10)
        votes = make_votes(cause_id, rng)
        errors: list[str] = []
        retries: list[int] = []
        client = threading.Thread(
            target=lambda: retries.append(import_with_retries(stub, votes, errors)))
        client.start()
        kills = 0
        while client.is_alive() and kills < 4:
            time.sleep(rng.uniform(0.3, 0.9))
            if not client.is_alive():
                break
            services[victim].kill9()
            kills += 1
            time.sleep(rng.uniform(0.0, 0.3))
            services[victim].start()
        client.join(timeout=240)
        assert not client.is_alive(), "import did not finish in time"
        assert not errors, errors
        assert kills >= 2, "the import finished before the faults could be injected"

        deadline = time.monotonic() + 60
        while True:
            stats = stub.GetCauseStats(gateway_pb2.GetCauseStatsRequest(cause_id=cause_id),
                                       metadata=ADMIN, timeout=5)
            if stats.votes_counted == N_VOTES or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert stats.votes_accepted == N_VOTES, (stats.votes_accepted, retries)
        assert stats.votes_counted == N_VOTES
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
