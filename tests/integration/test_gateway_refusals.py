"""Malformed requests the gateway once answered with the wrong status, each refused now as the
contract says (found by the property tests in test_gateway_inputs.py)."""

from __future__ import annotations

import grpc
import pytest
from conftest import Cluster, bearer

from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2

pytest.importorskip("ingest.server")
pytest.importorskip("ranker.server")

# A string field (field 1, length 2) holding bytes that are not UTF-8: no valid message.
NOT_UTF8 = b"\x0a\x02\xff\xfe"
# A length that runs past the end of the bytes.
TRUNCATED = b"\x0a\x05ab"


def raw(channel: grpc.Channel, method: str, payload: bytes,
        metadata: tuple[tuple[str, str], ...]) -> grpc.RpcError:
    """The error a call of `method` with `payload` as its request bytes ends with."""
    path = f"/pairwise.v1.GatewayService/{method}"
    with pytest.raises(grpc.RpcError) as info:
        if method == "ImportVotes":
            channel.stream_unary(path)(iter([payload]), metadata=metadata, timeout=5)
        elif method == "WatchRanking":
            next(channel.unary_stream(path)(payload, metadata=metadata, timeout=5))
        else:
            channel.unary_unary(path)(payload, metadata=metadata, timeout=5)
    return info.value


@pytest.mark.parametrize("payload", [NOT_UTF8, TRUNCATED], ids=["not-utf8", "truncated"])
@pytest.mark.parametrize("method", ["GetCause", "NextPair", "SubmitVote", "ImportVotes",
                                    "WatchRanking"])
def test_bytes_that_are_no_request_are_invalid_argument(cluster: Cluster, method: str,
                                                        payload: bytes) -> None:
    with cluster.channel() as channel:
        error = raw(channel, method, payload, cluster.admin)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        assert error.details().startswith("request: is not a valid message"), error.details()
        assert "<class" not in error.details() and "DecodeError" not in error.details()
        # Without a valid token the answer is the same as for any request: who is asking
        # comes before what they sent.
        error = raw(channel, method, payload, bearer("wrong"))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error


@pytest.mark.parametrize(("fields", "named"), [
    ({"choice": types_pb2.CHOICE_UNSPECIFIED}, "choice"),
    ({"choice": 99}, "choice"),
    ({"skip_reason": "why not"}, "skip_reason"),
    ({"prompt_token": ""}, "prompt_token"),
], ids=["no-choice", "unknown-choice", "reason-without-skip", "no-token"])
def test_a_malformed_vote_is_invalid_argument_whatever_its_cause(
        cluster: Cluster, fields: dict[str, object], named: str) -> None:
    vote = {"cause_id": "no-such-cause", "voter_id": "v1", "prompt_token": "abc.def",
            "choice": types_pb2.CHOICE_LEFT, **fields}
    with cluster.channel() as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.SubmitVote(gw.SubmitVoteRequest(**vote), metadata=cluster.platform,
                            timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value
    assert info.value.details().startswith(f"{named}: "), info.value.details()


@pytest.mark.parametrize("status", [types_pb2.PROPOSAL_STATUS_UNSPECIFIED,
                                    types_pb2.PROPOSAL_STATUS_ACCEPTED])
def test_a_page_past_the_largest_index_is_empty(cluster: Cluster, cause_id: str,
                                                status: int) -> None:
    """An offset near 2**63 with a limit that carries the last index past it: an empty page
    (it was UNKNOWN, Redis refusing the index as "not an integer")."""
    with cluster.channel() as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="Q"),
                         metadata=cluster.admin, timeout=5)
        stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
            types_pb2.NewProposal(text="a"), types_pb2.NewProposal(text="b")]),
            metadata=cluster.admin, timeout=5)
        page = stub.ListProposals(gw.ListProposalsRequest(
            cause_id=cause_id, status=status, offset=2**63 - 1, limit=1000),
            metadata=cluster.platform, timeout=5)
    assert (list(page.proposals), page.total) == ([], 2)
