"""SubmitVote with want_next_pair, through the gateway with the real ingest and ranker (the
session `cluster`): one call per vote after the first NextPair, the next pair chosen and
signed as NextPair would, and a vote that is recorded whether or not a next pair exists."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import grpc
import pytest
from conftest import Cluster, eventually, gateway_settings, serve_in_thread

from gateway.server import start
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2

pytest.importorskip("ingest.server")
pytest.importorskip("ranker.server")

LEFT = types_pb2.CHOICE_LEFT


@pytest.fixture
def stub(cluster: Cluster) -> Iterator[gateway_pb2_grpc.GatewayServiceStub]:
    with cluster.channel() as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def make_cause(stub, cluster: Cluster, cause_id: str, n: int) -> set[str]:  # type: ignore[no-untyped-def]
    stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="Q ?"),
                     metadata=cluster.admin, timeout=5)
    ids = [f"p{i}" for i in range(n)]
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=pid, text=f"Proposition {pid}") for pid in ids]),
        metadata=cluster.admin, timeout=5)
    return set(ids)


def first_pair(stub, cluster: Cluster, cause_id: str, voter: str) -> gw.NextPairResponse:  # type: ignore[no-untyped-def]
    return stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id=voter),
                         metadata=cluster.platform, timeout=5)


def submit(stub, cluster: Cluster, cause_id: str, voter: str, pair: gw.NextPairResponse,  # type: ignore[no-untyped-def]
           key: str, want_next_pair: bool = True) -> gw.SubmitVoteResponse:
    return stub.SubmitVote(gw.SubmitVoteRequest(
        cause_id=cause_id, voter_id=voter, prompt_token=pair.prompt_token, choice=LEFT,
        idempotency_key=key, want_next_pair=want_next_pair), metadata=cluster.platform,
        timeout=5)


def pair_of(reply: gw.NextPairResponse) -> frozenset[str]:
    return frozenset((reply.left.proposal_id, reply.right.proposal_id))


def votes_counted(stub, cluster: Cluster, cause_id: str, expected: int) -> None:  # type: ignore[no-untyped-def]
    """Wait until the cause's ranking counts exactly `expected` votes, all of them accepted."""
    eventually(lambda: stub.GetCauseStats(gw.GetCauseStatsRequest(cause_id=cause_id),
                                          metadata=cluster.platform, timeout=5),
               f"{expected} votes accepted and counted",
               until=lambda s: s.votes_accepted == s.votes_counted == expected)


def test_a_voter_votes_through_every_pair_with_one_call_per_vote(  # type: ignore[no-untyped-def]
        cluster: Cluster, stub, cause_id: str) -> None:
    ids = make_cause(stub, cluster, cause_id, 4)
    pair = first_pair(stub, cluster, cause_id, "alice")
    shown = [pair_of(pair)]
    for k in itertools.count():
        receipt = submit(stub, cluster, cause_id, "alice", pair, str(k))
        assert receipt.vote_id and not receipt.duplicate
        if not receipt.HasField("next_pair"):
            break
        assert not receipt.next_pair_unavailable
        pair = receipt.next_pair
        assert pair.prompt_token and pair.expires_at_ms > 0
        assert pair.left.status == pair.right.status == types_pb2.PROPOSAL_STATUS_ACCEPTED
        shown.append(pair_of(pair))
    # Six pairs of four proposals, each shown once; the last vote is told there is no more.
    assert sorted(map(sorted, shown)) == sorted(map(sorted, (
        frozenset(p) for p in itertools.combinations(ids, 2))))
    assert "every pair" in receipt.next_pair_unavailable
    # Every vote counted, the last one included.
    votes_counted(stub, cluster, cause_id, 6)
    with pytest.raises(grpc.RpcError) as info:
        first_pair(stub, cluster, cause_id, "alice")
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_two_proposals_the_vote_counts_and_the_reply_says_why_no_pair_follows(  # type: ignore[no-untyped-def]
        cluster: Cluster, stub, cause_id: str) -> None:
    make_cause(stub, cluster, cause_id, 2)
    pair = first_pair(stub, cluster, cause_id, "bob")
    receipt = submit(stub, cluster, cause_id, "bob", pair, "k")
    assert receipt.vote_id and not receipt.duplicate
    assert not receipt.HasField("next_pair")
    assert "voter 'bob' has been shown every pair of the 2 accepted proposals" in \
        receipt.next_pair_unavailable
    votes_counted(stub, cluster, cause_id, 1)


