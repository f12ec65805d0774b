"""The full flow through the gateway as the platform uses it, with the real ingest and ranker
(the session `cluster`): a consultation from cause creation to a live ranking."""

from __future__ import annotations

import time

import grpc
import pytest
from conftest import Cluster, eventually

from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2

pytest.importorskip("ingest.server")
pytest.importorskip("ranker.server")

SETTLE_S = 10.0
PROPOSALS = {
    "formation": "Former tous les policiers à l'accueil des victimes",
    "urgence": "Un numéro d'urgence joignable par SMS",
    "ecole": "Éduquer à l'égalité dès l'école primaire",
    "refuges": "Ouvrir des places d'hébergement d'urgence dans chaque département",
}


@pytest.fixture
def stub(cluster: Cluster):  # type: ignore[no-untyped-def]
    with cluster.channel() as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def stats(stub, cluster: Cluster, cause_id: str) -> gw.GetCauseStatsResponse:  # type: ignore[no-untyped-def]
    return stub.GetCauseStats(gw.GetCauseStatsRequest(cause_id=cause_id),
                              metadata=cluster.platform, timeout=5)


def once(read, done, what: str):  # type: ignore[no-untyped-def]
    """`read()` as soon as `done(result)`, for at most SETTLE_S. UNAVAILABLE counts as not yet (a
    ranker that has not fitted a new cause yet says so, retryably)."""
    def probe():  # type: ignore[no-untyped-def]
        try:
            return read()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            return exc

    return eventually(probe, what, timeout=SETTLE_S, interval=0.1,
                      until=lambda last: not isinstance(last, grpc.RpcError) and done(last))


def wait_counted(stub, cluster: Cluster, cause_id: str) -> gw.GetCauseStatsResponse:  # type: ignore[no-untyped-def]
    """Poll until the ranking reflects every accepted vote."""
    return once(lambda: stats(stub, cluster, cause_id),
                lambda s: s.votes_counted == s.votes_accepted and s.lag == 0,
                "the ranking to catch up with the vote log")


def vote(stub, cluster: Cluster, cause_id: str, voter: str, choice: int, key: str,  # type: ignore[no-untyped-def]
         skip_reason: str = "") -> tuple[gw.NextPairResponse, gw.SubmitVoteResponse]:
    pair = stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id=voter),
                         metadata=cluster.platform, timeout=5)
    receipt = stub.SubmitVote(gw.SubmitVoteRequest(
        cause_id=cause_id, voter_id=voter, prompt_token=pair.prompt_token, choice=choice,
        skip_reason=skip_reason, idempotency_key=key), metadata=cluster.platform, timeout=5)
    return pair, receipt


