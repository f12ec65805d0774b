"""Adaptive selection with the real ingest and ranker (the session `cluster`): the ranker's fits
reach the gateway, the newcomer pool drains as votes are counted, and a proposal accepted
mid-consultation gets its first votes within a few dozen prompts."""

from __future__ import annotations

from collections import Counter

import pytest
import redis
from conftest import Cluster, eventually

from pairwise import keys
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2

pytest.importorskip("ingest.server")
pytest.importorskip("ranker.server")

N = 60


def test_a_late_proposal_reaches_ten_votes_fast(cluster: Cluster, redis_url: str,
                                                cause_id: str) -> None:
    store = redis.Redis.from_url(redis_url)
    with cluster.channel() as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        stub.CreateCause(gw.CreateCauseRequest(
            cause_id=cause_id, title="Q", pair_selection=types_pb2.PAIR_SELECTION_ADAPTIVE),
            metadata=cluster.admin, timeout=5)
        stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
            types_pb2.NewProposal(proposal_id=f"p{i:02d}", text=f"idea {i}")
            for i in range(N)]), metadata=cluster.admin, timeout=5)
        votes = Counter[str]()
        cast = 0

        def vote(voter: str) -> None:
            nonlocal cast
            pair = stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id=voter),
                                 metadata=cluster.platform, timeout=5)
            # The proposal with the larger number wins: a hidden truth in the ids.
            left_wins = pair.left.proposal_id > pair.right.proposal_id
            stub.SubmitVote(gw.SubmitVoteRequest(
                cause_id=cause_id, voter_id=voter, prompt_token=pair.prompt_token,
                choice=types_pb2.CHOICE_LEFT if left_wins else types_pb2.CHOICE_RIGHT),
                metadata=cluster.platform, timeout=5)
            votes.update((pair.left.proposal_id, pair.right.proposal_id))
            cast += 1

        for k in range(500):
            vote(f"early{k // 10}")
        # The ranker's fits reach selection; the proposals past 10 counted votes leave the
        # newcomer pool.
        eventually(lambda: int(store.hget(keys.selection_summary(cause_id), "version") or 0),
                   "a fit summary published")
        under = {f"p{i:02d}" for i in range(N) if votes[f"p{i:02d}"] < 10}
        eventually(lambda: store.zcard(keys.newcomers(cause_id)), "the pool settled",
                   until=lambda size: size <= len(under))

        stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
            types_pb2.NewProposal(proposal_id="late", text="a late idea")]),
            metadata=cluster.admin, timeout=5)
        accepted_at = cast
        while votes["late"] < 10 and cast - accepted_at < 1000:
            vote(f"later{cast // 10}")
        store.close()
    # Uniform pairs would need about 10 / (2 / 61) = 305 votes; the newcomer share (0.3 of
    # prompts, lowest estimated votes first) needs about 35.
    assert cast - accepted_at <= 120, cast - accepted_at
