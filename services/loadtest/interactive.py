"""Interactive load: voters arrive (Poisson), each casts 5-20 votes, many at once on one
event loop, as a platform's backend would on their behalf: a NextPair for the first pair,
then one SubmitVote per vote whose reply brings the next pair (`want_next_pair`), or, with
`next_pair_in_reply` off, a NextPair before every SubmitVote."""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np

from loadtest.campaign import Campaign
from loadtest.plan import LoadPlan
from pairwise.submitted_vote import SKIP_REASON_NAMES
from pairwise.v1 import gateway_pb2, types_pb2

CHOICE = {"left": types_pb2.CHOICE_LEFT, "right": types_pb2.CHOICE_RIGHT,
          "tie": types_pb2.CHOICE_TIE, "skip": types_pb2.CHOICE_SKIP}
# A vote whose submission ended with one of these may have been written: it is retried with
# the same idempotency key (a replay returns the original receipt).
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                       grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})
ATTEMPTS = 3
# At most this many freshness samples per second (each costs nothing to the cluster).
SAMPLES_PER_S = 50
_TICK_S = 0.005


class InteractiveLoad:
    """Drives `campaign` until `deadline` (monotonic) or until `plan.max_votes` votes were
    submitted, with at most `plan.concurrency` voters voting at once."""

    def __init__(self, campaign: Campaign, plan: LoadPlan, deadline: float,
                 rng: np.random.Generator) -> None:
        self.campaign = campaign
        self.plan = plan
        self.deadline = deadline
        self.rng = rng
        self._active: set[asyncio.Task[None]] = set()
        self._last_sample = 0.0

    def _over(self) -> bool:
        return (time.monotonic() >= self.deadline
                or self.campaign.counters.sent >= self.plan.max_votes)

    async def run(self) -> None:
        """Admit arriving voters while there is time and votes left; wait for the last."""
        c = self.campaign.counters
        arrived = 0.0
        started = 0
        last = time.monotonic()
        while not self._over():
            now = time.monotonic()
            arrived = min(float(self.plan.voters),
                          arrived + self.rng.poisson(self.plan.arrival_rate * (now - last)))
            last = now
            c.voters_arrived = int(arrived)
            while started < int(arrived) and len(self._active) < self.plan.concurrency:
                task = asyncio.get_running_loop().create_task(self._voter(started))
                self._active.add(task)
                task.add_done_callback(self._active.discard)
                started += 1
            if started >= self.plan.voters and not self._active:
                break
            await asyncio.sleep(_TICK_S)
        if self._active:
            await asyncio.gather(*self._active, return_exceptions=True)

    async def _voter(self, number: int) -> None:
        campaign, c = self.campaign, self.campaign.counters
        voter_id = f"v{number}"
        population = campaign.population
        in_reply = self.plan.next_pair_in_reply
        pair: gateway_pb2.NextPairResponse | None = None
        low, high = self.plan.votes_per_voter
        # This voter's pairs so far (a voter never comes back, so the set dies with it).
        shown: set[tuple[str, str]] = set()
        try:
            for k in range(int(self.rng.integers(low, high + 1))):
                if self._over():
                    return
                if pair is None:
                    try:
                        pair = await campaign.gateway.call(
                            "NextPair", gateway_pb2.NextPairRequest(
                                cause_id=campaign.cause_id, voter_id=voter_id), c)
                    except grpc.aio.AioRpcError:
                        return  # no pair left, rate-limited or failing: the voter leaves
                ids = (pair.left.proposal_id, pair.right.proposal_id)
                if (min(ids), max(ids)) in shown:
                    c.repeated_pairs += 1
                shown.add((min(ids), max(ids)))
                left, right = population.index_of(ids[0]), population.index_of(ids[1])
                decision = population.model.choose(float(population.abilities[left]),
                                                   float(population.abilities[right]),
                                                   self.rng)
                if self.plan.think_s:
                    await asyncio.sleep(self.plan.think_s)
                c.sent += 1
                # A platform cannot know which vote is a voter's last, so it asks every time.
                reply = await self._submit(gateway_pb2.SubmitVoteRequest(
                    cause_id=campaign.cause_id, voter_id=voter_id,
                    attributes=campaign.attributes_of(number),
                    prompt_token=pair.prompt_token, choice=CHOICE[decision.answer],
                    skip_reason=decision.reason,
                    skip_reason_code=SKIP_REASON_NAMES.get(decision.reason_code,
                                                            "SKIP_REASON_UNSPECIFIED"),
                    idempotency_key=str(k),
                    want_next_pair=in_reply))
                pair = None
                if reply is not None:
                    campaign.proposal_votes.vote(left, right, skip=decision.answer == "skip")
                if in_reply and reply is not None:
                    if reply.next_pair_unavailable:
                        return  # no pair left for this voter: it leaves
                    if reply.HasField("next_pair"):
                        c.next_pairs_in_reply += 1
                        pair = reply.next_pair
                    # else: a gateway without the option; NextPair brings the next pair.
        finally:
            c.voters_done += 1

    async def _submit(self, request: gateway_pb2.SubmitVoteRequest
                      ) -> gateway_pb2.SubmitVoteResponse | None:
        """Submit the vote, retried with the same key while its outcome is unknown; its
        reply, or None when it was refused or its outcome stayed unknown."""
        campaign, c = self.campaign, self.campaign.counters
        for attempt in range(1, ATTEMPTS + 1):
            try:
                reply = await campaign.gateway.call("SubmitVote", request, c)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE:
                    c.rejected += 1  # refused (expired prompt, rate limit...): never written
                    return None
                if attempt == ATTEMPTS:
                    c.unknown += 1
                    return None
                await asyncio.sleep(0.05 * attempt)
                continue
            if reply.duplicate and attempt == 1:
                c.unexpected_duplicates += 1
            c.ok += 1
            now = time.monotonic()
            if now - self._last_sample >= 1.0 / SAMPLES_PER_S:
                self._last_sample = now
                c.freshness.sample(now - campaign.origin, c.log_bound())
            return reply
        return None
