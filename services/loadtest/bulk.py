"""Bulk load: already-decided votes streamed through ImportVotes, several calls in flight,
as a partner platform migrating its votes would."""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np

from loadtest.campaign import Campaign
from loadtest.interactive import ATTEMPTS, RETRYABLE
from loadtest.plan import LoadPlan
from loadtest.population import DecidedVotes
from pairwise.v1 import gateway_pb2

IMPORT_TIMEOUT_S = 60.0


class BulkLoad:
    """Sends batches of `plan.batch_size` votes to `campaign`, `plan.bulk_streams` calls at
    once, until `deadline` (monotonic) or until `plan.max_votes` votes were sent."""

    def __init__(self, campaign: Campaign, plan: LoadPlan, deadline: float,
                 rng: np.random.Generator) -> None:
        self.campaign = campaign
        self.plan = plan
        self.deadline = deadline
        self.rng = rng
        self._next_vote = 0

    def _over(self) -> bool:
        return (time.monotonic() >= self.deadline
                or self.campaign.counters.sent >= self.plan.max_votes)

    async def run(self) -> None:
        await asyncio.gather(*(self._stream() for _ in range(self.plan.bulk_streams)))

    def _arrived_voters(self) -> int:
        return int(1 + self.plan.arrival_rate * self.campaign.elapsed())

    def next_batch(self) -> tuple[gateway_pb2.ImportVotesRequest, DecidedVotes]:
        """The next batch: uniformly random pairs of the accepted proposals, answered by the
        voter model (skips dropped), with fresh vote ids; and the same votes as indices."""
        campaign, population = self.campaign, self.campaign.population
        remaining = self.plan.max_votes - campaign.counters.sent
        votes = population.decided_votes(min(self.plan.batch_size, remaining),
                                         campaign.accepted, self._arrived_voters(), self.rng)
        request = gateway_pb2.ImportVotesRequest()
        add = request.votes.add
        cause_id, ids = campaign.cause_id, population.proposal_id
        first = self._next_vote
        self._next_vote += len(votes.winners)
        for number, winner, loser, tie, voter in zip(
                range(first, self._next_vote), votes.winners.tolist(), votes.losers.tolist(),
                votes.ties.tolist(), votes.voters.tolist(), strict=True):
            add(vote_id=f"b{number}", cause_id=cause_id, voter_id=f"v{voter}",
                winner_id=ids(winner), loser_id=ids(loser), tie=tie,
                attributes=campaign.attributes_of(voter))
        return request, votes

    async def _stream(self) -> None:
        c = self.campaign.counters
        while not self._over():
            request, votes = self.next_batch()
            n = len(request.votes)
            if not n:
                continue
            c.sent += n
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    reply = await self.campaign.gateway.call(
                        "ImportVotes", [request], c, admin=True, timeout=IMPORT_TIMEOUT_S)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() not in RETRYABLE:
                        c.rejected += n
                        break
                    if attempt == ATTEMPTS:
                        c.unknown += n
                        break
                    await asyncio.sleep(0.2 * attempt)
                    continue
                # A replayed batch answers "duplicate" for the votes its first try recorded.
                c.ok += int(reply.accepted) + (int(reply.duplicates) if attempt > 1 else 0)
                if attempt == 1:
                    c.unexpected_duplicates += int(reply.duplicates)
                if not reply.rejected:
                    self.campaign.proposal_votes.imported(votes.winners, votes.losers)
                c.rejected += int(reply.rejected)
                c.freshness.sample(self.campaign.elapsed(), c.log_bound())
                break
