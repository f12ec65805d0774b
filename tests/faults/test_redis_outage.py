"""Redis away for 30 s — frozen (SIGSTOP), or killed and restarted on its port from its AOF —
while voters vote, a partner imports and a dashboard reads: every call answers within its
deadline (UNAVAILABLE while Redis is away), the services recover without being restarted,
and every acknowledged vote is counted exactly once."""

from __future__ import annotations

import collections
import functools
import os
import random
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
import redis.cluster
from conftest import (
    ADMIN_TOKEN,
    PLATFORM_TOKEN,
    bearer,
    eventually,
    gateway_settings,
    ingest_settings,
    ranker_settings,
    serve_in_thread,
)

from gateway.server import start as start_gateway
from ingest.server import start as start_ingest
from pairwise import health_probe, keys, vote_log
from pairwise.embedded_redis import EmbeddedCluster, EmbeddedRedis, free_port
from pairwise.v1 import gateway_pb2, gateway_pb2_grpc, types_pb2
from ranker.server import start as start_ranker

OUTAGE_S = 30.0
# The deadline of the documented client (docs/examples/vote_flow.py).
DEADLINE_S = 5.0
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
N_PROPOSALS = 12
VOTERS_AT_ONCE = 4
IMPORT_BATCH = 50
ADMIN, PLATFORM = bearer(ADMIN_TOKEN), bearer(PLATFORM_TOKEN)
CHOICES = (types_pb2.CHOICE_LEFT, types_pb2.CHOICE_RIGHT, types_pb2.CHOICE_TIE)


@dataclass
class Ledger:
    """What the clients saw: each call's status by phase, and the votes acknowledged."""

    phase: str = "before"
    statuses: collections.Counter[tuple[str, str, str]] = field(
        default_factory=collections.Counter)
    acknowledged: collections.Counter[str] = field(default_factory=collections.Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, rpc: str, code: grpc.StatusCode) -> None:
        with self.lock:
            self.statuses[(self.phase, rpc, code.name)] += 1

    def acked(self, vote_ids: Iterator[str] | list[str]) -> None:
        with self.lock:
            self.acknowledged.update(vote_ids)

    def count(self, phase: str, rpc: str, code: str = "OK") -> int:
        with self.lock:
            return self.statuses[(phase, rpc, code)]


def until_ok(ledger: Ledger, rpc: str, call: Callable[[], Any]) -> Any:
    """`call()`'s reply, retried as the contract says (same request) while it answers
    UNAVAILABLE or DEADLINE_EXCEEDED; None after another status (noted as a failure)."""
    while True:
        try:
            reply = call()
        except grpc.RpcError as exc:
            ledger.saw(rpc, exc.code())
            if exc.code() not in RETRYABLE:
                ledger.failures.append(f"{rpc}: {exc.code().name} {exc.details()}")
                return None
            ledger.stop.wait(0.2)  # the client's back-off
            continue
        ledger.saw(rpc, grpc.StatusCode.OK)
        return reply


def vote(stub: gateway_pb2_grpc.GatewayServiceStub, cause_id: str, worker: int,
         ledger: Ledger) -> None:
    """One voter after another (ten votes each, well inside the rate limit), until stopped;
    each vote retried with its key until acknowledged."""
    rng = random.Random(worker)
    n = 0
    while not ledger.stop.is_set():
        voter_id = f"voter-{worker}-{n // 10}"
        ask = gateway_pb2.NextPairRequest(cause_id=cause_id, voter_id=voter_id)
        pair = until_ok(ledger, "NextPair", functools.partial(
            stub.NextPair, ask, metadata=PLATFORM, timeout=DEADLINE_S))
        if pair is None:
            return
        if not submit(stub, cause_id, voter_id, pair, rng.choice(CHOICES),
                      f"vote-{worker}-{n}", ledger):
            return
        n += 1


def submit(stub: gateway_pb2_grpc.GatewayServiceStub, cause_id: str, voter_id: str,
           pair: gateway_pb2.NextPairResponse, choice: int, key: str, ledger: Ledger) -> bool:
    """The vote on `pair`, retried with its key until acknowledged (noted in the ledger);
    False when it was refused otherwise."""
    request = gateway_pb2.SubmitVoteRequest(
        cause_id=cause_id, voter_id=voter_id, prompt_token=pair.prompt_token, choice=choice,
        idempotency_key=key)
    receipt = until_ok(ledger, "SubmitVote", functools.partial(
        stub.SubmitVote, request, metadata=PLATFORM, timeout=DEADLINE_S))
    if receipt is None:
        return False
    ledger.acked([receipt.vote_id])
    return True


