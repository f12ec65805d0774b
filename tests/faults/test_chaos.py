"""Chaos: the gateway, ingest, the ranker and Redis killed with SIGKILL in turn, dozens of
times, while voters vote (NextPair, then SubmitVote bringing the next pair), a partner
imports batches of votes and a dashboard reads, every client retrying as the contract says
(the same idempotency key, the same vote ids). Afterwards every acknowledged vote is in the
log once and counted once: the log holds exactly the acknowledged votes, each as it was
sent, and the cause's counters and the ranking's wins, losses and ties per proposal are
theirs; nothing is lost or doubled.

Each kill lands on a serving process after the cluster has acknowledged votes of both kinds
since the previous kill (and, before a ranker's, answered a ranking read). The services run
as forks of one process that imported them once (`service_launcher.py`), so a restart takes
well under a second and the default CHAOS_KILLS=52 kills fit in about a minute; set it
higher for a longer run. It runs on one Redis, then on a Redis Cluster (half as many kills,
Redis's being a master's). The run prints the kills done, the votes checked, the calls the
clients had to retry, and how soon votes were acknowledged again after each kind of kill.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import ADMIN_TOKEN, INTERNAL_SECRET, PLATFORM_TOKEN, bearer, eventually
from redis.crc import key_slot

from pairwise import health_probe, keys
from pairwise.embedded_redis import EmbeddedCluster, EmbeddedRedis, free_port
from pairwise.v1 import gateway_pb2, gateway_pb2_grpc, types_pb2

KILLS = int(os.environ.get("CHAOS_KILLS", "52"))
CAUSE_ID = "chaos"
VICTIMS = ("gateway", "ingest", "ranker", "redis")
N_PROPOSALS = 12
VOTERS_AT_ONCE = 3
VOTES_PER_VOTER = 10
IMPORT_BATCH = 100
# The deadline of the documented client (docs/examples/vote_flow.py).
DEADLINE_S = 5.0
# A vote still unacknowledged after retrying this long is a failure of the test's own.
GIVE_UP_S = 90.0
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
ADMIN, PLATFORM = bearer(ADMIN_TOKEN), bearer(PLATFORM_TOKEN)
CHOICES = (types_pb2.CHOICE_LEFT, types_pb2.CHOICE_RIGHT, types_pb2.CHOICE_TIE)
# The clients' channel reconnects soon after the gateway is back, as a client expecting
# restarts would configure it (gRPC's default waits 1 s, then longer after each failure).
CLIENT_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100),
                  ("grpc.min_reconnect_backoff_ms", 100),
                  ("grpc.max_reconnect_backoff_ms", 500)]

# A vote as the client sent it: (winner, loser, tie); a tie's proposals in the order shown.
Vote = tuple[str, str, bool]


@dataclass
class Ledger:
    """What the clients saw: statuses per call, the votes acknowledged, progress since the
    last kill."""

    acknowledged: dict[str, Vote] = field(default_factory=dict)
    interactive: int = 0
    imported: int = 0
    receipts_of_lost_answers: int = 0
    statuses: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    since_kill: collections.Counter[str] = field(default_factory=collections.Counter)
    # Per service killed, the seconds from each kill until a vote was acknowledged again.
    back_after: dict[str, list[float]] = field(
        default_factory=lambda: collections.defaultdict(list))
    last_kill: tuple[str, float] = ("", 0.0)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, rpc: str, code: grpc.StatusCode) -> None:
        with self.lock:
            self.statuses[rpc, code.name] += 1
            if code == grpc.StatusCode.OK:
                if rpc == "SubmitVote" and not self.since_kill[rpc] and self.last_kill[0]:
                    victim, at = self.last_kill
                    self.back_after[victim].append(time.monotonic() - at)
                self.since_kill[rpc] += 1

    def acked(self, votes: dict[str, Vote]) -> None:
        with self.lock:
            again = votes.keys() & self.acknowledged.keys()
            if again:
                self.failures.append(f"acknowledged twice: {sorted(again)[:5]}")
            self.acknowledged.update(votes)

    def no_failures(self) -> bool:
        """True, or the test fails at once with the clients' failures."""
        with self.lock:
            assert not self.failures, self.failures[:10]
        return True

    def progressed(self, *rpcs: str) -> bool:
        with self.lock:
            return all(self.since_kill[rpc] for rpc in rpcs)

    def killed(self, victim: str, at: float) -> None:
        with self.lock:
            self.since_kill.clear()
            self.last_kill = (victim, at)


