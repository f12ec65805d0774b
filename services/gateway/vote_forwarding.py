"""SubmitVote to ingest: concurrent votes travel together in one RecordInteractiveVotes call."""

from __future__ import annotations

import grpc

from pairwise.coalescing import Coalescer
from pairwise.v1 import ingest_pb2, ingest_pb2_grpc

_STATUS_BY_CODE = {code.value[0]: code for code in grpc.StatusCode}


class VoteForwarder:
    """Forwards interactive votes to ingest, grouping those submitted at the same time.

    A group of one is a RecordVote call; a larger group one RecordInteractiveVotes call, with
    the longest deadline of the group. Every vote gets what RecordVote would have answered it:
    its receipt, or a grpc.aio.AioRpcError with ingest's status and message for that vote.
    At most `max_in_flight` calls run at once, each with at most `max_group` votes.
    """

    def __init__(self, ingest: ingest_pb2_grpc.IngestServiceStub, *, max_group: int,
                 max_in_flight: int) -> None:
        self._ingest = ingest
        self._groups: Coalescer[tuple[ingest_pb2.RecordVoteRequest, float],
                                ingest_pb2.RecordVoteResponse] = Coalescer(
            self._forward, max_group=max_group, max_in_flight=max_in_flight)

    async def record(self, request: ingest_pb2.RecordVoteRequest,
                     timeout: float) -> ingest_pb2.RecordVoteResponse:
        """Ingest's receipt for the vote; raises grpc.aio.AioRpcError as RecordVote would.
        `timeout` (seconds) bounds the internal call."""
        return await self._groups.submit((request, timeout))

    async def _forward(self, items: list[tuple[ingest_pb2.RecordVoteRequest, float]]
                       ) -> list[ingest_pb2.RecordVoteResponse | BaseException]:
        timeout = max(seconds for _, seconds in items)
        if len(items) == 1:
            return [await self._ingest.RecordVote(items[0][0], timeout=timeout)]
        reply = await self._ingest.RecordInteractiveVotes(
            ingest_pb2.RecordInteractiveVotesRequest(votes=[request for request, _ in items]),
            timeout=timeout)
        if len(reply.outcomes) != len(items):
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), grpc.aio.Metadata(),
                details=f"ingest answered {len(reply.outcomes)} of {len(items)} votes")
        return [outcome.receipt if outcome.code == 0 else grpc.aio.AioRpcError(
                    _STATUS_BY_CODE.get(outcome.code, grpc.StatusCode.UNKNOWN),
                    grpc.aio.Metadata(), grpc.aio.Metadata(), details=outcome.message)
                for outcome in reply.outcomes]