def import_votes(stub: gateway_pb2_grpc.GatewayServiceStub, cause_id: str,
                 ledger: Ledger) -> None:
    """A partner's import: each batch resent until acknowledged, until stopped."""
    rng = random.Random(99)
    n = 0
    while not ledger.stop.is_set():
        batch = []
        for _ in range(IMPORT_BATCH):
            winner, loser = rng.sample(range(N_PROPOSALS), 2)
            batch.append(types_pb2.ImportedVote(
                vote_id=f"imported-{n}", cause_id=cause_id, voter_id=f"past-{n % 37}",
                winner_id=f"p{winner}", loser_id=f"p{loser}"))
            n += 1
        request = gateway_pb2.ImportVotesRequest(votes=batch)
        def send(request: gateway_pb2.ImportVotesRequest = request) -> Any:
            # A fresh stream per attempt: a retry resends the whole batch.
            return stub.ImportVotes(iter([request]), metadata=ADMIN, timeout=DEADLINE_S)

        reply = until_ok(ledger, "ImportVotes", send)
        if reply is None:
            return
        if reply.rejected:
            ledger.failures.append(f"ImportVotes rejected {list(reply.errors)[:3]}")
        ledger.acked(v.vote_id for v in batch)
        ledger.stop.wait(0.2)


def look(stub: gateway_pb2_grpc.GatewayServiceStub, cause_id: str, ledger: Ledger) -> None:
    """A dashboard reading the ranking and the counters, and newcomers asking for their
    first pair (no retries: the next look is one)."""
    newcomers = (f"newcomer-{n}" for n in range(1_000_000))
    calls = {
        "GetRanking": lambda: stub.GetRanking(gateway_pb2.GetRankingRequest(
            cause_id=cause_id, limit=5), metadata=PLATFORM, timeout=DEADLINE_S),
        "GetCauseStats": lambda: stub.GetCauseStats(gateway_pb2.GetCauseStatsRequest(
            cause_id=cause_id), metadata=PLATFORM, timeout=DEADLINE_S),
        "NextPair": lambda: stub.NextPair(gateway_pb2.NextPairRequest(
            cause_id=cause_id, voter_id=next(newcomers)), metadata=PLATFORM,
            timeout=DEADLINE_S),
    }
    while not ledger.stop.is_set():
        for rpc, call in calls.items():
            try:
                call()
                ledger.saw(rpc, grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                ledger.saw(rpc, exc.code())
        ledger.stop.wait(0.5)


@pytest.fixture(params=["redis", "redis-cluster"])
def redis_on_a_port(tmp_path: Path, request: pytest.FixtureRequest,
                    ) -> Iterator[EmbeddedRedis | EmbeddedCluster]:
    # A TCP port, as `make up` and compose run it (a frozen server still accepts
    # connections); a fixed one, so that a restart serves where the clients look. Or a
    # Redis Cluster (3 masters, a replica each), all of it away at once.
    server = (EmbeddedCluster(tmp_path / "redis").start() if request.param == "redis-cluster"
              else EmbeddedRedis(tmp_path / "redis", port=free_port()).start())
    yield server
    for node in server.nodes if isinstance(server, EmbeddedCluster) else [server]:
        if node.process is not None and node.process.poll() is None:
            os.kill(node.process.pid, signal.SIGCONT)  # a frozen server ignores SIGTERM
    server.stop()


def take_redis_away(server: EmbeddedRedis | EmbeddedCluster,
                    how: str) -> Callable[[], object]:
    """Freeze or kill `server` (every node of a cluster); returns how to bring it back (its
    ports, its AOF)."""
    if isinstance(server, EmbeddedCluster):
        comebacks = [take_redis_away(node, how) for node in server.nodes]
        return lambda: [comeback() for comeback in comebacks]
    assert server.process is not None
    if how == "frozen":
        pid = server.process.pid
        os.kill(pid, signal.SIGSTOP)
        return lambda: os.kill(pid, signal.SIGCONT)
    server.kill()
    return server.start


def vote_log_store(server: EmbeddedRedis | EmbeddedCluster) -> Any:
    """A plain client reading the vote logs of `server`."""
    if isinstance(server, EmbeddedCluster):
        return redis.cluster.RedisCluster(host="127.0.0.1", port=server.nodes[0].port)
    return redis.Redis.from_url(server.url)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["frozen", "restarted"])
