"""pairwise.v1.IngestService over gRPC: translates messages to and from `ingest.intake`.

Domain errors and Redis outages raised here become statuses in
pairwise.grpc_server.ErrorMappingInterceptor.
"""

from __future__ import annotations

import grpc

from ingest.intake import Intake
from ingest.votes import Receipt, Submission
from pairwise.grpc_server import status_for
from pairwise.submitted_vote import CHOICE_NAMES, SKIP_REASON_NAMES
from pairwise.v1 import ingest_pb2, ingest_pb2_grpc, types_pb2


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    async def RecordVote(self, request: ingest_pb2.RecordVoteRequest,
                         context: grpc.aio.ServicerContext) -> ingest_pb2.RecordVoteResponse:
        receipt = await self._intake.record_vote(
            cause_id=request.cause_id, voter_id=request.voter_id,
            prompt_token=request.prompt_token, choice=CHOICE_NAMES.get(request.choice, ""),
            skip_reason=request.skip_reason, idempotency_key=request.idempotency_key,
            attributes=request.attributes, skip_reason_code=request.skip_reason_code)
        return ingest_pb2.RecordVoteResponse(vote_id=receipt.vote_id,
                                             duplicate=receipt.duplicate,
                                             entry_id=receipt.entry_id)

    async def RecordInteractiveVotes(
            self, request: ingest_pb2.RecordInteractiveVotesRequest,
            context: grpc.aio.ServicerContext) -> ingest_pb2.RecordInteractiveVotesResponse:
        outcomes = await self._intake.record_interactive_votes([
            Submission(cause_id=v.cause_id, voter_id=v.voter_id, prompt_token=v.prompt_token,
                       choice=CHOICE_NAMES.get(v.choice, ""), skip_reason=v.skip_reason,
                       idempotency_key=v.idempotency_key, attributes=v.attributes,
                       skip_reason_code=v.skip_reason_code)
            for v in request.votes])
        reply = ingest_pb2.RecordInteractiveVotesResponse()
        add = reply.outcomes.add
        for outcome in outcomes:
            if isinstance(outcome, Receipt):
                receipt = add().receipt
                receipt.vote_id = outcome.vote_id
                receipt.duplicate = outcome.duplicate
                receipt.entry_id = outcome.entry_id
            else:
                mapped = status_for(outcome)
                assert mapped is not None  # every PairwiseError has a status
                code, message = mapped
                add(code=code.value[0], message=message)
        return reply

    async def RecordVotes(self, request: ingest_pb2.RecordVotesRequest,
                          context: grpc.aio.ServicerContext) -> ingest_pb2.RecordVotesResponse:
        result = await self._intake.record_votes(request.votes, request.first_index)
        return ingest_pb2.RecordVotesResponse(
            accepted=result.accepted, duplicates=result.duplicates,
            rejected=len(result.rejections),
            errors=[types_pb2.VoteError(index=r.position, vote_id=r.vote_id, reason=r.reason)
                    for r in result.rejections])

    async def GetVoteStats(self, request: ingest_pb2.GetVoteStatsRequest,
                           context: grpc.aio.ServicerContext) -> ingest_pb2.GetVoteStatsResponse:
        stats = await self._intake.vote_stats(request.cause_id)
        return ingest_pb2.GetVoteStatsResponse(
            votes_accepted=stats.accepted, duplicates=stats.duplicates,
            rejected_by_reason=stats.rejected_by_reason, voters=stats.voters, ties=stats.ties,
            skips=stats.skips,
            skip_reasons=[
                types_pb2.SkipReasonCount(reason=SKIP_REASON_NAMES[code],
                                          code=SKIP_REASON_NAMES[code], count=count)
                for code, count in sorted(stats.skip_reasons.items(),
                                          key=lambda item: (-item[1], item[0]))
                if code in SKIP_REASON_NAMES])