def until_ok(ledger: Ledger, rpc: str, call: Callable[[], Any]) -> Any:
    """`call()`'s reply, the same request sent again while it answers UNAVAILABLE or
    DEADLINE_EXCEEDED (or RESOURCE_EXHAUSTED, after its retry-after); None after another
    status, or after GIVE_UP_S (noted as failures)."""
    give_up = time.monotonic() + GIVE_UP_S
    while time.monotonic() < give_up:
        try:
            reply = call()
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            ledger.saw(rpc, code)
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                after = dict(exc.trailing_metadata() or ()).get("retry-after-ms")  # type: ignore[attr-defined]
                time.sleep(int(after or 100) / 1000)
                continue
            if code not in RETRYABLE:
                ledger.failures.append(f"{rpc}: {code.name} {exc.details()}")  # type: ignore[attr-defined]
                return None
            time.sleep(0.05)  # the client's back-off
            continue
        ledger.saw(rpc, grpc.StatusCode.OK)
        return reply
    ledger.failures.append(f"{rpc}: not acknowledged within {GIVE_UP_S:.0f} s")
    return None


def vote(stub: gateway_pb2_grpc.GatewayServiceStub, cause_id: str, worker: int,
         ledger: Ledger) -> None:
    """Voters one after another, VOTES_PER_VOTER votes each, until stopped: a first pair
    from NextPair, each next one in the reply to the vote before it. A vote in flight when
    the test stops is still sent until acknowledged."""
    rng = random.Random(worker)
    pair: gateway_pb2.NextPairResponse | None = None
    n = 0
    while not ledger.stop.is_set():
        voter_id = f"voter-{worker}-{n // VOTES_PER_VOTER}"
        if pair is None:
            pair = until_ok(ledger, "NextPair", functools.partial(
                stub.NextPair, gateway_pb2.NextPairRequest(cause_id=cause_id, voter_id=voter_id),
                metadata=PLATFORM, timeout=DEADLINE_S))
            if pair is None:
                return
        choice = rng.choice(CHOICES)
        request = gateway_pb2.SubmitVoteRequest(
            cause_id=cause_id, voter_id=voter_id, prompt_token=pair.prompt_token, choice=choice,
            idempotency_key=f"vote-{worker}-{n}", want_next_pair=(n + 1) % VOTES_PER_VOTER != 0)
        receipt = until_ok(ledger, "SubmitVote", functools.partial(
            stub.SubmitVote, request, metadata=PLATFORM, timeout=DEADLINE_S))
        if receipt is None:
            return
        left, right = pair.left.proposal_id, pair.right.proposal_id
        sent: Vote = ((right, left, False) if choice == types_pb2.CHOICE_RIGHT
                      else (left, right, choice == types_pb2.CHOICE_TIE))
        ledger.acked({receipt.vote_id: sent})
        with ledger.lock:
            ledger.interactive += 1
            ledger.receipts_of_lost_answers += receipt.duplicate
        pair = receipt.next_pair if receipt.HasField("next_pair") else None
        n += 1


def import_votes(stub: gateway_pb2_grpc.GatewayServiceStub, cause_id: str,
                 ledger: Ledger) -> None:
    """A partner's import, until stopped: each batch sent again until acknowledged."""
    rng = random.Random(99)
    n = 0
    while not ledger.stop.is_set():
        batch: dict[str, Vote] = {}
        for _ in range(IMPORT_BATCH):
            winner, loser = rng.sample(range(N_PROPOSALS), 2)
            batch[f"imported-{n}"] = (f"p{winner}", f"p{loser}", rng.random() < 0.1)
            n += 1
        request = gateway_pb2.ImportVotesRequest(votes=[
            types_pb2.ImportedVote(vote_id=vote_id, cause_id=cause_id, voter_id="partner",
                                   winner_id=winner, loser_id=loser, tie=tie)
            for vote_id, (winner, loser, tie) in batch.items()])

        def send(request: gateway_pb2.ImportVotesRequest = request) -> Any:
            # A fresh stream per attempt: a retry sends the whole batch again.
            return stub.ImportVotes(iter([request]), metadata=ADMIN, timeout=DEADLINE_S)

        reply = until_ok(ledger, "ImportVotes", send)
        if reply is None:
            return
        if reply.rejected or reply.accepted + reply.duplicates != len(batch):
            ledger.failures.append(f"ImportVotes: {reply}")
        ledger.acked(batch)
        with ledger.lock:
            ledger.imported += len(batch)
        ledger.stop.wait(0.05)