def test_thirty_seconds_without_redis_are_survived(
        redis_on_a_port: EmbeddedRedis | EmbeddedCluster, how: str) -> None:
    url = redis_on_a_port.url
    cause_id = f"outage-{how}"
    with (serve_in_thread(start_ingest, ingest_settings(url)) as ingest,
          serve_in_thread(start_ranker, ranker_settings(url)) as ranker):
        addrs = {"ingest": f"127.0.0.1:{ingest.port}", "ranker": f"127.0.0.1:{ranker.port}"}
        with (serve_in_thread(start_gateway, gateway_settings(url, addrs["ingest"])) as gateway,
              grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel):
            addrs["gateway"] = f"127.0.0.1:{gateway.port}"
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            stub.CreateCause(gateway_pb2.CreateCauseRequest(cause_id=cause_id, title="outage"),
                             metadata=ADMIN, timeout=DEADLINE_S)
            stub.AddProposals(gateway_pb2.AddProposalsRequest(cause_id=cause_id, proposals=[
                types_pb2.NewProposal(proposal_id=f"p{k}", text=f"proposal {k}")
                for k in range(N_PROPOSALS)]), metadata=ADMIN, timeout=DEADLINE_S)

            ledger = Ledger()
            clients = [threading.Thread(target=vote, args=(stub, cause_id, w, ledger))
                       for w in range(VOTERS_AT_ONCE)]
            clients += [threading.Thread(target=import_votes, args=(stub, cause_id, ledger)),
                        threading.Thread(target=look, args=(stub, cause_id, ledger))]
            for client in clients:
                client.start()
            try:
                eventually(lambda: ledger.count("before", "SubmitVote") >= 20
                           and ledger.count("before", "ImportVotes") >= 2, "votes before")
                # A voter with a pair in hand as Redis goes: its vote is sent during the
                # outage whatever the other voters happen to be doing then.
                in_hand = stub.NextPair(gateway_pb2.NextPairRequest(
                    cause_id=cause_id, voter_id="voter-in-hand"), metadata=PLATFORM,
                    timeout=DEADLINE_S)
                ledger.phase = "outage"
                bring_back = take_redis_away(redis_on_a_port, how)
                late = threading.Thread(target=submit, args=(
                    stub, cause_id, "voter-in-hand", in_hand, CHOICES[0], "vote-in-hand",
                    ledger))
                clients.append(late)
                late.start()
                # The outage itself: the clients keep calling meanwhile.
                ledger.stop.wait(OUTAGE_S)
                bring_back()
                ledger.phase = "after"
                eventually(lambda: ledger.count("after", "SubmitVote") >= 20
                           and ledger.count("after", "ImportVotes") >= 2,
                           "votes acknowledged again, no service restarted", timeout=60)
            finally:
                ledger.stop.set()
                for client in clients:
                    client.join(timeout=60)
            assert not any(client.is_alive() for client in clients)
            assert not ledger.failures, ledger.failures

            # While Redis was away, every call was answered, and before its deadline: writes
            # and pair draws UNAVAILABLE (retried), nothing else.
            seen = {(phase, rpc, code) for (phase, rpc, code) in ledger.statuses}
            codes = {code for (_, _, code) in seen}
            assert codes <= {"OK", "UNAVAILABLE"}, {
                key: n for key, n in ledger.statuses.items() if key[2] != "OK"}
            for rpc in ("NextPair", "SubmitVote", "ImportVotes", "GetCauseStats"):
                assert ("outage", rpc, "UNAVAILABLE") in seen, (rpc, ledger.statuses)

            # Every acknowledged vote is in the log once, and counted once.
            assert set(ledger.acknowledged.values()) == {1}
            store = vote_log_store(redis_on_a_port)
            logged = collections.Counter(
                v.vote_id for _, fields in store.xrange(keys.votes(cause_id))
                for v in vote_log.votes_of(fields))
            store.close()
            assert logged == ledger.acknowledged
            def cause_stats() -> gateway_pb2.GetCauseStatsResponse | None:
                # The ranker may still be on its way back into the directory (UNAVAILABLE:
                # a cluster is whole again a moment after its nodes are up).
                try:
                    return stub.GetCauseStats(gateway_pb2.GetCauseStatsRequest(
                        cause_id=cause_id), metadata=ADMIN, timeout=DEADLINE_S)
                except grpc.RpcError as exc:
                    if exc.code() not in RETRYABLE:
                        raise
                    return None

            stats = eventually(
                cause_stats, "every acknowledged vote counted",
                until=lambda s: s is not None and s.votes_counted == len(ledger.acknowledged))
            assert stats.votes_accepted == len(ledger.acknowledged)
            ranking = stub.GetRanking(gateway_pb2.GetRankingRequest(cause_id=cause_id),
                                      metadata=ADMIN, timeout=DEADLINE_S)
            assert ranking.votes_counted == len(ledger.acknowledged)
            for name, addr in addrs.items():
                assert health_probe.check(addr, timeout_s=2) == health_probe.SERVING, name
            during = {rpc: n for (phase, rpc, code), n in ledger.statuses.items()
                      if phase == "outage" and code == "UNAVAILABLE"}
            print(f"Redis {how} {OUTAGE_S:.0f} s: {len(ledger.acknowledged)} votes acknowledged,"
                  f" each counted once; UNAVAILABLE answers meanwhile: {during}")
