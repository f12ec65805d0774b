"""The services on a Redis Cluster (3 masters, a replica each: the embedded server in cluster
mode, loopback ports): causes whose keys live on different masters take votes through the
gateway, ingest and ranker and rank them exactly, and a master failed over to its replica
(by hand, or killed) while votes arrive loses or doubles no acknowledged vote. Ingest waits
for a replica to receive each vote too (INGEST_WAIT_REPLICAS=1), as a cluster that must
survive a master's loss is run."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
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
from redis.crc import key_slot

from gateway.server import start as start_gateway
from ingest.server import start as start_ingest
from pairwise import keys
from pairwise.embedded_redis import SLOTS, EmbeddedCluster
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2
from ranker.server import start as start_ranker

ADMIN, PLATFORM = bearer(ADMIN_TOKEN), bearer(PLATFORM_TOKEN)
PROPOSALS = ["a", "b", "c", "d"]
MASTERS = 3


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    cluster = EmbeddedCluster(tmp_path_factory.mktemp("redis-cluster"), masters=MASTERS,
                              replicas=1).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def stub(redis_cluster: EmbeddedCluster, tmp_path_factory: pytest.TempPathFactory,
         ) -> Iterator[gateway_pb2_grpc.GatewayServiceStub]:
    """A gateway, an ingest and a ranker on the cluster (min_view_ms 0: every vote is
    trusted)."""
    url = redis_cluster.url
    with contextlib.ExitStack() as stack:
        ingest = stack.enter_context(serve_in_thread(start_ingest, ingest_settings(
            url, min_view_ms=0, wait_replicas=1)))
        stack.enter_context(serve_in_thread(start_ranker, ranker_settings(url)))
        gateway = stack.enter_context(serve_in_thread(start_gateway, gateway_settings(
            url, f"127.0.0.1:{ingest.port}",
            archive_dir=str(tmp_path_factory.mktemp("archives")))))
        channel = stack.enter_context(grpc.insecure_channel(f"127.0.0.1:{gateway.port}"))
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def master_of(cause_id: str) -> int:
    """Which of the first masters' slot ranges the cause's keys are in (the embedded cluster
    gives master i the i-th equal share)."""
    return key_slot(keys.votes(cause_id).encode()) * MASTERS // SLOTS


def causes_on_every_master(prefix: str) -> dict[int, str]:
    """A cause id per master, in start order."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < MASTERS:
        cause_id = f"{prefix}-{n}"
        found.setdefault(master_of(cause_id), cause_id)
        n += 1
    return found


def create(stub: gateway_pb2_grpc.GatewayServiceStub, cause_id: str) -> None:
    stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title=f"cause {cause_id}",
                                           auto_accept_proposals=True),
                     metadata=ADMIN, timeout=10)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=p, text=f"proposal {p}", author_id="org")
        for p in PROPOSALS]), metadata=ADMIN, timeout=10)


def ranking(stub: gateway_pb2_grpc.GatewayServiceStub, cause_id: str) -> Any:
    """The cause's ranking, or None while the ranker answers UNAVAILABLE (not loaded yet)."""
    try:
        return stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id, limit=100),
                               metadata=PLATFORM, timeout=10)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return None


def counted(stub: gateway_pb2_grpc.GatewayServiceStub, cause_id: str, votes: int) -> Any:
    """The ranking once it counts `votes` votes (fails the test if it counts more)."""
    def caught_up(answer: Any) -> bool:
        return answer is not None and answer.votes_counted >= votes

    answer = eventually(lambda: ranking(stub, cause_id), f"{cause_id}: {votes} votes counted",
                        until=caught_up, timeout=60)
    assert answer.votes_counted == votes
    return answer