def test_a_replayed_vote_gets_its_original_receipt_and_a_next_pair(  # type: ignore[no-untyped-def]
        cluster: Cluster, stub, cause_id: str) -> None:
    make_cause(stub, cluster, cause_id, 5)
    pair = first_pair(stub, cluster, cause_id, "carol")
    first = submit(stub, cluster, cause_id, "carol", pair, "k1")
    replay = submit(stub, cluster, cause_id, "carol", pair, "k1")
    assert replay.duplicate and replay.vote_id == first.vote_id
    assert replay.HasField("next_pair")
    # The first answer's pair counts as shown (that answer may have been received).
    assert len({pair_of(pair), pair_of(first.next_pair), pair_of(replay.next_pair)}) == 3
    # The replay's pair can be voted on like any other.
    assert not submit(stub, cluster, cause_id, "carol", replay.next_pair, "k2").duplicate
    votes_counted(stub, cluster, cause_id, 2)


def test_without_want_next_pair_the_reply_is_the_receipt_alone(  # type: ignore[no-untyped-def]
        cluster: Cluster, stub, cause_id: str) -> None:
    make_cause(stub, cluster, cause_id, 3)
    pair = first_pair(stub, cluster, cause_id, "dan")
    receipt = submit(stub, cluster, cause_id, "dan", pair, "k", want_next_pair=False)
    assert receipt.vote_id
    assert not receipt.HasField("next_pair") and not receipt.next_pair_unavailable
    # Nothing more was recorded as shown: the two other pairs are still to come.
    assert pair_of(first_pair(stub, cluster, cause_id, "dan")) != pair_of(pair)
    first_pair(stub, cluster, cause_id, "dan")
    votes_counted(stub, cluster, cause_id, 1)


def test_a_refused_vote_brings_no_next_pair(cluster: Cluster, stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    make_cause(stub, cluster, cause_id, 3)
    pair = first_pair(stub, cluster, cause_id, "erin")
    submit(stub, cluster, cause_id, "erin", pair, "k1")
    # The same prompt token again under another key: used, so refused, and nothing shown.
    with pytest.raises(grpc.RpcError) as info:
        submit(stub, cluster, cause_id, "erin", pair, "k2")
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    first_pair(stub, cluster, cause_id, "erin")  # the third pair is still unseen
    votes_counted(stub, cluster, cause_id, 1)


def test_the_rate_limit_counts_a_vote_with_its_next_pair_as_two_calls(  # type: ignore[no-untyped-def]
        cluster: Cluster, redis_url: str, cause_id: str) -> None:
    settings = gateway_settings(redis_url, cluster.ingest_addr,
                                voter_burst=4, voter_rate_per_s=0.01)
    with serve_in_thread(start, settings) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        make_cause(stub, cluster, cause_id, 5)
        pair = first_pair(stub, cluster, cause_id, "frank")           # 4 -> 3 tokens
        receipt = submit(stub, cluster, cause_id, "frank", pair, "1")  # 3 -> 1
        assert receipt.HasField("next_pair")
        # One token left: the vote is taken, the pair after it is not chosen.
        last = submit(stub, cluster, cause_id, "frank", receipt.next_pair, "2")
        assert last.vote_id and not last.HasField("next_pair")
        assert "rate limit" in last.next_pair_unavailable
        assert "retry in" in last.next_pair_unavailable
        with pytest.raises(grpc.RpcError) as info:
            first_pair(stub, cluster, cause_id, "frank")
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        votes_counted(stub, cluster, cause_id, 2)
