"""`loadtest.redis_memory` against a real cluster: every key of a cause is accounted to its
family, votes are counted from the log (a bulk entry's votes included), and the families
that expire are said to."""

from __future__ import annotations

import redis
from conftest import Cluster, eventually

from loadtest.redis_memory import cause_memory
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2


def test_a_causes_memory_is_accounted_by_family(cluster: Cluster, cause_id: str,
                                                redis_url: str) -> None:
    with cluster.channel() as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="Q ?"),
                         metadata=cluster.admin, timeout=5)
        stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
            types_pb2.NewProposal(proposal_id=f"p{i}", text=f"Proposition {i}")
            for i in range(6)]), metadata=cluster.admin, timeout=5)
        for voter in ("alice", "bob", "carol"):
            pair = stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id=voter),
                                 metadata=cluster.platform, timeout=5)
            for k in range(2):
                reply = stub.SubmitVote(gw.SubmitVoteRequest(
                    cause_id=cause_id, voter_id=voter, prompt_token=pair.prompt_token,
                    choice=types_pb2.CHOICE_LEFT, idempotency_key=f"{voter}-{k}",
                    want_next_pair=True), metadata=cluster.platform, timeout=5)
                pair = reply.next_pair
        stub.ImportVotes(iter([gw.ImportVotesRequest(votes=[
            types_pb2.ImportedVote(vote_id=f"b{i}", cause_id=cause_id, voter_id="import",
                                   winner_id="p0", loser_id="p1")
            for i in range(50)])]), metadata=cluster.admin, timeout=10)
        eventually(lambda: stub.GetCauseStats(gw.GetCauseStatsRequest(cause_id=cause_id),
                                              metadata=cluster.platform, timeout=5),
                   "56 votes counted", until=lambda s: s.votes_counted == 56)

    def reading() -> tuple[dict, list[bytes], int]:
        report = cause_memory(client, cause_id)
        tagged = list(client.scan_iter(match=f"*{{{cause_id}}}*"))
        return report, tagged, sum(client.memory_usage(k, samples=0) for k in tagged)

    # The ranker keeps writing the cause's keys after the votes are counted (its checkpoint,
    # its selection summary): the report is compared with a scan taken while nothing moved.
    client = redis.Redis.from_url(redis_url)
    try:
        report, _, _ = eventually(
            reading, "a report taken while the cause's keys stood still",
            until=lambda r: sum(f["keys"] for f in r[0]["families"].values()) == len(r[1])
            and r[0]["bytes"] == r[2])
    finally:
        client.close()
    families = report["families"]
    assert report["votes"] == 56
    assert report["voters_with_seen_pairs"] == families["seen"]["keys"] == 3
    assert families["token"]["keys"] == 6 and families["token"]["expires"]
    assert families["seen"]["expires"]
    assert not families["votes"]["expires"] and not families["receipts"]["expires"]