def test_a_consultation_end_to_end(cluster: Cluster, stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    admin, platform = cluster.admin, cluster.platform
    stub.CreateCause(gw.CreateCauseRequest(
        cause_id=cause_id, title="Comment lutter contre les violences faites aux femmes ?"),
        metadata=admin, timeout=5)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=pid, text=text, author_id="organisateurs")
        for pid, text in PROPOSALS.items()]), metadata=admin, timeout=5)
    (pending,) = stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id="citoyenne", text="Une proposition en attente",
                              author_id="c-17")]), metadata=platform, timeout=5).proposals
    assert pending.status == types_pb2.PROPOSAL_STATUS_PENDING

    # One vote with each choice, from one voter.
    receipts = []
    for i, choice in enumerate([types_pb2.CHOICE_LEFT, types_pb2.CHOICE_RIGHT,
                                types_pb2.CHOICE_TIE, types_pb2.CHOICE_SKIP]):
        pair, receipt = vote(stub, cluster, cause_id, "voter-1", choice, f"k{i}",
                             skip_reason="je ne sais pas" if choice == types_pb2.CHOICE_SKIP
                             else "")
        assert {pair.left.proposal_id, pair.right.proposal_id} <= set(PROPOSALS)
        assert receipt.vote_id and not receipt.duplicate
        receipts.append(receipt)
    assert len({r.vote_id for r in receipts}) == 4

    # A retry with the same key returns the original receipt.
    pair, first = vote(stub, cluster, cause_id, "voter-2", types_pb2.CHOICE_LEFT, "retry-me")
    replay = stub.SubmitVote(gw.SubmitVoteRequest(
        cause_id=cause_id, voter_id="voter-2", prompt_token=pair.prompt_token,
        choice=types_pb2.CHOICE_LEFT, idempotency_key="retry-me"), metadata=platform,
        timeout=5)
    assert (replay.vote_id, replay.duplicate) == (first.vote_id, True)
    # The same key with another choice is a client bug, reported rather than answered with
    # the first vote's receipt.
    with pytest.raises(grpc.RpcError) as changed:
        stub.SubmitVote(gw.SubmitVoteRequest(
            cause_id=cause_id, voter_id="voter-2", prompt_token=pair.prompt_token,
            choice=types_pb2.CHOICE_RIGHT, idempotency_key="retry-me"), metadata=platform,
            timeout=5)
    assert changed.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "idempotency_key 'retry-me'" in changed.value.details()
    # The same token under another key, or from another voter, or forged, is refused.
    for voter, token, key in [("voter-2", pair.prompt_token, "other-key"),
                              ("voter-3", pair.prompt_token, "stolen"),
                              ("voter-2", pair.prompt_token[:-4] + "AAAA", "forged")]:
        with pytest.raises(grpc.RpcError) as info:
            stub.SubmitVote(gw.SubmitVoteRequest(
                cause_id=cause_id, voter_id=voter, prompt_token=token,
                choice=types_pb2.CHOICE_RIGHT, idempotency_key=key), metadata=platform,
                timeout=5)
        assert info.value.code() in (grpc.StatusCode.FAILED_PRECONDITION,
                                     grpc.StatusCode.PERMISSION_DENIED,
                                     grpc.StatusCode.INVALID_ARGUMENT,
                                     grpc.StatusCode.ALREADY_EXISTS), info.value

    # The trusted bulk path: three new votes, one replay, one unknown proposal.
    def imported(vote_id: str, winner: str, loser: str) -> types_pb2.ImportedVote:
        return types_pb2.ImportedVote(vote_id=vote_id, cause_id=cause_id, voter_id="hist-1",
                                      winner_id=winner, loser_id=loser)

    report = stub.ImportVotes(iter([
        gw.ImportVotesRequest(votes=[imported("h1", "formation", "urgence"),
                                     imported("h2", "ecole", "refuges")]),
        gw.ImportVotesRequest(votes=[imported("h1", "formation", "urgence"),
                                     imported("h3", "nope", "urgence"),
                                     imported("h4", "urgence", "refuges")]),
    ]), metadata=admin, timeout=10)
    assert (report.accepted, report.duplicates, report.rejected) == (3, 1, 1)
    assert [(e.index, e.vote_id) for e in report.errors] == [(3, "h3")]

    settled = wait_counted(stub, cluster, cause_id)
    assert settled.votes_accepted == 4 + 1 + 3
    assert settled.duplicates >= 2 and settled.ties == 1 and settled.skips == 1
    # Counted by reason code (free text alone is "other"), never by the text.
    assert [(s.reason, s.count) for s in settled.skip_reasons] == [("SKIP_REASON_OTHER", 1)]
    assert (settled.proposals_accepted, settled.proposals_pending,
            settled.proposals_rejected) == (4, 1, 0)
    assert settled.voters >= 2

    ranking = stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id), metadata=platform,
                              timeout=5)
    assert ranking.votes_counted == settled.votes_accepted
    assert ranking.total_proposals == 4
    assert {e.proposal_id for e in ranking.entries} == set(PROPOSALS)
    assert [e.rank for e in ranking.entries] == [1, 2, 3, 4]
    page = stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id, offset=1, limit=2),
                           metadata=platform, timeout=5)
    assert [e.proposal_id for e in page.entries] == \
        [e.proposal_id for e in ranking.entries[1:3]]

    # A watch delivers the current ranking, then an update after a new vote.
    watch = stub.WatchRanking(gw.WatchRankingRequest(cause_id=cause_id, limit=2),
                              metadata=platform, timeout=SETTLE_S)
    current = next(watch)
    assert current.votes_counted == settled.votes_accepted and len(current.entries) == 2
    vote(stub, cluster, cause_id, "voter-4", types_pb2.CHOICE_LEFT, "watched")
    for update in watch:
        if update.votes_counted > current.votes_counted:
            assert update.votes_counted == settled.votes_accepted + 1
            break
    watch.cancel()
    assert wait_counted(stub, cluster, cause_id).votes_counted == settled.votes_accepted + 1


@pytest.mark.parametrize("votes", [[("a", "b"), ("c", "a")], [("c", "a")]],
                         ids=["ranked-pair-compared", "only-votes-involve-the-rejected"])
def test_rejected_proposals_leave_the_ranking(cluster: Cluster, stub, cause_id: str,  # type: ignore[no-untyped-def]
                                              votes: list[tuple[str, str]]) -> None:
    stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="Q"),
                     metadata=cluster.admin, timeout=5)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=pid, text=pid) for pid in ("a", "b", "c")]),
        metadata=cluster.admin, timeout=5)
    stub.ImportVotes(iter([gw.ImportVotesRequest(votes=[
        types_pb2.ImportedVote(vote_id=f"v{i}", cause_id=cause_id, voter_id="v",
                               winner_id=winner, loser_id=loser)
        for i, (winner, loser) in enumerate(votes)])]), metadata=cluster.admin, timeout=5)
    stub.ModerateProposal(gw.ModerateProposalRequest(
        cause_id=cause_id, proposal_id="c", status=types_pb2.PROPOSAL_STATUS_REJECTED),
        metadata=cluster.admin, timeout=5)
    # The rejected proposal's votes stay in the log (counted) but it leaves the ranking.
    once(lambda: stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id),
                                 metadata=cluster.platform, timeout=5),
         lambda r: ({e.proposal_id for e in r.entries} == {"a", "b"}
                    and r.votes_counted == len(votes)),
         "the rejected proposal to leave the ranking")


def test_a_tiny_deadline_is_deadline_exceeded_not_a_hang(cluster: Cluster, stub,  # type: ignore[no-untyped-def]
                                                         cause_id: str) -> None:
    stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="Q"),
                     metadata=cluster.admin, timeout=5)
    for call in (
        # 1 µs: no round trip is that fast (1 ms was, once the gateway got quicker).
        lambda: stub.GetCauseStats(gw.GetCauseStatsRequest(cause_id=cause_id),
                                   metadata=cluster.platform, timeout=0.000001),
        # A watch runs until its deadline: then it ends, with DEADLINE_EXCEEDED.
        lambda: list(stub.WatchRanking(gw.WatchRankingRequest(cause_id=cause_id),
                                       metadata=cluster.platform, timeout=0.5)),
    ):
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 10
