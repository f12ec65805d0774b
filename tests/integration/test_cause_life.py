"""A cause's life through the real cluster: closing (every vote acknowledged before it counted,
none after), reopening with its audit trail, a schedule the state follows, a watch that ends on
the final ranking, and what closing twice, voting on a closed cause or reopening without a
reason get."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from conftest import Cluster, eventually

from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2

pytest.importorskip("ingest.server")
pytest.importorskip("ranker.server")

PROPOSALS = [f"p{k}" for k in range(12)]


@pytest.fixture
def stub(cluster: Cluster):  # type: ignore[no-untyped-def]
    with cluster.channel() as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def open_cause(stub, cluster: Cluster, cause_id: str, **schedule: int) -> None:  # type: ignore[no-untyped-def]
    stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="Life", **schedule),
                     metadata=cluster.admin, timeout=5)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=pid, text=f"proposal {pid}", author_id="org")
        for pid in PROPOSALS]), metadata=cluster.admin, timeout=5)


def vote(stub, cluster: Cluster, cause_id: str, voter: str,  # type: ignore[no-untyped-def]
         key: str = "") -> gw.SubmitVoteResponse:
    pair = stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id=voter),
                         metadata=cluster.platform, timeout=5)
    return stub.SubmitVote(gw.SubmitVoteRequest(
        cause_id=cause_id, voter_id=voter, prompt_token=pair.prompt_token,
        choice=types_pb2.CHOICE_LEFT, idempotency_key=key), metadata=cluster.platform,
        timeout=5)


def cause_of(stub, cluster: Cluster, cause_id: str) -> types_pb2.Cause:  # type: ignore[no-untyped-def]
    return stub.GetCause(gw.GetCauseRequest(cause_id=cause_id), metadata=cluster.admin,
                         timeout=5).cause


def final_ranking(stub, cluster: Cluster, cause_id: str) -> gw.GetRankingResponse:  # type: ignore[no-untyped-def]
    return eventually(lambda: stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id),
                                              metadata=cluster.platform, timeout=5),
                      "the final ranking", until=lambda r: r.final)


def refused(call) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_a_closed_cause_takes_no_vote_and_its_ranking_settles_on_the_votes_it_took(  # type: ignore[no-untyped-def]
        stub, cluster: Cluster, cause_id: str) -> None:
    open_cause(stub, cluster, cause_id)
    assert cause_of(stub, cluster, cause_id).state == types_pb2.CAUSE_STATE_OPEN
    for k in range(5):
        vote(stub, cluster, cause_id, f"v{k}")
    shown = stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id="v5"),
                          metadata=cluster.platform, timeout=5)
    retry = gw.SubmitVoteRequest(cause_id=cause_id, voter_id="v5",
                                 prompt_token=shown.prompt_token, choice=types_pb2.CHOICE_TIE,
                                 idempotency_key="key-5")
    receipt = stub.SubmitVote(retry, metadata=cluster.platform, timeout=5)
    pending = stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id="late"),
                            metadata=cluster.platform, timeout=5)

    closed = stub.CloseCause(gw.CloseCauseRequest(cause_id=cause_id, reason="fin"),
                             metadata=cluster.admin, timeout=5).cause
    assert closed.state == types_pb2.CAUSE_STATE_CLOSED
    assert closed.votes_final == 6 and closed.closed_at_ms > 0

    # A pair shown before the close cannot be voted on; no new pair is shown.
    error = refused(lambda: stub.SubmitVote(gw.SubmitVoteRequest(
        cause_id=cause_id, voter_id="late", prompt_token=pending.prompt_token,
        choice=types_pb2.CHOICE_RIGHT), metadata=cluster.platform, timeout=5))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "CLOSED" in error.details()
    error = refused(lambda: stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id="x"),
                                          metadata=cluster.platform, timeout=5))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "CLOSED" in error.details()
    error = refused(lambda: stub.ImportVotes(iter([gw.ImportVotesRequest(votes=[
        types_pb2.ImportedVote(vote_id="imp-1", cause_id=cause_id, voter_id="u",
                               winner_id="p0", loser_id="p1")])]),
        metadata=cluster.admin, timeout=5))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "CLOSED" in error.details()
    # Beside an open cause's votes, the closed cause's are rejected one by one: the reply
    # counts what was recorded.
    other = f"{cause_id}-open"
    open_cause(stub, cluster, other)
    mixed = gw.ImportVotesRequest(votes=[
        types_pb2.ImportedVote(vote_id="imp-2", cause_id=other, voter_id="u",
                               winner_id="p0", loser_id="p1"),
        types_pb2.ImportedVote(vote_id="imp-3", cause_id=cause_id, voter_id="u",
                               winner_id="p0", loser_id="p1"),
        types_pb2.ImportedVote(vote_id="imp-4", cause_id=other, voter_id="u",
                               winner_id="p0", loser_id="nowhere")])
    reply = stub.ImportVotes(iter([mixed]), metadata=cluster.admin, timeout=5)
    assert (reply.accepted, reply.duplicates, reply.rejected) == (1, 0, 2)
    assert [(e.index, e.vote_id, e.reason.split(":")[0]) for e in reply.errors] == [
        (1, "imp-3", "cause_not_open"), (2, "imp-4", "unknown_proposal")]
    assert "CLOSED" in reply.errors[0].reason
    stats = stub.GetCauseStats(gw.GetCauseStatsRequest(cause_id=other),
                               metadata=cluster.admin, timeout=5)
    assert dict(stats.rejected_by_reason) == {"unknown_proposal": 1}
    # A retry of a vote acknowledged before the close still gets its receipt.
    replay = stub.SubmitVote(retry, metadata=cluster.platform, timeout=5)
    assert (replay.vote_id, replay.duplicate) == (receipt.vote_id, True)
    ranking = final_ranking(stub, cluster, cause_id)
    assert ranking.votes_counted == 6 and ranking.cause_state == types_pb2.CAUSE_STATE_CLOSED

    error = refused(lambda: stub.CloseCause(gw.CloseCauseRequest(cause_id=cause_id),
                                            metadata=cluster.admin, timeout=5))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "CLOSED" in error.details()


def test_reopening_needs_a_reason_and_is_in_the_audit_trail(  # type: ignore[no-untyped-def]
        stub, cluster: Cluster, cause_id: str) -> None:
    open_cause(stub, cluster, cause_id)
    vote(stub, cluster, cause_id, "v1")
    stub.CloseCause(gw.CloseCauseRequest(cause_id=cause_id, reason="fin", requested_by="anne"),
                    metadata=cluster.admin, timeout=5)
    error = refused(lambda: stub.ReopenCause(gw.ReopenCauseRequest(cause_id=cause_id),
                                             metadata=cluster.admin, timeout=5))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "reason" in error.details()
    error = refused(lambda: stub.ReopenCause(gw.ReopenCauseRequest(cause_id=cause_id,
                                                                   reason="x"),
                                             metadata=cluster.platform, timeout=5))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED

    reopened = stub.ReopenCause(gw.ReopenCauseRequest(
        cause_id=cause_id, reason="closed by mistake"), metadata=cluster.admin, timeout=5).cause
    assert reopened.state == types_pb2.CAUSE_STATE_OPEN and reopened.votes_final == 0
    vote(stub, cluster, cause_id, "v2")
    error = refused(lambda: stub.ReopenCause(gw.ReopenCauseRequest(cause_id=cause_id,
                                                                   reason="again"),
                                             metadata=cluster.admin, timeout=5))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "OPEN" in error.details()

    audit = stub.ListCauseAudit(gw.ListCauseAuditRequest(cause_id=cause_id),
                                metadata=cluster.admin, timeout=5).entries
    assert [(e.action, e.state_before, e.state_after, e.votes) for e in audit] == [
        ("close", types_pb2.CAUSE_STATE_OPEN, types_pb2.CAUSE_STATE_CLOSED, 1),
        ("reopen", types_pb2.CAUSE_STATE_CLOSED, types_pb2.CAUSE_STATE_OPEN, 1)]
    assert audit[0].by.startswith("admin:") and audit[0].by.endswith(" / anne")
    assert audit[1].reason == "closed by mistake" and audit[1].at_ms >= audit[0].at_ms
    assert "admin:" in audit[1].by and len(audit[1].by.split(":")[1]) == 12


def test_every_vote_acknowledged_before_a_close_is_counted_and_none_after(  # type: ignore[no-untyped-def]
        stub, cluster: Cluster, cause_id: str) -> None:
    open_cause(stub, cluster, cause_id)
    acknowledged = [0] * 4
    refusals: list[str] = []
    stop = threading.Event()

    def voter(k: int) -> None:
        n = 0
        while not stop.is_set() and n < 60:
            n += 1
            try:
                vote(stub, cluster, cause_id, f"voter-{k}")
            except grpc.RpcError as exc:
                refusals.append(f"{exc.code().name}: {exc.details()}")
                return
            acknowledged[k] += 1

    threads = [threading.Thread(target=voter, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    eventually(lambda: sum(acknowledged), "votes flowing", until=lambda n: n >= 20)
    closed = stub.CloseCause(gw.CloseCauseRequest(cause_id=cause_id),
                             metadata=cluster.admin, timeout=5).cause
    for thread in threads:
        thread.join(timeout=60)
    stop.set()
    assert refusals and all(r.startswith("FAILED_PRECONDITION") and "CLOSED" in r
                            for r in refusals)
    ranking = final_ranking(stub, cluster, cause_id)
    assert ranking.votes_counted == closed.votes_final == sum(acknowledged)


def test_a_scheduled_cause_opens_and_closes_with_the_clock(  # type: ignore[no-untyped-def]
        stub, cluster: Cluster, cause_id: str) -> None:
    now_ms = int(time.time() * 1000)
    open_cause(stub, cluster, cause_id, opens_at_ms=now_ms + 1_000, closes_at_ms=now_ms + 3_000)
    cause = cause_of(stub, cluster, cause_id)
    assert cause.state == types_pb2.CAUSE_STATE_SCHEDULED
    assert (cause.opens_at_ms, cause.closes_at_ms) == (now_ms + 1_000, now_ms + 3_000)
    error = refused(lambda: vote(stub, cluster, cause_id, "early"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "SCHEDULED" in error.details()

    eventually(lambda: cause_of(stub, cluster, cause_id).state, "the cause opened",
               until=lambda s: s == types_pb2.CAUSE_STATE_OPEN)
    taken = 0
    while True:
        try:
            vote(stub, cluster, cause_id, f"v{taken}")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "CLOSED" in exc.details()
            break
        taken += 1
    cause = cause_of(stub, cluster, cause_id)
    assert cause.state == types_pb2.CAUSE_STATE_CLOSED
    assert cause.closed_at_ms == now_ms + 3_000 and cause.votes_final == taken
    assert final_ranking(stub, cluster, cause_id).votes_counted == taken


def test_schedule_and_close_refuse_what_cannot_be(  # type: ignore[no-untyped-def]
        stub, cluster: Cluster, cause_id: str) -> None:
    now_ms = int(time.time() * 1000)
    error = refused(lambda: stub.CreateCause(gw.CreateCauseRequest(
        cause_id=cause_id, title="x", opens_at_ms=now_ms + 5_000, closes_at_ms=now_ms + 1_000),
        metadata=cluster.admin, timeout=5))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "closes_at_ms" in error.details()
    open_cause(stub, cluster, cause_id)
    error = refused(lambda: stub.ScheduleCause(gw.ScheduleCauseRequest(
        cause_id=cause_id, closes_at_ms=now_ms - 1_000), metadata=cluster.admin, timeout=5))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "closes_at_ms" in error.details()
    stub.CloseCause(gw.CloseCauseRequest(cause_id=cause_id), metadata=cluster.admin, timeout=5)
    error = refused(lambda: stub.ScheduleCause(gw.ScheduleCauseRequest(
        cause_id=cause_id, closes_at_ms=now_ms + 60_000), metadata=cluster.admin, timeout=5))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "CLOSED" in error.details()
    for call in (lambda: stub.CloseCause(gw.CloseCauseRequest(cause_id="nope"),
                                         metadata=cluster.admin, timeout=5),
                 lambda: stub.ArchiveCause(gw.ArchiveCauseRequest(cause_id="nope"),
                                           metadata=cluster.admin, timeout=5)):
        assert refused(call).code() == grpc.StatusCode.NOT_FOUND


def test_a_watch_of_a_cause_that_closes_ends_with_the_final_ranking(  # type: ignore[no-untyped-def]
        stub, cluster: Cluster, cause_id: str) -> None:
    open_cause(stub, cluster, cause_id)
    for k in range(5):
        vote(stub, cluster, cause_id, f"v{k}")
    eventually(lambda: stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id),
                                       metadata=cluster.platform, timeout=5),
               "every vote counted", until=lambda r: r.votes_counted == 5)
    updates = stub.WatchRanking(gw.WatchRankingRequest(cause_id=cause_id, limit=3),
                                metadata=cluster.platform, timeout=30)
    first = next(updates)
    assert first.cause_state == types_pb2.CAUSE_STATE_OPEN and not first.final
    stub.CloseCause(gw.CloseCauseRequest(cause_id=cause_id), metadata=cluster.admin, timeout=5)
    rest = list(updates)  # ends by itself
    assert rest and rest[-1].final and rest[-1].votes_counted == 5
    assert rest[-1].cause_state == types_pb2.CAUSE_STATE_CLOSED
    assert len(rest[-1].entries) == 3