def read(stub: gateway_pb2_grpc.GatewayServiceStub, cause_id: str, ledger: Ledger) -> None:
    """A dashboard: the ranking and the counters, read again and again (no retries: the
    next read is one); any status but OK, UNAVAILABLE and DEADLINE_EXCEEDED is a failure."""
    calls = {
        "GetRanking": lambda: stub.GetRanking(gateway_pb2.GetRankingRequest(
            cause_id=cause_id, limit=5), metadata=PLATFORM, timeout=DEADLINE_S),
        "GetCauseStats": lambda: stub.GetCauseStats(gateway_pb2.GetCauseStatsRequest(
            cause_id=cause_id), metadata=PLATFORM, timeout=DEADLINE_S),
    }
    while not ledger.stop.is_set():
        for rpc, call in calls.items():
            try:
                call()
                ledger.saw(rpc, grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                code = exc.code()  # type: ignore[attr-defined]
                ledger.saw(rpc, code)
                if code not in RETRYABLE:
                    ledger.failures.append(f"{rpc}: {code.name} {exc.details()}")  # type: ignore[attr-defined]
        ledger.stop.wait(0.2)


class Launcher:
    """The services as forks of `service_launcher.py`, each on a port fixed for the run."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self._env = env
        self._folder = folder
        self.pids: dict[str, int] = {}
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("service_launcher.py"))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline()
        assert answer, f"the launcher exited with {self._process.wait()}"
        reply: dict[str, Any] = json.loads(answer)
        return reply

    def start(self, service: str) -> None:
        log = self._folder / f"{service}.log"
        self.pids[service] = self._ask({"start": service, "env": self._env,
                                        "log": str(log)})["pid"]

    def kill9(self, service: str) -> None:
        self._ask({"kill": self.pids.pop(service)})

    def alive(self, service: str) -> bool:
        return service in self.pids and bool(self._ask({"alive": self.pids[service]})["alive"])

    def log_tail(self, service: str) -> str:
        return (self._folder / f"{service}.log").read_text(errors="replace")[-3000:]

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()  # the launcher kills what still runs, and exits
        try:
            self._process.wait(30)
        finally:
            if self._process.stdout is not None:
                self._process.stdout.close()


class ChaosRedis:
    """The Redis the services use, as the test kills it: one embedded server (killed, then
    restarted from its AOF), or an embedded Redis Cluster of 3 masters with a replica each
    (the master of the chaos cause's slot killed, its replica promoted, the old master
    restarted as its replica)."""

    def __init__(self, folder: Path, *, cluster: bool) -> None:
        self.server: EmbeddedRedis | EmbeddedCluster = (
            EmbeddedCluster(folder).start() if cluster
            else EmbeddedRedis(folder, unix_socket=True).start())
        self.url = self.server.url
        # A master's kill takes ~10 s to repair (its replica promoted, then the old master
        # back in sync as a replica, which the votes of its slots wait for): half as many
        # kills on a cluster.
        self.kills = KILLS // 2 if cluster else KILLS

    def running(self) -> bool:
        if isinstance(self.server, EmbeddedCluster):
            return all(node.process is not None and node.process.poll() is None
                       for node in self.server.nodes)
        return self.server.process is not None and self.server.process.poll() is None

    def kill_and_restart(self) -> None:
        if isinstance(self.server, EmbeddedRedis):
            self.server.kill()
            self.server.start()
            return
        cluster = self.server
        slot = key_slot(keys.votes(CAUSE_ID).encode())
        killed = cluster.master_serving(slot)
        cluster.kill(killed)

        def promoted() -> bool:
            try:
                return cluster.master_serving(slot) != killed
            except LookupError:
                return False

        eventually(promoted, "a replica promoted in the killed master's place", timeout=60)
        cluster.restart(killed)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(params=["redis", "redis-cluster"])
def chaos_cluster(tmp_path: Path, request: pytest.FixtureRequest,
                  ) -> Iterator[tuple[Launcher, ChaosRedis, dict[str, str]]]:
    on_cluster = request.param == "redis-cluster"
    redis_server = ChaosRedis(tmp_path / "redis", cluster=on_cluster)
    addrs = {service: f"127.0.0.1:{free_port()}" for service in VICTIMS[:3]}
    env = {**os.environ, "REDIS_URL": redis_server.url, "PAIRWISE_TOKEN_SECRET": "c" * 32,
           # On a cluster a vote is acknowledged once a replica has it too, so that a master
           # killed loses none.
           **({"INGEST_WAIT_REPLICAS": "1"} if on_cluster else {}),
           "PAIRWISE_INTERNAL_SECRET": INTERNAL_SECRET,
           "PAIRWISE_ADMIN_TOKEN": ADMIN_TOKEN, "PAIRWISE_PLATFORM_TOKEN": PLATFORM_TOKEN,
           **{f"{service.upper()}_PORT": addr.rpartition(":")[2]
              for service, addr in addrs.items()},
           "INGEST_ADDR": addrs["ingest"],
           # Scripted voters answer sooner than a person reads: trusted here, so that the
           # ranking counts every vote (trust flags are tests/integration/test_trust.py's).
           "INGEST_MIN_VIEW_MS": "0",
           # A killed ranker's lease runs out sooner than by default; the rest as shipped.
           "RANKER_LEASE_S": "1", "RANKER_FIT_INTERVAL_S": "0.2",
           "RANKER_CHECKPOINT_INTERVAL_S": "0.3", "RANKER_DISCOVER_INTERVAL_S": "0.1",
           "GATEWAY_RANKERS_REFRESH_S": "0.2", "INTERNAL_TIMEOUT_S": "3"}
    launcher = Launcher(env, tmp_path)
    try:
        for service in VICTIMS[:3]:
            launcher.start(service)
        yield launcher, redis_server, addrs
    finally:
        launcher.close()
        redis_server.stop()


def serving(launcher: Launcher, redis_server: ChaosRedis, addrs: dict[str, str],
            service: str) -> bool:
    """Whether `service` serves; one that exited by itself (even while Redis was away: a
    service starting then waits for it) fails the test."""
    if service == "redis":
        return redis_server.running()
    assert launcher.alive(service), f"{service} exited by itself:\n{launcher.log_tail(service)}"
    return health_probe.check(addrs[service], timeout_s=1) == health_probe.SERVING


def exported_votes(stub: gateway_pb2_grpc.GatewayServiceStub,
                   cause_id: str) -> collections.Counter[tuple[str, Vote]]:
    """Every vote of the cause's log, read through ExportVotes: (vote_id, vote) counted."""
    proposals: list[str] = []
    logged: collections.Counter[tuple[str, Vote]] = collections.Counter()
    for page in stub.ExportVotes(gateway_pb2.ExportVotesRequest(cause_id=cause_id),
                                 metadata=ADMIN, timeout=30):
        proposals.extend(p.proposal_id for p in page.proposals)
        for entry in page.entries:
            for kind, a, b, vote_id in zip(entry.kinds, entry.a.split(), entry.b.split(),
                                           entry.vote_ids.split(), strict=True):
                assert kind in "wt", entry
                logged[vote_id, (proposals[int(a)], proposals[int(b)], kind == "t")] += 1
    return logged


def answered(call: Callable[[], Any]) -> Any:
    """`call()`'s reply, or None when it answered UNAVAILABLE or DEADLINE_EXCEEDED."""
    try:
        return call()
    except grpc.RpcError as exc:
        if exc.code() not in RETRYABLE:  # type: ignore[attr-defined]
            raise
        return None


def same_vote(vote: Vote) -> Vote:
    """`vote` with a tie's proposals in one order."""
    winner, loser, tie = vote
    return (min(winner, loser), max(winner, loser), True) if tie else vote


@pytest.mark.slow
def test_every_acknowledged_vote_survives_dozens_of_kills(
        chaos_cluster: tuple[Launcher, ChaosRedis, dict[str, str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    launcher, redis_server, addrs = chaos_cluster
    began = time.monotonic()
    cause_id = CAUSE_ID
    ledger = Ledger()
    up = functools.partial(serving, launcher, redis_server, addrs)
    for service in VICTIMS:
        eventually(lambda s=service: up(s), f"{service} serving", timeout=60)
    with grpc.insecure_channel(addrs["gateway"], options=CLIENT_OPTIONS) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        stub.CreateCause(gateway_pb2.CreateCauseRequest(cause_id=cause_id, title="chaos"),
                         metadata=ADMIN, timeout=DEADLINE_S)
        stub.AddProposals(gateway_pb2.AddProposalsRequest(cause_id=cause_id, proposals=[
            types_pb2.NewProposal(proposal_id=f"p{k}", text=f"proposal {k}")
            for k in range(N_PROPOSALS)]), metadata=ADMIN, timeout=DEADLINE_S)

        clients = [threading.Thread(target=vote, args=(stub, cause_id, w, ledger))
                   for w in range(VOTERS_AT_ONCE)]
        clients += [threading.Thread(target=import_votes, args=(stub, cause_id, ledger)),
                    threading.Thread(target=read, args=(stub, cause_id, ledger))]
        for client in clients:
            client.start()
        kills: collections.Counter[str] = collections.Counter()
        try:
            for k in range(redis_server.kills):
                victim = VICTIMS[k % len(VICTIMS)]
                # Under load, and after the cluster recovered from the previous kill: votes
                # of both kinds acknowledged since, and a ranking read before the ranker's.
                needed = ("SubmitVote", "ImportVotes") + (
                    ("GetRanking",) if victim == "ranker" else ())
                eventually(lambda v=victim, n=needed: ledger.no_failures() and up(v)
                           and ledger.progressed(*n),
                           f"kill {k + 1} ({victim}): it serves and the cluster acknowledges "
                           "votes again", timeout=60)
                killed_at = time.monotonic()
                if victim == "redis":
                    redis_server.kill_and_restart()
                else:
                    launcher.kill9(victim)
                    launcher.start(victim)
                ledger.killed(victim, killed_at)
                kills[victim] += 1
        finally:
            ledger.stop.set()
            for client in clients:
                client.join(timeout=GIVE_UP_S + 10)
        chaos_s = time.monotonic() - began
        assert not any(client.is_alive() for client in clients)
        assert not ledger.failures, ledger.failures[:10]

        # Every acknowledged vote is in the log once, as it was sent; nothing else is.
        for service in VICTIMS:
            eventually(lambda s=service: up(s), f"{service} serving", timeout=60)
        acknowledged = ledger.acknowledged
        logged = eventually(lambda: answered(lambda: exported_votes(stub, cause_id)),
                            "the exported vote log", timeout=60)
        assert set(logged.values()) == {1}, [v for v, n in logged.items() if n > 1][:10]
        assert {vote_id: same_vote(v) for vote_id, v in logged} == {
            vote_id: same_vote(v) for vote_id, v in acknowledged.items()}

        # ... and counted once: the counters and each proposal's wins, losses and ties.
        # (UNAVAILABLE while the last ranker restarted takes its cause back.)
        stats = eventually(
            lambda: answered(lambda: stub.GetCauseStats(gateway_pb2.GetCauseStatsRequest(
                cause_id=cause_id), metadata=ADMIN, timeout=DEADLINE_S)),
            "every acknowledged vote counted", timeout=60,
            until=lambda s: s is not None and s.votes_counted >= len(acknowledged))
        assert (stats.votes_accepted, stats.votes_counted) == (len(acknowledged),) * 2
        ranking = eventually(
            lambda: answered(lambda: stub.GetRanking(gateway_pb2.GetRankingRequest(
                cause_id=cause_id, limit=1000), metadata=ADMIN, timeout=DEADLINE_S)),
            "the ranking", timeout=60)
        assert ranking.votes_counted == len(acknowledged)
        expected = {f"p{k}": [0, 0, 0] for k in range(N_PROPOSALS)}
        for winner, loser, tie in acknowledged.values():
            expected[winner][2 if tie else 0] += 1
            expected[loser][2 if tie else 1] += 1
        assert {e.proposal_id: [e.wins, e.losses, e.ties] for e in ranking.entries} == expected

    retried = {f"{rpc} {code}": n for (rpc, code), n in sorted(ledger.statuses.items())
               if code != "OK"}
    back = {victim: f"median {statistics.median(s):.2f} s, max {max(s):.2f} s"
            for victim, s in sorted(ledger.back_after.items())}
    with capsys.disabled():
        print(f"\nchaos: {sum(kills.values())} kills ({dict(kills)}) in {chaos_s:.0f} s; "
              f"{len(acknowledged)} acknowledged votes checked ({ledger.interactive} interactive, "
              f"{ledger.imported} imported), each in the log once and counted once; "
              f"{ledger.receipts_of_lost_answers} votes' answers lost and their receipts returned "
              f"on retry; answers retried: {retried}; from a kill to the next interactive vote "
              f"acknowledged (loaded machine, not asserted): {back}")