def test_votes_on_causes_of_every_master_are_ranked_exactly(
        redis_cluster: EmbeddedCluster, stub: gateway_pb2_grpc.GatewayServiceStub) -> None:
    causes = causes_on_every_master("flow")
    for cause_id in causes.values():
        create(stub, cause_id)
    expected_wins: dict[str, dict[str, int]] = {}
    for master, cause_id in causes.items():
        wins = dict.fromkeys(PROPOSALS, 0)
        # Interactive votes: the voter always picks the proposal first in PROPOSALS.
        for n in range(4 + master):
            pair = stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id=f"v{n}"),
                                 metadata=PLATFORM, timeout=10)
            left, right = pair.left.proposal_id, pair.right.proposal_id
            choice = (types_pb2.CHOICE_LEFT if PROPOSALS.index(left) < PROPOSALS.index(right)
                      else types_pb2.CHOICE_RIGHT)
            receipt = stub.SubmitVote(gw.SubmitVoteRequest(
                cause_id=cause_id, voter_id=f"v{n}", prompt_token=pair.prompt_token,
                choice=choice, idempotency_key=f"k{n}"), metadata=PLATFORM, timeout=10)
            assert not receipt.duplicate
            wins[min(left, right, key=PROPOSALS.index)] += 1
        # A partner's import, sent twice: the second time every vote is a duplicate.
        imported = [types_pb2.ImportedVote(vote_id=f"i{n}", cause_id=cause_id,
                                           voter_id=f"p{n}", winner_id="a", loser_id="d")
                    for n in range(30)]
        first = stub.ImportVotes(iter([gw.ImportVotesRequest(votes=imported)]),
                                 metadata=ADMIN, timeout=30)
        again = stub.ImportVotes(iter([gw.ImportVotesRequest(votes=imported)]),
                                 metadata=ADMIN, timeout=30)
        assert (first.accepted, again.accepted, again.duplicates) == (30, 0, 30)
        wins["a"] += 30
        expected_wins[cause_id] = wins

    for cause_id, wins in expected_wins.items():
        answer = counted(stub, cause_id, sum(wins.values()))
        assert {e.proposal_id: e.wins for e in answer.entries} == wins
        order = [e.proposal_id for e in answer.entries]
        assert order.index("a") < order.index("d")  # a beat d 30 times, d beat no one
        stats = stub.GetCauseStats(gw.GetCauseStatsRequest(cause_id=cause_id),
                                   metadata=PLATFORM, timeout=10)
        assert (stats.votes_accepted, stats.votes_counted) == (sum(wins.values()),) * 2
    listed = stub.ListCauses(gw.ListCausesRequest(limit=100), metadata=ADMIN, timeout=10)
    assert set(causes.values()) <= {c.cause_id for c in listed.causes}


def test_a_cause_moderated_excluded_exported_closed_and_archived_on_the_cluster(
        stub: gateway_pb2_grpc.GatewayServiceStub) -> None:
    cause_id = "life-on-cluster"
    create(stub, cause_id)
    imported = [types_pb2.ImportedVote(vote_id=f"i{n}", cause_id=cause_id, voter_id=f"u{n % 5}",
                                       winner_id=PROPOSALS[n % 4],
                                       loser_id=PROPOSALS[(n + 1) % 4])
                for n in range(40)]
    stub.ImportVotes(iter([gw.ImportVotesRequest(votes=imported)]), metadata=ADMIN, timeout=30)
    moderated = stub.ModerateProposal(gw.ModerateProposalRequest(
        cause_id=cause_id, proposal_id="d", status=types_pb2.PROPOSAL_STATUS_REJECTED,
        reason="hors sujet"), metadata=ADMIN, timeout=10)
    assert moderated.proposal.status == types_pb2.PROPOSAL_STATUS_REJECTED
    stub.ExcludeVotes(gw.ExcludeVotesRequest(cause_id=cause_id, voter_ids=["u0"],
                                             reason="a bot"), metadata=ADMIN, timeout=10)
    listed = stub.ListExclusions(gw.ListExclusionsRequest(cause_id=cause_id), metadata=ADMIN,
                                 timeout=10)
    assert listed.total == 1
    exported = list(stub.ExportVotes(gw.ExportVotesRequest(cause_id=cause_id), metadata=ADMIN,
                                     timeout=30))
    assert sum(len(m.entries) for m in exported) >= 1
    stub.CloseCause(gw.CloseCauseRequest(cause_id=cause_id), metadata=ADMIN, timeout=10)
    final = eventually(lambda: ranking(stub, cause_id), "the final ranking",
                       until=lambda r: r is not None and r.final, timeout=60)
    assert {e.proposal_id for e in final.entries} == {"a", "b", "c"}

    archived = eventually(lambda: stub.ArchiveCause(
        gw.ArchiveCauseRequest(cause_id=cause_id, reason="consultation over"),
        metadata=ADMIN, timeout=60), "archived", timeout=60)
    assert archived.votes_archived == len(imported) and archived.keys_released > 0
    assert archived.cause.state == types_pb2.CAUSE_STATE_ARCHIVED
    after = stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id, limit=100),
                            metadata=PLATFORM, timeout=10)
    assert after.final and [(e.proposal_id, e.ability) for e in after.entries] == [
        (e.proposal_id, e.ability) for e in final.entries]


class Importer(threading.Thread):
    """Imports votes of one cause in batches until stopped, each batch sent again until it
    is answered OK (a retry of a batch whose answer was lost is de-duplicated); records
    the vote ids acknowledged and the codes seen."""

    def __init__(self, stub: gateway_pb2_grpc.GatewayServiceStub, cause_id: str) -> None:
        super().__init__(daemon=True)
        self.stub, self.cause_id = stub, cause_id
        self.acked: list[str] = []
        self.codes: dict[str, int] = {}
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        batch = 0
        try:
            while not self.stopping.is_set():
                votes = [types_pb2.ImportedVote(
                    vote_id=f"b{batch}-{n}", cause_id=self.cause_id, voter_id=f"u{batch}",
                    winner_id=PROPOSALS[n % 4], loser_id=PROPOSALS[(n + 1) % 4])
                    for n in range(20)]
                while True:
                    try:
                        answer = self.stub.ImportVotes(
                            iter([gw.ImportVotesRequest(votes=votes)]), metadata=ADMIN,
                            timeout=10)
                    except grpc.RpcError as exc:
                        if exc.code() not in (grpc.StatusCode.UNAVAILABLE,
                                              grpc.StatusCode.DEADLINE_EXCEEDED):
                            raise
                        self.codes[exc.code().name] = self.codes.get(exc.code().name, 0) + 1
                        continue
                    assert answer.accepted + answer.duplicates == len(votes), answer
                    self.codes["OK"] = self.codes.get("OK", 0) + 1
                    break
                self.acked += [v.vote_id for v in votes]
                batch += 1
        except BaseException as exc:
            self.error = exc


@pytest.mark.slow
def test_a_master_failed_over_during_votes_loses_and_doubles_none(
        redis_cluster: EmbeddedCluster, stub: gateway_pb2_grpc.GatewayServiceStub) -> None:
    causes = causes_on_every_master("failover")
    for cause_id in causes.values():
        create(stub, cause_id)
    importers = {cause_id: Importer(stub, cause_id) for cause_id in causes.values()}
    for importer in importers.values():
        importer.start()
    try:
        eventually(lambda: min(len(i.acked) for i in importers.values()),
                   "every cause to take votes", until=lambda n: n >= 100)
        # The master of the first cause's slot hands its slots to its replica while votes
        # arrive on it.
        failed = redis_cluster.master_serving(key_slot(keys.votes(causes[0]).encode()))
        promoted = redis_cluster.fail_over(failed)
        assert redis_cluster.master_serving(key_slot(keys.votes(causes[0]).encode())) == promoted
        before = {c: len(i.acked) for c, i in importers.items()}
        eventually(lambda: all(len(i.acked) >= before[c] + 100 for c, i in importers.items()),
                   "every cause to take votes after the failover")
    finally:
        for importer in importers.values():
            importer.stopping.set()
        for importer in importers.values():
            importer.join(timeout=60)
    check_every_acknowledged_vote_counted_once(stub, importers)


def check_every_acknowledged_vote_counted_once(stub: gateway_pb2_grpc.GatewayServiceStub,
                                               importers: dict[str, Importer]) -> None:
    for importer in importers.values():
        assert importer.error is None, importer.error
    for cause_id, importer in importers.items():
        acked = len(set(importer.acked))
        assert acked == len(importer.acked)
        answer = counted(stub, cause_id, acked)
        assert sum(e.wins for e in answer.entries) == acked
        stats = stub.GetCauseStats(gw.GetCauseStatsRequest(cause_id=cause_id),
                                   metadata=PLATFORM, timeout=10)
        assert stats.votes_accepted == acked


@pytest.mark.slow
def test_a_master_killed_during_votes_loses_and_doubles_none(
        redis_cluster: EmbeddedCluster, stub: gateway_pb2_grpc.GatewayServiceStub) -> None:
    causes = causes_on_every_master("killed")
    for cause_id in causes.values():
        create(stub, cause_id)
    slot = key_slot(keys.votes(causes[1]).encode())
    importers = {cause_id: Importer(stub, cause_id) for cause_id in causes.values()}
    for importer in importers.values():
        importer.start()
    try:
        eventually(lambda: min(len(i.acked) for i in importers.values()),
                   "every cause to take votes", until=lambda n: n >= 100)
        killed = redis_cluster.master_serving(slot)
        redis_cluster.kill(killed)

        def serving() -> int | None:
            try:
                return redis_cluster.master_serving(slot)
            except LookupError:
                return None

        eventually(serving, "a replica promoted in the killed master's place",
                   until=lambda node: node not in (None, killed), timeout=60)
        # Back as the new master's replica: what the votes of that master wait for again.
        redis_cluster.restart(killed)
        before = {c: len(i.acked) for c, i in importers.items()}
        eventually(lambda: all(len(i.acked) >= before[c] + 100 for c, i in importers.items()),
                   "every cause to take votes after the master's loss", timeout=60)
    finally:
        for importer in importers.values():
            importer.stopping.set()
        for importer in importers.values():
            importer.join(timeout=60)
    check_every_acknowledged_vote_counted_once(stub, importers)


def test_a_master_without_its_replica_is_seen_though_the_others_have_theirs(
        redis_cluster: EmbeddedCluster, stub: gateway_pb2_grpc.GatewayServiceStub,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each master's replicas are counted on their own: summed over the masters, the two
    others' replicas would make up for the one a master lacks."""
    causes = causes_on_every_master("unreplicated")
    for cause_id in causes.values():
        create(stub, cause_id)
    alone = redis_cluster.master_serving(key_slot(keys.votes(causes[0]).encode()))
    [replica] = redis_cluster.replicas_of(alone)
    redis_cluster.kill(replica)
    try:
        with pytest.raises(SystemExit) as stopped, serve_in_thread(start_ingest, ingest_settings(
                redis_cluster.url, min_view_ms=0, wait_replicas=1)):
            pass
        assert "has 0 replicas in sync" in str(stopped.value)
        # One import naming causes of every master: its votes on the master alone are not
        # acknowledged, so neither is the import (sent again, it is de-duplicated).
        votes = [types_pb2.ImportedVote(vote_id=f"u-{n}", cause_id=cause_id, voter_id="u",
                                        winner_id="a", loser_id="b")
                 for n, cause_id in enumerate(causes.values())]
        with pytest.raises(grpc.RpcError) as refused:
            stub.ImportVotes(iter([gw.ImportVotesRequest(votes=votes)]), metadata=ADMIN,
                             timeout=30)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        assert "replicas" in refused.value.details()  # type: ignore[attr-defined]
    finally:
        redis_cluster.restart(replica)
